"""Shared adapters of the speaker and the controller: metrics/health endpoint, leader election."""

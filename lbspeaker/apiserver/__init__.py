"""Embedded Kubernetes API server: an in-memory API over HTTP for the lab and the tests."""

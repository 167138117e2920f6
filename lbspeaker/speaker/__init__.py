"""The node speaker: election, ARP/NDP responder, membership."""

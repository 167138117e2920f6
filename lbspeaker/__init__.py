"""lbspeaker: a bare-metal LoadBalancer for Kubernetes."""

__version__ = "0.1.0"

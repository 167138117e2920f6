"""Pure core: no sockets, no threads, no subprocesses, no Kubernetes client (import-linter enforces it)."""

"""The Kubernetes access layer: the only package that imports the kubernetes client."""

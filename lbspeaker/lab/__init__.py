"""The one-machine lab: network namespaces, an embedded API server, controller and speakers."""

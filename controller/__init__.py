"""The cluster-wide IP allocator program."""

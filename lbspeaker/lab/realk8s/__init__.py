"""A real Kubernetes 1.20 cluster on one machine, for the e2e suite and for people.

etcd, kube-apiserver (TLS, RBAC + Node authorizer, service-account tokens), kube-controller-manager
and kube-scheduler run in the control-plane namespace; every node is a network namespace plus a
private mount namespace running its own containerd, kubelet and kube-proxy (iptables mode). All
binaries come from Debian (scripts/build-real-apiservers.sh builds and caches them); images are
imported from docker-archives, no registry. The LAN, client, BGP router and WAN client are the
same as in the embedded-API-server lab (``lbspeaker.lab.topology``).
"""

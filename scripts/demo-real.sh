#!/usr/bin/env bash
# The real-cluster demo: set up a fresh machine, build (or reuse from the cache) Kubernetes 1.20 from
# Debian's sources and the lbspeaker image, bring up a real cluster (3 namespace nodes with containerd,
# kubelet, kube-proxy), install lbspeaker with `kubectl apply -k config/default`, then expose a
# Deployment as a LoadBalancer Service and curl its EXTERNAL-IP from the client. Run as root.
#   bash scripts/demo-real.sh             # nodes with one NIC
#   bash scripts/demo-real.sh --nics 2    # VirtualBox-shaped nodes (enp0s3 NAT + enp0s8 host-only LAN)
# The cluster stays up (KUBECONFIG=/var/tmp/lbspeaker-realk8s/kubeconfig); remove it with: lbctl lab down
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
bash scripts/build-real-apiservers.sh kube
bash scripts/build-image.sh
exec .venv/bin/lbctl lab demo --cluster real "$@"

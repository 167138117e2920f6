"""The real cluster's fixed shape: names, paths and documentation-range addresses.

The LAN is the lab's (192.0.2.0/24, ``lbr-`` namespaces, control plane at .2, nodes .11-.1N,
client .100, BGP router .1). Pods get 203.0.113.64/26 (node i: the i-th /28), Services
203.0.113.128/26; the host reaches the API server over the lab's management /30 (index 8 by
default: host 203.0.113.221, control plane 203.0.113.222), so it never shares an address with
the embedded-server labs the other tests run beside it (indexes 0-4).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from lbspeaker.lab.topology import Topology

PREFIX = "lbr-"
API_PORT = 6443
POD_NET = ipaddress.IPv4Network("203.0.113.64/26")
SERVICE_NET = ipaddress.IPv4Network("203.0.113.128/26")
KUBERNETES_SERVICE_IP = SERVICE_NET.network_address + 1
POD_NET6 = ipaddress.IPv6Network("2001:db8:64::/56")  # node i: 2001:db8:64:i::/64
SERVICE_NET6 = ipaddress.IPv6Network("2001:db8:65::/112")
DUAL_STACK_GATE = "IPv6DualStack=true"  # alpha in 1.20: every component needs it
MAX_NODES = 4  # one /28 of POD_NET per node
IMAGE_REF = "lbspeaker:0.1.0"


def cache_dir() -> Path:
    """Where scripts/build-real-apiservers.sh keeps binaries, the node runtime and base images."""
    return Path(os.environ.get("LBS_REAL_APISERVER_CACHE", "/var/cache/lbspeaker/real-apiservers"))


def image_tar() -> Path:
    """The lbspeaker image built by scripts/build-image.sh."""
    return Path(os.environ.get("LBS_IMAGE_TAR", "/var/cache/lbspeaker/images/lbspeaker-0.1.0.tar"))


def default_state_dir() -> Path:
    """Certificates, configs, logs, etcd data and the nodes' containerd roots (on disk, not tmpfs)."""
    return Path(os.environ.get("LBS_REALK8S_DIR", "/var/tmp/lbspeaker-realk8s"))


@dataclass(frozen=True)
class Cluster:
    """One real cluster: the lab topology plus the paths of its binaries and state."""

    nodes: int = 3
    state_dir: Path = field(default_factory=default_state_dir)
    mode: str = "l2"
    nics: int = 1
    prefix: str = PREFIX
    mgmt_index: int = 8
    cache: Path = field(default_factory=cache_dir)
    dual_stack: bool = True
    """IPv4 + IPv6 pods and Services (Kubernetes 1.20's alpha IPv6DualStack gate on every component)."""

    def __post_init__(self) -> None:
        if not 1 <= self.nodes <= MAX_NODES:
            raise ValueError(f"real cluster: {self.nodes} nodes; 1..{MAX_NODES} supported")

    @property
    def topo(self) -> Topology:
        """The lab topology this cluster uses for names and LAN addresses."""
        return Topology(nodes=self.nodes, state_dir=self.state_dir, prefix=self.prefix,
                        mgmt_index=self.mgmt_index, mode=self.mode)

    @property
    def bin_dir(self) -> Path:
        """kubelet, kube-proxy, kube-controller-manager, kube-scheduler, kube-apiserver, etcd."""
        return self.cache / "kube-1.20"

    @property
    def runtime_dir(self) -> Path:
        """The dpkg -x root with containerd, runc, CNI plugins, iptables, conntrack."""
        return self.cache / "node-runtime"

    @property
    def images(self) -> list[Path]:
        """Docker-archives every node imports at start."""
        base = [self.cache / "images" / "pause.tar", self.cache / "images" / "busybox.tar"]
        return [*base, image_tar()]

    @property
    def pki(self) -> Path:
        """CA, serving and client certificates."""
        return self.state_dir / "pki"

    @property
    def api_ip(self) -> ipaddress.IPv4Address:
        """The API server's LAN address (what pods and nodes use)."""
        return self.topo.api.v4.ip

    @property
    def host_url(self) -> str:
        """API URL from the host namespace (over the management link)."""
        return f"https://{self.topo.api_mgmt.ip}:{API_PORT}"

    @property
    def lan_url(self) -> str:
        """API URL from inside the lab."""
        return f"https://{self.api_ip}:{API_PORT}"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig for the host (kubectl, lbctl)."""
        return self.state_dir / "kubeconfig"

    def node_name(self, i: int) -> str:
        """Node i's Kubernetes name (1-based), as in the embedded-server lab."""
        return f"node{i}"

    def node_dir(self, i: int) -> Path:
        """Node i's private state: containerd root, kubelet root, logs, pid files."""
        return self.state_dir / "nodes" / self.node_name(i)

    def pod_net(self, i: int) -> ipaddress.IPv4Network:
        """Node i's pod /28."""
        return ipaddress.IPv4Network(f"{POD_NET.network_address + 16 * (i - 1)}/28")

    def pod_net6(self, i: int) -> ipaddress.IPv6Network:
        """Node i's pod /64."""
        return ipaddress.IPv6Network(f"{POD_NET6.network_address + (i << 64)}/64")

    @property
    def service_cidrs(self) -> str:
        """--service-cluster-ip-range."""
        return f"{SERVICE_NET},{SERVICE_NET6}" if self.dual_stack else str(SERVICE_NET)

    @property
    def pod_cidrs(self) -> str:
        """--cluster-cidr (controller-manager, kube-proxy)."""
        return f"{POD_NET},{POD_NET6}" if self.dual_stack else str(POD_NET)

    @property
    def gates(self) -> list[str]:
        """Feature-gate flags for every component."""
        return [f"--feature-gates={DUAL_STACK_GATE}"] if self.dual_stack else []

    def cgroup_name(self, i: int) -> str:
        """Node i's cgroup parent in every v1 hierarchy (kubelet --cgroup-root)."""
        return f"{self.prefix}{self.node_name(i)}"

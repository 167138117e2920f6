"""The lab's fixed shape: names and documentation-range addresses, computed, never stored.

LAN 192.0.2.0/24 + 2001:db8:100::/64 on a bridge in ``lbk-sw``; the API server and the
controller in ``lbk-api`` (also reachable from the host over 203.0.113.252/30);
nodes ``lbk-node1..N``; a client ``lbk-client``. Pool addresses come from the same LAN.
With BGP (``mode`` bgp or both) a router ``lbk-router`` (192.0.2.1, BIRD) joins the LAN and a
second client ``lbk-wan-client`` sits behind it on 198.51.100.0/24; the BGP pool (203.0.113.0/24)
is on no link at all, so only BGP routes make it reachable.
With ``nics=2`` every node is shaped like a VirtualBox VM: ``enp0s3`` (NAT, created first) on its
own network 198.51.100.128/25 + 2001:db8:51::/64 (bridge in ``lbk-nat``; the default route points
to 198.51.100.129, which nobody answers) and ``enp0s8`` on the LAN with the client and the pools.
The NAT /25 is the upper half of the WAN /24 (router .1, WAN client .10 stay in the lower half):
a node's connected NAT /25 is more specific than its WAN /24 route via the router.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

API_PORT = 6443
SWITCH_NS = "lbk-sw"
API_NS = "lbk-api"
CLIENT_NS = "lbk-client"
HOST_IF = "lbk-host"
HOST_MGMT = ipaddress.IPv4Interface("203.0.113.253/30")
API_MGMT = ipaddress.IPv4Interface("203.0.113.254/30")
LAN_V4 = ipaddress.IPv4Network("192.0.2.0/24")
LAN_V6 = ipaddress.IPv6Network("2001:db8:100::/64")
POOL_V4 = "192.0.2.200-192.0.2.250"
WAN_V4 = ipaddress.IPv4Network("198.51.100.0/24")
WAN_ROUTER = ipaddress.IPv4Interface("198.51.100.1/24")
WAN_CLIENT = ipaddress.IPv4Interface("198.51.100.10/24")
BGP_POOL_V4 = "203.0.113.10-203.0.113.50"
ROUTER_ASN = 64512
NODE_ASN = 64513
MODES = ("l2", "bgp", "both")
NAT_V4 = ipaddress.IPv4Network("198.51.100.128/25")
NAT_V6 = ipaddress.IPv6Network("2001:db8:51::/64")
NAT_GATEWAY = ipaddress.IPv4Address("198.51.100.129")
NAT_IF = "enp0s3"
LAN_IF_VBOX = "enp0s8"


def default_state_dir() -> Path:
    """Where the lab keeps kubeconfigs, logs, pid files and the API state."""
    return Path(os.environ.get("LBS_LAB_DIR", "/run/lbspeaker-lab"))


@dataclass(frozen=True)
class Member:
    """One namespace on the LAN."""

    ns: str
    name: str
    host: int

    @property
    def v4(self) -> ipaddress.IPv4Interface:
        """Its IPv4 on the LAN."""
        return ipaddress.IPv4Interface(f"{LAN_V4.network_address + self.host}/{LAN_V4.prefixlen}")

    @property
    def v6(self) -> ipaddress.IPv6Interface:
        """Its IPv6 on the LAN."""
        return ipaddress.IPv6Interface(f"{LAN_V6.network_address + self.host}/{LAN_V6.prefixlen}")

    @property
    def switch_port(self) -> str:
        """Its port name on the switch bridge."""
        return f"p-{self.name}"[:15]


@dataclass(frozen=True)
class Topology:
    """The whole lab for a number of nodes.

    ``prefix`` names every namespace (``lbk-`` for the user's lab); tests and benchmarks that
    need a private lab beside it pass their own prefix and a distinct ``mgmt_index`` (which /30 of
    203.0.113.0/24 links the host to the API namespace).
    """

    nodes: int = 3
    state_dir: Path = field(default_factory=default_state_dir)
    prefix: str = field(default_factory=lambda: os.environ.get("LBS_LAB_PREFIX", "lbk-"))
    mgmt_index: int = field(default_factory=lambda: int(os.environ.get("LBS_LAB_MGMT_INDEX", "0")))
    speaker_args: tuple[str, ...] = ()
    """Extra command-line arguments for every speaker (e.g. membership tuning)."""
    mode: str = "l2"
    """l2 (ARP/NDP only), bgp (adds the BIRD router and the WAN client) or both."""
    nics: int = 1
    """NICs per node: 1 (``eth0`` on the LAN) or 2 (VirtualBox-shaped: ``enp0s3`` NAT + ``enp0s8`` LAN)."""

    def __post_init__(self) -> None:
        if not 0 <= self.mgmt_index < 63 or len(self.host_if) > 15:
            raise ValueError(f"lab topology: prefix '{self.prefix}' too long or mgmt_index {self.mgmt_index} "
                             "out of 0..62")
        if self.nics not in (1, 2):
            raise ValueError(f"lab topology: nics {self.nics} is not 1 or 2")
        if self.mode not in MODES:
            raise ValueError(f"lab topology: mode '{self.mode}' is not one of {', '.join(MODES)}")

    @property
    def lan_if(self) -> str:
        """The nodes' LAN interface name (``eth0``, or ``enp0s8`` with two NICs)."""
        return LAN_IF_VBOX if self.nics == 2 else "eth0"

    @property
    def nat_switch_ns(self) -> str:
        """The namespace holding the NAT bridge (two NICs only)."""
        return f"{self.prefix}nat"

    def nat_v4(self, m: Member) -> ipaddress.IPv4Interface:
        """A node's IPv4 on the NAT network."""
        return ipaddress.IPv4Interface(f"{NAT_V4.network_address + 10 + m.host}/{NAT_V4.prefixlen}")

    def nat_v6(self, m: Member) -> ipaddress.IPv6Interface:
        """A node's IPv6 on the NAT network."""
        return ipaddress.IPv6Interface(f"{NAT_V6.network_address + m.host}/{NAT_V6.prefixlen}")

    @property
    def bgp(self) -> bool:
        """True when the lab has the BGP router."""
        return self.mode in ("bgp", "both")

    @property
    def router(self) -> Member:
        """The BGP router namespace (on the LAN as .1)."""
        return Member(f"{self.prefix}router", "router", 1)

    @property
    def wan_client_ns(self) -> str:
        """The client namespace behind the router."""
        return f"{self.prefix}wan-client"

    @property
    def bird_dir(self) -> Path:
        """BIRD's config, control socket and log."""
        return self.state_dir / "bird"

    @property
    def bird_socket(self) -> Path:
        """BIRD's control socket (``birdc -s``)."""
        return self.bird_dir / "bird.ctl"

    @property
    def switch_ns(self) -> str:
        """The namespace holding the LAN bridge."""
        return f"{self.prefix}sw"

    @property
    def host_if(self) -> str:
        """The host-side end of the management veth."""
        return f"{self.prefix}host"

    @property
    def host_mgmt(self) -> ipaddress.IPv4Interface:
        """The host's address on the management /30."""
        return ipaddress.IPv4Interface(f"{HOST_MGMT.ip - 4 * self.mgmt_index}/30")

    @property
    def api_mgmt(self) -> ipaddress.IPv4Interface:
        """The API namespace's address on the management /30."""
        return ipaddress.IPv4Interface(f"{API_MGMT.ip - 4 * self.mgmt_index}/30")

    @property
    def api(self) -> Member:
        """The control-plane namespace."""
        return Member(f"{self.prefix}api", "api", 2)

    @property
    def client(self) -> Member:
        """The client namespace."""
        return Member(f"{self.prefix}client", "client", 100)

    def node(self, i: int) -> Member:
        """Node i (1-based)."""
        return Member(f"{self.prefix}node{i}", f"node{i}", 10 + i)

    def node_ns(self, name: str) -> str:
        """The namespace of the node called name."""
        return f"{self.prefix}{name}"

    @property
    def node_members(self) -> list[Member]:
        """All nodes."""
        return [self.node(i) for i in range(1, self.nodes + 1)]

    @property
    def lan_members(self) -> list[Member]:
        """Everything plugged into the switch."""
        return [self.api, *self.node_members, self.client, *([self.router] if self.bgp else [])]

    @property
    def host_url(self) -> str:
        """API URL from the host namespace."""
        return f"http://{self.api_mgmt.ip}:{API_PORT}"

    @property
    def lan_url(self) -> str:
        """API URL from inside the lab."""
        return f"http://{self.api.v4.ip}:{API_PORT}"

    @property
    def kubeconfig(self) -> Path:
        """Kubeconfig for the host (kubectl, lbctl)."""
        return self.state_dir / "kubeconfig"

    @property
    def lan_kubeconfig(self) -> Path:
        """Kubeconfig for processes inside the lab."""
        return self.state_dir / "kubeconfig-lan"


def kubeconfig_text(server: str) -> str:
    """A kubeconfig pointing at a plain-HTTP API server."""
    return (
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: lbspeaker-lab\n  cluster:\n    server: {server}\n"
        "users:\n- name: lbspeaker-lab\n  user: {}\n"
        "contexts:\n- name: lbspeaker-lab\n  context:\n    cluster: lbspeaker-lab\n    user: lbspeaker-lab\n"
        "current-context: lbspeaker-lab\n"
    )

"""Which of the node's interfaces answer ARP/NDP for a VIP, decided from a snapshot of its links.

Why: nodes have several NICs (a VirtualBox node has ``enp0s3`` = NAT and ``enp0s8`` = the LAN the
VIPs live on), so "answer on eth0" is wrong and "answer everywhere" leaks VIPs onto networks that
must not see them. The rule, like MetalLB's:

1. ``fixed`` (the speaker's ``--interface`` list) wins: those names, narrowed by ``restrict``.
2. ``restrict`` (``L2Advertisement.spec.interfaces``): exactly the named links that exist.
3. Else the non-excluded links with a subnet containing the VIP (an address of the VIP's family
   whose network holds it; host addresses /32 and /128 are not subnets, so the VIP bound to
   ``kube-ipvs0`` or ``lo`` never counts).
4. Else every non-excluded link that is up.

Invariants: the result keeps the order of ``links``; a link that is down stays selected in
cases 1-3 (its addresses survive link down), so the speaker sees the VIP's NIC is down and steps
down instead of silently announcing into a dead link. Excluded names (``EXCLUDED_NAMES``,
``EXCLUDED_PREFIXES``) are loopback and the virtual devices of container runtimes, CNIs, tunnels
and kube-proxy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from lbspeaker.core.config import Config
from lbspeaker.core.service import IPAddress

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

EXCLUDED_NAMES = frozenset({"lo"})
"""Interfaces never chosen automatically, by exact name."""
EXCLUDED_PREFIXES = (
    "cni", "veth", "docker", "br-", "kube-ipvs", "kube-bridge", "kube-dummy", "cali", "cilium",
    "flannel", "vxlan", "genev", "tunl", "tun", "weave", "lxc", "nodelocaldns", "virbr",
)
"""Interfaces never chosen automatically, by name prefix (CNI, container, tunnel, kube-proxy devices)."""


@dataclass(frozen=True)
class LinkInfo:
    """One network interface of the node as last read."""

    name: str
    up: bool
    """Administratively up and with carrier."""
    addresses: tuple[IPInterface, ...] = ()
    index: int = 0
    """The kernel's ifindex (0 = unknown); a link deleted and re-created under its name changes it."""


def excluded(name: str) -> bool:
    """True for interfaces never chosen automatically (loopback, CNI/container/tunnel devices)."""
    return name in EXCLUDED_NAMES or name.startswith(EXCLUDED_PREFIXES)


def in_subnet(ip: IPAddress, addr: IPInterface) -> bool:
    """True when addr is a subnet (not a host address) of ip's family that contains ip."""
    net = addr.network
    return net.version == ip.version and net.prefixlen < net.max_prefixlen and ip in net


def select_interfaces(
    ip: IPAddress,
    links: Iterable[LinkInfo],
    *,
    restrict: Iterable[str] = (),
    fixed: Iterable[str] = (),
) -> tuple[str, ...]:
    """The interfaces to answer for ip on (see the module docstring for the rule)."""
    allowed = frozenset(restrict)
    pinned = tuple(fixed)
    if pinned:
        return tuple(n for n in pinned if not allowed or n in allowed)
    snapshot = tuple(links)
    if allowed:
        return tuple(link.name for link in snapshot if link.name in allowed)
    usable = [link for link in snapshot if not excluded(link.name)]
    matched = tuple(link.name for link in usable if any(in_subnet(ip, a) for a in link.addresses))
    return matched or tuple(link.name for link in usable if link.up)


def advertised_interfaces(ip: IPAddress, config: Config, *, node_labels: Mapping[str, str]) -> tuple[str, ...] | None:
    """The interface restriction the node's L2Advertisements put on ip: None = not advertised here, () = none.

    Service selectors are ignored: this answers "could this node announce ip", which is what
    health gating needs (it must not depend on the election the health feeds).
    """
    pool = config.pool_of(ip)
    if pool is None:
        return None
    found: set[str] = set()
    seen = False
    for ad in config.l2_advertisements:
        if pool.name not in ad.pools:
            continue
        if ad.node_selectors and not any(s.matches(node_labels) for s in ad.node_selectors):
            continue
        if not ad.interfaces:
            return ()
        seen = True
        found.update(ad.interfaces)
    return tuple(sorted(found)) if seen else None

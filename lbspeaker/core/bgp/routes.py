"""Which BGP sessions a node opens and which routes it announces on each, as pure functions.

Invariants:
- a node that is excluded (``node.kubernetes.io/exclude-from-external-load-balancers``) or has
  ``NetworkUnavailable`` announces nothing;
- ``externalTrafficPolicy: Cluster`` announces while any endpoint anywhere is ready; ``Local``
  only from nodes with a ready local endpoint;
- a route goes only to sessions of its own address family (an IPv4 session carries IPv4
  prefixes, an IPv6 session IPv6 prefixes); next hop ``None`` means "self" (the session's local
  address), so each family gets a next hop it can use;
- several advertisements yielding the same prefix for one peer merge: communities are united,
  the highest local-pref wins (deterministic, never a flap between two values).
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from lbspeaker.core.bgp.bgpobjects import BFDProfile, BGPPeer, SecretRef
from lbspeaker.core.bgp.config import BGPConfig
from lbspeaker.core.bgp.values import CommunityValue, community_key
from lbspeaker.core.config import Config
from lbspeaker.core.node import NodeInfo, ServiceEndpoints
from lbspeaker.core.service import IPAddress, ServiceRef

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_GRACEFUL_RESTART_S = 120


@dataclass(frozen=True)
class Session:
    """One BGP session a speaker opens: everything exabgp needs, secrets resolved."""

    peer: str
    peer_address: IPAddress
    local_address: IPAddress
    my_asn: int
    peer_asn: int
    router_id: ipaddress.IPv4Address
    peer_port: int = 179
    hold_time_s: int = 90
    password: str = ""
    ebgp_multihop: bool = False
    graceful_restart_s: int = 0
    bfd: BFDProfile | None = None

    @property
    def ibgp(self) -> bool:
        """True when both ends share one ASN."""
        return self.my_asn == self.peer_asn


@dataclass(frozen=True)
class SkippedPeer:
    """A selected peer this node cannot open a session to, and why (reported, never raised)."""

    peer: str
    reason: str


@dataclass(frozen=True, order=True)
class Route:
    """One prefix to announce with its path attributes; next_hop None = the session's own address."""

    prefix: IPNetwork
    next_hop: IPAddress | None = None
    local_pref: int | None = None
    communities: tuple[CommunityValue, ...] = ()


def _router_id(node: NodeInfo) -> ipaddress.IPv4Address:
    for a in node.addresses:
        if isinstance(a, ipaddress.IPv4Address):
            return a
    digest = hashlib.sha256(node.name.encode()).digest()[:4]
    return ipaddress.IPv4Address(int.from_bytes(digest, "big") | 1)


def _session(peer: BGPPeer, node: NodeInfo, passwords: Mapping[SecretRef, str], bgp: BGPConfig) -> Session:
    local = peer.source_address
    if local is None:
        local = next((a for a in node.addresses if a.version == peer.peer_address.version), None)
    if local is None:
        raise LookupError(f"node '{node.name}' has no IPv{peer.peer_address.version} address and no sourceAddress")
    password = peer.password
    if peer.password_secret is not None:
        ref = peer.password_secret
        if ref not in passwords:
            raise LookupError(f"Secret '{ref.namespace}/{ref.name}' with key 'password' not found")
        password = passwords[ref]
    return Session(
        peer=peer.name,
        peer_address=peer.peer_address,
        local_address=local,
        my_asn=peer.my_asn,
        peer_asn=peer.peer_asn,
        router_id=peer.router_id or _router_id(node),
        peer_port=peer.peer_port,
        hold_time_s=peer.hold_time_s,
        password=password,
        ebgp_multihop=peer.ebgp_multihop,
        graceful_restart_s=DEFAULT_GRACEFUL_RESTART_S if peer.enable_graceful_restart else 0,
        bfd=bgp.bfd_profiles.get(peer.bfd_profile) if peer.bfd_profile else None,
    )


def sessions_for_node(
    bgp: BGPConfig, node: NodeInfo, *, passwords: Mapping[SecretRef, str]
) -> tuple[tuple[Session, ...], tuple[SkippedPeer, ...]]:
    """The sessions this node opens (sorted by peer name) and the selected peers it must skip."""
    sessions: list[Session] = []
    skipped: list[SkippedPeer] = []
    seen: dict[tuple[IPAddress, int], str] = {}
    labels = node.label_map
    for name in sorted(bgp.peers):
        peer = bgp.peers[name]
        if not peer.selects_node(labels):
            continue
        key = (peer.peer_address, peer.peer_port)
        if key in seen:
            skipped.append(SkippedPeer(name, f"BGPPeer '{seen[key]}' already peers with '{peer.peer_address}'"))
            continue
        try:
            sessions.append(_session(peer, node, passwords, bgp))
        except LookupError as exc:
            skipped.append(SkippedPeer(name, str(exc)))
            continue
        seen[key] = name
    return tuple(sessions), tuple(skipped)


def should_announce(svc: ServiceRef, endpoints: ServiceEndpoints | None, node: NodeInfo) -> bool:
    """True when this node announces the service's IPs (ETP, exclusion and node health rules)."""
    if not svc.is_load_balancer or not svc.ingress_ips:
        return False
    if node.excluded or node.network_unavailable:
        return False
    if endpoints is None:
        return False
    if svc.external_traffic_policy == "Local":
        return node.name in endpoints.ready_nodes
    return endpoints.any_ready


def _merge(routes: Iterable[Route]) -> Route:
    items = list(routes)
    prefs = [r.local_pref for r in items if r.local_pref is not None]
    comms = sorted({c for r in items for c in r.communities}, key=community_key)
    return Route(items[0].prefix, items[0].next_hop, max(prefs) if prefs else None, tuple(comms))


def desired_routes(
    config: Config,
    bgp: BGPConfig,
    *,
    node: NodeInfo,
    services: Iterable[ServiceRef],
    endpoints: Mapping[str, ServiceEndpoints],
    sessions: Iterable[Session],
) -> dict[str, frozenset[Route]]:
    """Per session peer name: the routes this node announces (every session gets an entry)."""
    session_list = list(sessions)
    found: dict[tuple[str, IPNetwork], list[Route]] = {}
    labels = node.label_map
    for svc in services:
        if not should_announce(svc, endpoints.get(svc.key), node):
            continue
        for ip in svc.ingress_ips:
            pool = config.pool_of(ip)
            if pool is None:
                continue
            for adv in bgp.advertisements:
                if not adv.selects_pool(pool) or not adv.selects_node(labels):
                    continue
                prefix = ipaddress.ip_network((ip, adv.prefix_length(ip)), strict=False)
                route = Route(prefix, None, adv.local_pref, adv.communities)
                for s in session_list:
                    if s.peer_address.version == ip.version and adv.selects_peer(s.peer):
                        found.setdefault((s.peer, prefix), []).append(route)
    out: dict[str, set[Route]] = {s.peer: set() for s in session_list}
    for (peer, _), routes in found.items():
        out[peer].add(_merge(routes))
    return {k: frozenset(v) for k, v in out.items()}


def diff_routes(old: frozenset[Route], new: frozenset[Route]) -> tuple[frozenset[IPNetwork], frozenset[Route]]:
    """(prefixes to withdraw, routes to announce) from old to new; changed attributes only re-announce."""
    new_prefixes = {r.prefix for r in new}
    withdraw = frozenset(r.prefix for r in old if r.prefix not in new_prefixes)
    return withdraw, frozenset(new - old)

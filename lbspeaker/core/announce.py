"""L2 mode: which node announces each LoadBalancer IP, and why an IP is not announced.

Every speaker computes the whole table from the same inputs (Services, Nodes, EndpointSlices,
config, and its membership view) and acts on the rows naming itself. The table doubles as the
visibility answer ("who announces what, and why not").

Invariants:

- One election per group of IPs: the IPs of a Service form one group, and Services sharing an
  IP join their groups. A group is keyed by the smallest first-ingress IP of its Services, so
  both families of a dual-stack Service and every Service sharing an IP land on one node
  whenever one node is eligible for all of them. Only when no single node is (e.g. the two
  families are advertised to disjoint node sets) does each IP elect on its own, with the same
  key.
- Eligible node = selected by an L2Advertisement that covers the IP's pool and selects the
  Service, Ready, network available, not labelled exclude-from-external-load-balancers, alive
  in the membership view (``alive=None`` = no view yet, no filtering), and for
  ``externalTrafficPolicy: Local`` hosting a ready endpoint of the Service.
- An IP shared by Services elects among the nodes eligible for all of them; if that set is
  empty (a misconfiguration: MetalLB refuses such sharing) it falls back to the nodes eligible
  for any of them rather than leaving every Service dark.
- Expected outcomes are ``L2Reason`` values, never exceptions.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from lbspeaker.core import election
from lbspeaker.core.config import Config, L2Advertisement
from lbspeaker.core.labels import LabelSelector
from lbspeaker.core.node import NodeInfo, ServiceEndpoints
from lbspeaker.core.service import IPAddress, ServiceRef


class L2Reason(enum.Enum):
    """Why an IP has (or has no) announcing node; ordered from earliest to latest failing stage."""

    NOT_IN_POOL = "NotInPool"
    NO_ADVERTISEMENT = "NoAdvertisement"
    NO_ENDPOINTS = "NoEndpoints"
    NO_ELIGIBLE_NODE = "NoEligibleNode"
    ANNOUNCED = "Announced"


_STAGE = {r: i for i, r in enumerate(L2Reason)}


@dataclass(frozen=True)
class L2Assignment:
    """The outcome of the L2 election for one IP."""

    ip: IPAddress
    node: str | None
    reason: L2Reason
    services: tuple[str, ...]
    interfaces: tuple[str, ...] = ()
    election_key: IPAddress | None = None
    ranking: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Pair:
    """One (Service, IP) after filtering: either a failure reason or its eligible nodes."""

    reason: L2Reason
    eligible: frozenset[str] = frozenset()
    ads: tuple[L2Advertisement, ...] = ()


def l2_assignments(
    *,
    services: Sequence[ServiceRef],
    nodes: Mapping[str, NodeInfo],
    config: Config,
    endpoints: Mapping[str, ServiceEndpoints],
    alive: frozenset[str] | None,
    load_balancer_class: str | None = None,
    weights: Mapping[str, float] | None = None,
) -> dict[IPAddress, L2Assignment]:
    """The L2 assignment of every ingress IP of every LoadBalancer Service of our class.

    ``nodes`` and ``endpoints`` are keyed by node name and ``namespace/name``; ``weights`` (node
    name -> weight, default 1) biases the election towards preferred nodes.
    """
    ours = sorted(
        (s for s in services if s.is_load_balancer and s.load_balancer_class == load_balancer_class),
        key=lambda s: s.key,
    )
    usable = frozenset(n for n, info in nodes.items() if _node_usable(n, info, alive))
    if weights is None:
        weights = node_weights(config, nodes)
    node_labels = {n: nodes[n].label_map for n in usable}
    pairs: dict[IPAddress, dict[str, _Pair]] = {}
    for svc in ours:
        for ip in svc.ingress_ips:
            pairs.setdefault(ip, {})[svc.key] = _pair(
                svc, ip, node_labels=node_labels, usable=usable, config=config, endpoints=endpoints
            )
    out: dict[IPAddress, L2Assignment] = {}
    for key, ips in _groups(ours).items():
        per_ip = {ip: _ip_candidates(pairs[ip]) for ip in ips}
        sets = [c for c in per_ip.values() if c]
        common = frozenset.intersection(*sets) if sets else frozenset()
        for ip in ips:
            cands = common or per_ip[ip]
            out[ip] = _assign(ip, key, cands, pairs[ip], nodes=nodes, weights=weights)
    return out


def node_weights(config: Config, nodes: Mapping[str, NodeInfo]) -> dict[str, float] | None:
    """Election weights from the advertisements' preferredNodes (None when no advertisement sets any)."""
    prefs = [p for ad in config.l2_advertisements for p in ad.preferred_nodes]
    if not prefs:
        return None
    out = {}
    for name, info in nodes.items():
        labels = info.label_map
        matched = [w for sel, w in prefs if sel.matches(labels)]
        out[name] = max(matched) if matched else 1.0
    return out


def owned_by(node: str, assignments: Mapping[IPAddress, L2Assignment]) -> frozenset[IPAddress]:
    """The IPs that node announces."""
    return frozenset(ip for ip, a in assignments.items() if a.node == node)


def _node_usable(name: str, info: NodeInfo, alive: frozenset[str] | None) -> bool:
    return info.ready and not info.network_unavailable and not info.excluded and (alive is None or name in alive)


def _selects(selectors: tuple[LabelSelector, ...], labels: Mapping[str, str]) -> bool:
    """No selector selects everything; several are ORed."""
    return not selectors or any(s.matches(labels) for s in selectors)


def _pair(
    svc: ServiceRef,
    ip: IPAddress,
    *,
    node_labels: Mapping[str, Mapping[str, str]],
    usable: frozenset[str],
    config: Config,
    endpoints: Mapping[str, ServiceEndpoints],
) -> _Pair:
    pool = config.pool_of(ip)
    if pool is None:
        return _Pair(L2Reason.NOT_IN_POOL)
    svc_labels = svc.label_map
    ads = tuple(
        ad for ad in config.l2_advertisements if pool.name in ad.pools and _selects(ad.service_selectors, svc_labels)
    )
    if not ads:
        return _Pair(L2Reason.NO_ADVERTISEMENT)
    eligible = frozenset(n for n in usable if any(_selects(ad.node_selectors, node_labels[n]) for ad in ads))
    if svc.external_traffic_policy == "Local":
        eps = endpoints.get(svc.key)
        if eps is None or not eps.any_ready:
            return _Pair(L2Reason.NO_ENDPOINTS, ads=ads)
        eligible &= eps.ready_nodes
    if not eligible:
        return _Pair(L2Reason.NO_ELIGIBLE_NODE, ads=ads)
    return _Pair(L2Reason.ANNOUNCED, eligible, ads)


def _ip_candidates(by_service: Mapping[str, _Pair]) -> frozenset[str]:
    """Nodes eligible for every announceable Service on the IP, else for any of them."""
    sets = [p.eligible for p in by_service.values() if p.reason is L2Reason.ANNOUNCED]
    if not sets:
        return frozenset()
    return frozenset.intersection(*sets) or frozenset.union(*sets)


def _assign(
    ip: IPAddress,
    key: IPAddress,
    candidates: frozenset[str],
    by_service: Mapping[str, _Pair],
    *,
    nodes: Mapping[str, NodeInfo],
    weights: Mapping[str, float] | None,
) -> L2Assignment:
    services = tuple(sorted(by_service))
    if not candidates:
        reason = max((p.reason for p in by_service.values()), key=_STAGE.__getitem__)
        if reason is L2Reason.ANNOUNCED:  # every Service had nodes, but the group shares none
            reason = L2Reason.NO_ELIGIBLE_NODE
        return L2Assignment(ip, None, reason, services, election_key=key)
    ranked = tuple(election.ranking(key, candidates, weights=weights))
    node = ranked[0]
    return L2Assignment(
        ip,
        node,
        L2Reason.ANNOUNCED,
        services,
        _interfaces(node, nodes[node], by_service.values()),
        key,
        ranked,
    )


def _interfaces(name: str, node: NodeInfo, pairs: Iterable[_Pair]) -> tuple[str, ...]:
    """Union of the interfaces of the advertisements that select node; () means all."""
    found: set[str] = set()
    labels = node.label_map
    for p in pairs:
        if name not in p.eligible:
            continue
        for ad in p.ads:
            if not _selects(ad.node_selectors, labels):
                continue
            if not ad.interfaces:
                return ()
            found.update(ad.interfaces)
    return tuple(sorted(found))


def _groups(services: Sequence[ServiceRef]) -> dict[IPAddress, list[IPAddress]]:
    """Union-find over IPs linked by a Service; each group keyed by its smallest first-ingress IP."""
    parent: dict[IPAddress, IPAddress] = {}

    def find(ip: IPAddress) -> IPAddress:
        root = ip
        while parent[root] != root:
            root = parent[root]
        while parent[ip] != root:
            parent[ip], ip = root, parent[ip]
        return root

    firsts: list[IPAddress] = []
    for svc in services:
        if not svc.ingress_ips:
            continue
        firsts.append(svc.ingress_ips[0])
        for ip in svc.ingress_ips:
            parent.setdefault(ip, ip)
        for ip in svc.ingress_ips[1:]:
            parent[find(ip)] = find(svc.ingress_ips[0])
    keys: dict[IPAddress, IPAddress] = {}
    for first in sorted(firsts, key=_ip_order, reverse=True):
        keys[find(first)] = first  # the smallest first-ingress IP is written last
    groups: dict[IPAddress, list[IPAddress]] = {}
    for ip in sorted(parent, key=_ip_order):
        groups.setdefault(keys[find(ip)], []).append(ip)
    return groups


def _ip_order(ip: IPAddress) -> tuple[int, int]:
    return (ip.version, int(ip))

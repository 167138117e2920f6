"""Sessions per node and the desired route set: ETP, exclusion, families, aggregation, merging."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from lbspeaker.core.bgp.config import BGPConfig, SecretRef, parse_bgp
from lbspeaker.core.bgp.routes import Route, desired_routes, diff_routes, sessions_for_node
from lbspeaker.core.bgp.values import StandardCommunity
from lbspeaker.core.config import Config, IPRange, Pool
from lbspeaker.core.node import EXCLUDE_LABEL, NodeInfo, ServiceEndpoints
from lbspeaker.core.service import ServiceRef

ip = ipaddress.ip_address
net = ipaddress.ip_network

POOLS = {
    "v4": Pool("v4", (IPRange(ip("203.0.113.0"), ip("203.0.113.255")),)),
    "v6": Pool("v6", (IPRange(ip("2001:db8:1::"), ip("2001:db8:1::ffff")),)),
}
CONFIG = Config(pools=POOLS)
NODE = NodeInfo("n1", labels=(("zone", "a"),), addresses=(ip("192.0.2.2"), ip("2001:db8::2")))


def o(name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns"}, "spec": spec}


def bgp(*advs: dict[str, Any]) -> BGPConfig:
    res = parse_bgp(
        peers=[
            o("r4", myASN=64513, peerASN=64512, peerAddress="192.0.2.1", passwordSecret={"name": "s"}),
            o("r6", myASN=64513, peerASN=64512, peerAddress="2001:db8::1", enableGracefulRestart=True),
            o(
                "other",
                myASN=64513,
                peerASN=64512,
                peerAddress="192.0.2.9",
                nodeSelectors=[{"matchLabels": {"z": "b"}}],
            ),
        ],
        advertisements=list(advs) or [o("all")],
        pools=POOLS,
    )
    assert res.errors == ()
    return res.config


PASSWORDS = {SecretRef("ns", "s"): "pw"}


def svc(name: str, *ips: str, etp: str = "Cluster") -> ServiceRef:
    return ServiceRef(
        "default", name, type="LoadBalancer", external_traffic_policy=etp, ingress_ips=tuple(map(ip, ips))
    )


def routes(
    cfg: BGPConfig, services: list[ServiceRef], eps: dict[str, set[str]], node: NodeInfo = NODE
) -> dict[str, Any]:
    sessions, _ = sessions_for_node(cfg, node, passwords=PASSWORDS)
    endpoints = {k: ServiceEndpoints(k, frozenset(v)) for k, v in eps.items()}
    got = desired_routes(CONFIG, cfg, node=node, services=services, endpoints=endpoints, sessions=sessions)
    return {k: sorted(str(r.prefix) for r in v) for k, v in got.items()}


def test_sessions_for_node() -> None:
    sessions, skipped = sessions_for_node(bgp(), NODE, passwords=PASSWORDS)
    assert [(s.peer, str(s.local_address), s.password, s.graceful_restart_s) for s in sessions] == [
        ("r4", "192.0.2.2", "pw", 0),
        ("r6", "2001:db8::2", "", 120),
    ]
    assert skipped == ()
    assert {str(s.router_id) for s in sessions} == {"192.0.2.2"}


def test_sessions_skip_with_reason() -> None:
    v6only = NodeInfo("n6", addresses=(ip("2001:db8::7"),))
    sessions, skipped = sessions_for_node(bgp(), v6only, passwords=PASSWORDS)
    assert [s.peer for s in sessions] == ["r6"]
    assert sessions[0].router_id.version == 4
    assert [(s.peer, s.reason) for s in skipped] == [("r4", "node 'n6' has no IPv4 address and no sourceAddress")]
    _, skipped = sessions_for_node(bgp(), NODE, passwords={})
    assert [s.reason for s in skipped] == ["Secret 'ns/s' with key 'password' not found"]


@pytest.mark.parametrize(
    ("etp", "ready", "node", "expect"),
    [
        ("Cluster", {"n2"}, NODE, True),
        ("Cluster", set(), NODE, False),
        ("Local", {"n2"}, NODE, False),
        ("Local", {"n1"}, NODE, True),
        ("Cluster", {"n1"}, NodeInfo("n1", labels=((EXCLUDE_LABEL, ""),), addresses=NODE.addresses), False),
        ("Cluster", {"n1"}, NodeInfo("n1", network_unavailable=True, addresses=NODE.addresses), False),
    ],
)
def test_traffic_policy_and_node_state(etp: str, ready: set[str], node: NodeInfo, expect: bool) -> None:
    got = routes(bgp(), [svc("a", "203.0.113.5", "2001:db8:1::5", etp=etp)], {"default/a": ready}, node)
    want = {"r4": ["203.0.113.5/32"], "r6": ["2001:db8:1::5/128"]} if expect else {"r4": [], "r6": []}
    assert got == want


def test_no_endpoint_object_means_no_route() -> None:
    assert routes(bgp(), [svc("a", "203.0.113.5")], {}) == {"r4": [], "r6": []}


def test_aggregation_peer_and_node_selection() -> None:
    cfg = bgp(
        o(
            "agg",
            ipAddressPools=["v4", "v6"],
            aggregationLength=24,
            aggregationLengthV6=112,
            peers=["r4", "r6"],
        ),
        o("only6", ipAddressPools=["v6"], peers=["r6"], nodeSelectors=[{"matchLabels": {"zone": "b"}}]),
    )
    got = routes(
        cfg,
        [svc("a", "203.0.113.5", "203.0.113.77", "2001:db8:1::5"), svc("z", "192.0.2.99")],
        {"default/a": {"x"}, "default/z": {"x"}},
    )
    assert got == {"r4": ["203.0.113.0/24"], "r6": ["2001:db8:1::/112"]}


def test_merge_attributes_deterministically() -> None:
    cfg = bgp(o("a", localPref=100, communities=["65000:1"]), o("b", localPref=300, communities=["65000:2"]), o("c"))
    sessions, _ = sessions_for_node(cfg, NODE, passwords=PASSWORDS)
    got = desired_routes(
        CONFIG,
        cfg,
        node=NODE,
        services=[svc("a", "203.0.113.5")],
        endpoints={"default/a": ServiceEndpoints("default/a", frozenset({"n1"}))},
        sessions=sessions,
    )
    (r,) = got["r4"]
    assert r == Route(net("203.0.113.5/32"), None, 300, (StandardCommunity(65000, 1), StandardCommunity(65000, 2)))


def test_diff_routes() -> None:
    a = Route(net("203.0.113.1/32"))
    b = Route(net("203.0.113.2/32"))
    b2 = Route(net("203.0.113.2/32"), local_pref=5)
    withdraw, announce = diff_routes(frozenset({a, b}), frozenset({b2}))
    assert withdraw == {net("203.0.113.1/32")} and announce == {b2}
    assert diff_routes(frozenset({a}), frozenset({a})) == (frozenset(), frozenset())

"""L2 assignments: eligibility filters, reasons, one election per IP group, interfaces."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable, Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lbspeaker.core import election
from lbspeaker.core.announce import L2Assignment, L2Reason, l2_assignments, owned_by
from lbspeaker.core.config import Config, IPRange, L2Advertisement, Pool
from lbspeaker.core.labels import LabelSelector
from lbspeaker.core.node import EXCLUDE_LABEL, NodeInfo, ServiceEndpoints
from lbspeaker.core.service import IPAddress, ServiceRef

ip = ipaddress.ip_address
V4 = ip("192.0.2.10")
V6 = ip("2001:db8::10")
OTHER = ip("203.0.113.7")  # in no pool
POOLS = {
    "v4": Pool("v4", (IPRange(ip("192.0.2.0"), ip("192.0.2.255")),)),
    "v6": Pool("v6", (IPRange(ip("2001:db8::"), ip("2001:db8::ffff")),)),
    "bgp-only": Pool("bgp-only", (IPRange(ip("198.51.100.0"), ip("198.51.100.255")),)),
}
ALL = L2Advertisement("all", frozenset({"v4", "v6"}))
NAMES = ("n1", "n2", "n3", "n4")


def sel(**labels: str) -> LabelSelector:
    return LabelSelector(match_labels=tuple(sorted(labels.items())))


def cfg(*ads: L2Advertisement) -> Config:
    return Config(pools=POOLS, l2_advertisements=ads or (ALL,))


def svc(name: str, *ips: IPAddress, **kw: object) -> ServiceRef:
    kw.setdefault("type", "LoadBalancer")
    return ServiceRef("ns", name, ingress_ips=ips, **kw)  # type: ignore[arg-type]


def nodes(**changes: Mapping[str, object]) -> dict[str, NodeInfo]:
    out = {n: NodeInfo(n, labels=(("zone", "z" + n[-1]),)) for n in NAMES}
    for n, ch in changes.items():
        out[n] = dataclasses.replace(out[n], **ch)  # type: ignore[arg-type]
    return out


def assign(
    services: list[ServiceRef],
    *,
    config: Config | None = None,
    node_map: dict[str, NodeInfo] | None = None,
    endpoints: dict[str, ServiceEndpoints] | None = None,
    alive: frozenset[str] | None = None,
    **kw: object,
) -> dict[IPAddress, L2Assignment]:
    return l2_assignments(
        services=services,
        nodes=node_map if node_map is not None else nodes(),
        config=config or cfg(),
        endpoints=endpoints or {},
        alive=alive,
        **kw,  # type: ignore[arg-type]
    )


def test_announced_by_the_election_winner() -> None:
    out = assign([svc("web", V4)])
    a = out[V4]
    assert a.reason is L2Reason.ANNOUNCED
    assert a.node == election.winner(V4, NAMES) == a.ranking[0]
    assert (a.services, a.interfaces, a.election_key) == (("ns/web",), (), V4)
    assert sorted(a.ranking) == sorted(NAMES)


@pytest.mark.parametrize(
    ("service", "reason"),
    [
        (svc("x", OTHER), L2Reason.NOT_IN_POOL),
        (svc("x", ip("198.51.100.9")), L2Reason.NO_ADVERTISEMENT),
        (svc("x", V4, external_traffic_policy="Local"), L2Reason.NO_ENDPOINTS),
    ],
)
def test_reasons_for_not_announcing(service: ServiceRef, reason: L2Reason) -> None:
    (a,) = assign([service]).values()
    assert (a.node, a.reason) == (None, reason)


@pytest.mark.parametrize(
    "service",
    [
        svc("x", V4, type="ClusterIP"),
        svc("x", V4, load_balancer_class="other.example/lb"),
        svc("x"),  # no ingress IP yet
    ],
)
def test_services_not_ours_are_left_out(service: ServiceRef) -> None:
    assert assign([service]) == {}


def test_load_balancer_class_selects_services() -> None:
    ours = svc("x", V4, load_balancer_class="lbspeaker.io/lb")
    assert V4 in assign([ours], load_balancer_class="lbspeaker.io/lb")
    assert assign([svc("y", V4)], load_balancer_class="lbspeaker.io/lb") == {}


WINNER = election.ranking(V4, NAMES)[0]
RUNNER_UP = election.ranking(V4, NAMES)[1]


@pytest.mark.parametrize(
    "make_ineligible",
    [
        lambda: {"node_map": nodes(**{WINNER: {"ready": False}})},
        lambda: {"node_map": nodes(**{WINNER: {"network_unavailable": True}})},
        lambda: {"node_map": nodes(**{WINNER: {"labels": ((EXCLUDE_LABEL, ""),)}})},
        lambda: {"alive": frozenset(NAMES) - {WINNER}},
        lambda: {
            "config": cfg(L2Advertisement("some", frozenset({"v4"}), node_selectors=(sel(zone="z" + RUNNER_UP[-1]),)))
        },
    ],
    ids=["not-ready", "network-unavailable", "excluded", "not-alive", "node-selector"],
)
def test_ineligible_winner_hands_over_to_runner_up(make_ineligible: Callable[[], dict[str, object]]) -> None:
    a = assign([svc("web", V4)], **make_ineligible())[V4]  # type: ignore[arg-type]
    assert (a.node, a.reason) == (RUNNER_UP, L2Reason.ANNOUNCED)
    assert WINNER not in a.ranking


def test_alive_none_does_not_filter_but_empty_alive_does() -> None:
    assert assign([svc("web", V4)], alive=None)[V4].node == WINNER
    a = assign([svc("web", V4)], alive=frozenset())[V4]
    assert (a.node, a.reason) == (None, L2Reason.NO_ELIGIBLE_NODE)


def test_node_selectors_are_ored_across_advertisements() -> None:
    ads = (
        L2Advertisement("z1", frozenset({"v4"}), node_selectors=(sel(zone="z1"),)),
        L2Advertisement("z2", frozenset({"v4"}), node_selectors=(sel(zone="z2"),)),
    )
    assert set(assign([svc("web", V4)], config=cfg(*ads))[V4].ranking) == {"n1", "n2"}


def test_etp_local_follows_the_endpoints() -> None:
    local = svc("web", V4, external_traffic_policy="Local")
    for node in NAMES:
        eps = {"ns/web": ServiceEndpoints("ns/web", frozenset({node}))}
        assert assign([local], endpoints=eps)[V4].node == node
    only_on_dead = {"ns/web": ServiceEndpoints("ns/web", frozenset({"n1"}))}
    a = assign([local], endpoints=only_on_dead, alive=frozenset({"n2", "n3"}))[V4]
    assert (a.node, a.reason) == (None, L2Reason.NO_ELIGIBLE_NODE)


def test_service_selectors() -> None:
    ad = L2Advertisement("web-only", frozenset({"v4"}), service_selectors=(sel(app="web"),))
    out = assign([svc("web", V4, labels=(("app", "web"),)), svc("db", ip("192.0.2.11"))], config=cfg(ad))
    assert out[V4].reason is L2Reason.ANNOUNCED
    assert out[ip("192.0.2.11")].reason is L2Reason.NO_ADVERTISEMENT


def _v6_electing_differently() -> IPAddress:
    for i in range(1, 200):
        cand = ip(f"2001:db8::{i:x}")
        if election.winner(cand, NAMES) != WINNER:
            return cand
    raise AssertionError("no such address")


def test_dual_stack_goes_to_one_node_keyed_by_the_first_ip() -> None:
    v6 = _v6_electing_differently()
    out = assign([svc("dual", V4, v6)])
    assert out[V4].node == out[v6].node == WINNER
    assert out[V4].election_key == out[v6].election_key == V4


def test_services_sharing_an_ip_elect_together() -> None:
    v6 = _v6_electing_differently()
    out = assign([svc("b-dual", v6, V4), svc("a-http", V4)])  # b's first IP keys, V4 links them
    assert set(out) == {V4, v6}
    assert out[V4].services == ("ns/a-http", "ns/b-dual")
    assert out[V4].node == out[v6].node == election.winner(V4, NAMES)
    assert out[V4].election_key == V4  # smallest first-ingress IP of the group


def test_dual_stack_with_disjoint_node_sets_elects_per_ip() -> None:
    ads = (
        L2Advertisement("v4", frozenset({"v4"}), node_selectors=(sel(zone="z1"),)),
        L2Advertisement("v6", frozenset({"v6"}), node_selectors=(sel(zone="z2"),)),
    )
    out = assign([svc("dual", V4, V6)], config=cfg(*ads))
    assert (out[V4].node, out[V6].node) == ("n1", "n2")


def test_interfaces_come_from_the_advertisements_selecting_the_winner() -> None:
    ads = (
        L2Advertisement("a", frozenset({"v4"}), interfaces=("eth1",)),
        L2Advertisement("b", frozenset({"v4"}), interfaces=("eth2",), node_selectors=(sel(zone="z" + WINNER[-1]),)),
        L2Advertisement("c", frozenset({"v4"}), interfaces=("eth3",), node_selectors=(sel(zone="nowhere"),)),
    )
    assert assign([svc("web", V4)], config=cfg(*ads))[V4].interfaces == ("eth1", "eth2")
    any_if = (*ads, L2Advertisement("all-ifs", frozenset({"v4"})))
    assert assign([svc("web", V4)], config=cfg(*any_if))[V4].interfaces == ()


def test_weights_reach_the_election() -> None:
    heavy = RUNNER_UP
    assert assign([svc("web", V4)], weights={heavy: 1e6})[V4].node == heavy


def test_owned_by() -> None:
    v4b = ip("192.0.2.77")
    out = assign([svc("a", V4), svc("b", v4b), svc("c", OTHER)])
    owners = {a.node for a in out.values()}
    assert set().union(*(owned_by(n, out) for n in NAMES)) == {V4, v4b}
    assert owned_by("nobody", out) == frozenset()
    assert None in owners


@given(
    addrs=st.lists(
        st.tuples(st.integers(0, 40), st.integers(0, 40) | st.none()),
        min_size=1,
        max_size=12,
        unique_by=lambda t: t[0],
    ),
    dead=st.sampled_from(NAMES),
)
def test_a_node_owning_nothing_can_die_without_moving_anything(addrs: list[tuple[int, int | None]], dead: str) -> None:
    services = [
        svc(f"s{i}", ip(f"192.0.2.{a}"), *([ip(f"2001:db8::{b:x}")] if b is not None else []))
        for i, (a, b) in enumerate(addrs)
    ]
    before = assign(services, alive=frozenset(NAMES))
    for a in before.values():  # one node per Service, whatever the sharing
        assert a.reason is L2Reason.ANNOUNCED
    for s in services:
        assert len({before[x].node for x in s.ingress_ips}) == 1
    after = assign(services, alive=frozenset(NAMES) - {dead})
    for x, a in before.items():
        if a.node != dead:
            assert after[x].node == a.node
        else:
            assert after[x].node == a.ranking[1]

"""Election: stable, deterministic, rendezvous property, weights."""

from __future__ import annotations

import ipaddress
import math
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lbspeaker.core import election
from lbspeaker.core.service import IPAddress

V4 = ipaddress.IPv4Address("192.0.2.10")
V6 = ipaddress.IPv6Address("2001:db8::10")
NODES = ["node-a", "node-b", "node-c"]


def ips(n: int) -> list[IPAddress]:
    base = int(ipaddress.IPv4Address("198.51.100.0"))
    return [ipaddress.IPv4Address(base + i) for i in range(n)]


# Golden values: every speaker version must agree on these, or a rolling upgrade splits the
# cluster's view of who announces what. Change them only with a documented migration.
@pytest.mark.parametrize(
    ("ip", "nodes", "expected"),
    [
        (V4, NODES, ["node-a", "node-b", "node-c"]),
        (V6, NODES, ["node-b", "node-c", "node-a"]),
    ],
)
def test_golden_ranking(ip: IPAddress, nodes: list[str], expected: list[str]) -> None:
    assert election.ranking(ip, nodes) == expected


def test_golden_hash() -> None:
    assert election.node_hash(V4, "node-a") == 17376758202547610916


@pytest.mark.parametrize("candidates", [[], set(), ()])
def test_no_candidate_no_winner(candidates: list[str]) -> None:
    assert election.winner(V4, candidates) is None
    assert election.ranking(V4, candidates) == []


def test_order_and_duplicates_do_not_matter() -> None:
    assert election.ranking(V4, ["node-c", "node-a", "node-b", "node-a"]) == election.ranking(V4, NODES)


@pytest.mark.parametrize(
    ("removed", "moves"),
    [
        ("node-b", False),  # not the winner of V4: stays
        ("node-c", False),
        ("node-a", True),  # the winner: the runner-up takes over
    ],
)
def test_removing_a_node(removed: str, moves: bool) -> None:
    before = election.winner(V4, NODES)
    after = election.winner(V4, [n for n in NODES if n != removed])
    assert (after != before) is moves
    if moves:
        assert after == election.ranking(V4, NODES)[1]


node_names = st.text(alphabet="abcdefghij-0123456789", min_size=1, max_size=12)
v4s = st.integers(min_value=0, max_value=2**32 - 1).map(ipaddress.IPv4Address)
weight_values = st.floats(min_value=0.01, max_value=100.0)


@given(ip=v4s, nodes=st.sets(node_names, min_size=2, max_size=8), data=st.data())
def test_removing_a_non_winner_never_moves_the_ip(ip: IPAddress, nodes: set[str], data: st.DataObject) -> None:
    weights = data.draw(st.dictionaries(st.sampled_from(sorted(nodes)), weight_values))
    win = election.winner(ip, nodes, weights=weights)
    loser = data.draw(st.sampled_from(sorted(nodes - {win})))
    assert election.winner(ip, nodes - {loser}, weights=weights) == win


@given(ip=v4s, nodes=st.sets(node_names, min_size=1, max_size=8), new=node_names)
def test_adding_a_node_moves_the_ip_only_to_it(ip: IPAddress, nodes: set[str], new: str) -> None:
    before = election.winner(ip, nodes)
    after = election.winner(ip, nodes | {new})
    assert after in (before, new)


def test_spread_is_even_without_weights() -> None:
    counts = Counter(election.winner(ip, NODES) for ip in ips(3000))
    assert all(abs(c / 3000 - 1 / 3) < 0.04 for c in counts.values()), counts


def test_weights_shift_the_share() -> None:
    counts = Counter(election.winner(ip, ["light", "heavy"], weights={"heavy": 3.0}) for ip in ips(4000))
    assert abs(counts["heavy"] / 4000 - 0.75) < 0.03, counts


def test_equal_weights_rank_like_no_weights() -> None:
    for ip in ips(50):
        assert election.ranking(ip, NODES, weights=dict.fromkeys(NODES, 2.5)) == election.ranking(ip, NODES)


@pytest.mark.parametrize("bad", [0.0, -1.0, math.inf, math.nan])
def test_invalid_weight_is_a_fault(bad: float) -> None:
    with pytest.raises(ValueError, match="node-a"):
        election.winner(V4, NODES, weights={"node-a": bad})

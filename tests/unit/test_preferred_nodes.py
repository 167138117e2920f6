"""preferredNodes (our L2Advertisement extension): parsing, and its bias on the election."""

from __future__ import annotations

import ipaddress

import pytest

from lbspeaker.core.announce import l2_assignments, node_weights
from lbspeaker.core.config import parse_config
from lbspeaker.core.node import NodeInfo
from lbspeaker.core.service import ServiceRef

POOL = {"metadata": {"name": "p", "namespace": "x"}, "spec": {"addresses": ["192.0.2.0/26"]}}


def ad(preferred: object) -> dict[str, object]:
    return {"metadata": {"name": "a", "namespace": "x"}, "spec": {"ipAddressPools": ["p"], "preferredNodes": preferred}}


@pytest.mark.parametrize(("preferred", "field", "cause"), [
    ("node1", "spec.preferredNodes", "must be a list"),
    ([{"nodeSelector": {}}], "spec.preferredNodes[0].weight", "must be a number from 0.01 to 100"),
    ([{"nodeSelector": {}, "weight": 0}], "spec.preferredNodes[0].weight", "must be a number"),
    ([{"nodeSelector": {"matchExpressions": [{"key": "k", "operator": "Near"}]}, "weight": 2}],
     "spec.preferredNodes[0].nodeSelector.matchExpressions[0].operator", "is not one of"),
])
def test_invalid_preferred_nodes_named(preferred: object, field: str, cause: str) -> None:
    res = parse_config(pools=[POOL], l2_advertisements=[ad(preferred)])
    assert len(res.errors) == 1
    assert res.errors[0].field == field and cause in res.errors[0].cause
    assert not res.config.l2_advertisements  # the invalid advertisement is left out, the pool stays
    assert "p" in res.config.pools


def test_weights_follow_the_best_matching_selector() -> None:
    cfg = parse_config(pools=[POOL], l2_advertisements=[ad([
        {"nodeSelector": {"matchLabels": {"zone": "a"}}, "weight": 5},
        {"nodeSelector": {"matchLabels": {"gpu": "yes"}}, "weight": 0.5}])]).config
    nodes = {"n1": NodeInfo("n1", labels=(("zone", "a"),)), "n2": NodeInfo("n2", labels=(("gpu", "yes"),)),
             "n3": NodeInfo("n3")}
    assert node_weights(cfg, nodes) == {"n1": 5.0, "n2": 0.5, "n3": 1.0}


def test_preferred_node_wins_most_ips_and_never_a_dead_one() -> None:
    cfg = parse_config(pools=[POOL], l2_advertisements=[ad([
        {"nodeSelector": {"matchLabels": {"role": "edge"}}, "weight": 50}])]).config
    nodes = {f"n{i}": NodeInfo(f"n{i}", labels=(("role", "edge"),) if i == 1 else ()) for i in range(1, 5)}
    svcs = [ServiceRef(namespace="d", name=f"s{i}", type="LoadBalancer",
                       ingress_ips=(ipaddress.ip_address(f"192.0.2.{i}"),)) for i in range(1, 41)]
    table = l2_assignments(services=svcs, nodes=nodes, config=cfg, endpoints={}, alive=None)
    won = sum(1 for a in table.values() if a.node == "n1")
    assert won >= 30  # weight 50 among 4 nodes: expected share 50/53
    dead = l2_assignments(services=svcs, nodes=nodes, config=cfg, endpoints={}, alive=frozenset({"n2", "n3", "n4"}))
    assert all(a.node != "n1" for a in dead.values())

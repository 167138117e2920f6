"""EndpointSlices (v1 and the v1beta1 that Kubernetes 1.20 serves) folded into ready node sets."""

from __future__ import annotations

from typing import Any

import pytest

from lbspeaker.core.node import endpoints_from_slices


def _slice(endpoints: list[dict[str, Any]], *, svc: str = "web", ns: str = "default") -> dict[str, Any]:
    return {"metadata": {"name": f"{svc}-x", "namespace": ns, "labels": {"kubernetes.io/service-name": svc}},
            "endpoints": endpoints}


@pytest.mark.parametrize(("endpoint", "nodes"), [
    ({"nodeName": "node1", "conditions": {"ready": True}}, {"node1"}),  # v1
    ({"topology": {"kubernetes.io/hostname": "node2"}, "conditions": {"ready": True}}, {"node2"}),  # v1beta1
    ({"nodeName": "node1", "topology": {"kubernetes.io/hostname": "other"}, "conditions": {}}, {"node1"}),
    ({"topology": {"kubernetes.io/hostname": "node2"}, "conditions": {"ready": False}}, set()),
    ({"topology": {"topology.kubernetes.io/zone": "a"}, "conditions": {"ready": True}}, set()),  # no node: ignored
])
def test_node_of_an_endpoint(endpoint: dict[str, Any], nodes: set[str]) -> None:
    got = endpoints_from_slices([_slice([endpoint])])
    assert set(got["default/web"].ready_nodes) == nodes


def test_v1beta1_slices_of_two_nodes_fold_into_one_service() -> None:
    eps = [{"topology": {"kubernetes.io/hostname": n}, "conditions": {"ready": True}} for n in ("node1", "node3")]
    got = endpoints_from_slices([_slice(eps[:1]), _slice(eps[1:])])
    assert set(got["default/web"].ready_nodes) == {"node1", "node3"}

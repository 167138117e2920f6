"""BgpMode's computing half (informers in, sessions and routes out) and the BGP views, without sockets."""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path
from typing import Any, cast

import pytest

from lbspeaker.cli.bgp_cmd import peer_rows, table_rows
from lbspeaker.core.errors import ConflictError
from lbspeaker.k8s.client import JSON, Kube
from lbspeaker.k8s.informer import Informer, object_key
from lbspeaker.speaker.bgpmode import INFORMER_NAMES, BgpMode
from lbspeaker.speaker.bgpstatus import BgpCollector, PeerStatusWriter, PeerView, fsm_state, stamp

NS = "lbspeaker-system"


class FakeInformer:
    """Stands in for Informer: a dict of objects."""

    def __init__(self) -> None:
        self.objs: dict[str, JSON] = {}
        self.on_event: Any = None

    def put(self, obj: JSON) -> None:
        self.objs[object_key(obj)] = obj
        if self.on_event is not None:
            self.on_event("MODIFIED", obj)

    def items(self) -> list[JSON]:
        return list(self.objs.values())

    def get(self, key: str) -> JSON | None:
        return self.objs.get(key)


def _cr(kind: str, name: str, spec: JSON) -> JSON:
    return {
        "apiVersion": "lbspeaker.io/v1beta1",
        "kind": kind,
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }


def _node(name: str, ip: str, labels: dict[str, str] | None = None) -> JSON:
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
    }


def _svc(name: str, ip: str, etp: str = "Cluster") -> JSON:
    return {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "LoadBalancer", "externalTrafficPolicy": etp, "ports": [{"port": 80}]},
        "status": {"loadBalancer": {"ingress": [{"ip": ip}]}},
    }


def _slice(svc: str, node: str) -> JSON:
    return {
        "metadata": {"name": f"{svc}-x", "namespace": "default", "labels": {"kubernetes.io/service-name": svc}},
        "endpoints": [{"addresses": ["192.0.2.50"], "conditions": {"ready": True}, "nodeName": node}],
    }


@pytest.fixture
def mode(tmp_path: Path) -> tuple[BgpMode, dict[str, FakeInformer]]:
    fakes = {n: FakeInformer() for n in INFORMER_NAMES}
    m = BgpMode(
        cast(Kube, None), node="node1", namespace=NS, workdir=tmp_path, informers=cast(dict[str, Informer], fakes)
    )
    fakes["nodes"].put(_node("node1", "192.0.2.11"))
    fakes["pools"].put(_cr("IPAddressPool", "bgp", {"addresses": ["203.0.113.10-203.0.113.50"]}))
    fakes["advertisements"].put(_cr("BGPAdvertisement", "bgp", {"ipAddressPools": ["bgp"]}))
    return m, fakes


def _peer(**spec: Any) -> JSON:
    return _cr("BGPPeer", "router", {"myASN": 64513, "peerASN": 64512, "peerAddress": "192.0.2.1", **spec})


def test_inert_without_a_peer(mode: tuple[BgpMode, dict[str, FakeInformer]]) -> None:
    m, _ = mode
    d = m.compute()
    assert d.sessions == () and m.manager is None and m.exabgp_pid is None


def test_etp_cluster_and_local(mode: tuple[BgpMode, dict[str, FakeInformer]]) -> None:
    m, f = mode
    f["peers"].put(_peer())
    f["services"].put(_svc("web", "203.0.113.10"))
    f["slices"].put(_slice("web", "node2"))
    f["services"].put(_svc("loc", "203.0.113.11", "Local"))
    f["slices"].put(_slice("loc", "node2"))
    d = m.compute()
    assert [s.local_address for s in d.sessions] == [ipaddress.ip_address("192.0.2.11")]
    assert {str(r.prefix) for r in d.routes["router"]} == {"203.0.113.10/32"}  # Local: endpoint is elsewhere


def test_invalid_peer_keeps_last_good(mode: tuple[BgpMode, dict[str, FakeInformer]]) -> None:
    m, f = mode
    f["peers"].put(_peer())
    assert len(m.compute().sessions) == 1
    f["peers"].put(_peer(holdTime="1s"))
    d = m.compute()
    assert len(d.sessions) == 1 and d.sessions[0].hold_time_s == 90
    assert any("spec.holdTime" in e for e in m._errors)


def test_password_from_secret(mode: tuple[BgpMode, dict[str, FakeInformer]]) -> None:
    m, f = mode
    f["peers"].put(_peer(passwordSecret={"name": "md5"}))
    d = m.compute()
    assert d.sessions == () and "not found" in d.skipped[0].reason
    f["secrets"].put({"metadata": {"name": "md5", "namespace": NS}, "data": {"password": "c2VjcmV0"}})
    assert m.compute().sessions[0].password == "secret"


def test_excluded_node_opens_session_but_announces_nothing(mode: tuple[BgpMode, dict[str, FakeInformer]]) -> None:
    m, f = mode
    f["peers"].put(_peer())
    f["nodes"].put(_node("node1", "192.0.2.11", {"node.kubernetes.io/exclude-from-external-load-balancers": ""}))
    f["services"].put(_svc("web", "203.0.113.10"))
    f["slices"].put(_slice("web", "node1"))
    assert m.compute().routes == {"router": frozenset()}


def test_views_rows_and_metrics() -> None:
    views = stamp({"router": PeerView("router", "192.0.2.1", fsm_state("up"), prefixes=2, updates=3)}, {})
    again = stamp({"router": PeerView("router", "192.0.2.1", "Established", prefixes=3)}, views)
    assert again["router"].since == views["router"].since  # unchanged state keeps its since
    entry = again["router"].entry("node1")
    assert entry["state"] == "Established" and entry["prefixesAnnounced"] == 3
    peer = {**_peer(), "status": {"nodes": [entry, {"node": "node0", "state": "Active", "lastError": "refused"}]}}
    rows = peer_rows([peer])
    assert [(r.node, r.state, r.last_error) for r in rows] == [
        ("node0", "Active", "refused"),
        ("node1", "Established", ""),
    ]
    assert table_rows(rows)[1][:5] == ["node1", "router", "64513->64512", "Established", "3"]
    fams = {f.name: f.samples[0].value for f in BgpCollector(node="node1", views=lambda: views).collect()}
    assert fams == {
        "lbspeaker_bgp_session_up": 1.0,
        "lbspeaker_bgp_updates_sent": 3.0,
        "lbspeaker_bgp_announced_prefixes": 2.0,
    }


def test_worker_stays_inert_without_a_peer(mode: tuple[BgpMode, dict[str, FakeInformer]]) -> None:
    m, f = mode
    f["services"].put(_svc("web", "203.0.113.10"))
    asyncio.run(m._reconcile())
    assert m.manager is None and m.exabgp_pid is None and m._collect_views() == {}


class FakeKube:
    """Answers get/replace for one BGPPeer; the first replace hits a conflict (another node wrote)."""

    def __init__(self) -> None:
        self.obj: JSON = {
            **_peer(),
            "metadata": {"name": "router", "namespace": NS, "resourceVersion": "1"},
            "status": {"nodes": [{"node": "node0", "state": "Established"}]},
        }
        self.conflicts = 1
        self.events: list[str] = []

    def get(self, _res: Any, _name: str, _ns: str) -> JSON:
        return self.obj

    def replace(self, _res: Any, _name: str, body: JSON, _ns: str, *, subresource: str) -> JSON:
        assert subresource == "status"
        if self.conflicts:
            self.conflicts -= 1
            raise ConflictError("409")
        self.obj = body
        return body

    def event(self, _obj: JSON, *, reason: str, message: str, type: str = "Normal") -> None:
        self.events.append(reason)


def test_status_writer_keeps_other_nodes_and_retries_conflicts() -> None:
    kube = FakeKube()
    w = PeerStatusWriter(cast(Kube, kube), node="node1", namespace=NS)
    w.publish(stamp({"router": PeerView("router", "192.0.2.1", "Established", prefixes=1)}, {}))
    st = kube.obj["status"]
    assert [n["node"] for n in st["nodes"]] == ["node0", "node1"] and st["establishedNodes"] == 2
    assert kube.events == ["SessionEstablished"]
    w.publish({"router": PeerView("router", "192.0.2.1", "Active", reason="connection refused")})
    assert kube.events == ["SessionEstablished", "SessionDown"]
    w.publish({})
    assert [n["node"] for n in kube.obj["status"]["nodes"]] == ["node0"]

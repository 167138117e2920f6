"""lbctl's rows and explanations, from parsed values (no API)."""

from __future__ import annotations

import ipaddress

import pytest

from lbspeaker.core.config import parse_config
from lbspeaker.core.node import NodeInfo, ServiceEndpoints
from lbspeaker.core.report import explain, fmt_count, pool_rows, service_rows
from lbspeaker.core.service import Port, ServiceRef

NS = "lbspeaker-system"


def pool(name: str, *addrs: str) -> dict[str, object]:
    return {"metadata": {"name": name, "namespace": NS}, "spec": {"addresses": list(addrs)}}


def l2(name: str, *pools: str) -> dict[str, object]:
    return {"metadata": {"name": name, "namespace": NS}, "spec": {"ipAddressPools": list(pools)}}


def svc(name: str, *ips: str, type: str = "LoadBalancer", etp: str = "Cluster") -> ServiceRef:
    return ServiceRef(namespace="default", name=name, type=type, ports=(Port("TCP", 80),),
                      external_traffic_policy=etp, ip_families=("IPv4",),
                      ingress_ips=tuple(ipaddress.ip_address(i) for i in ips))


NODES = {n: NodeInfo(n) for n in ("a", "b")}


@pytest.mark.parametrize(("n", "text"), [(51, "51"), (2**64, "2^64"), (3 * 10**9, "3.00e+09")])
def test_fmt_count(n: int, text: str) -> None:
    assert fmt_count(n) == text


def test_pool_rows_count_usage_per_family() -> None:
    cfg = parse_config(pools=[pool("p", "192.0.2.10-192.0.2.19", "2001:db8::/64")], l2_advertisements=[]).config
    rows = pool_rows(cfg, [svc("a", "192.0.2.10"), svc("b", "192.0.2.11"), svc("c")], {"p": ["x"]})
    assert len(rows) == 1
    r = rows[0]
    assert r.v4 is not None and (r.v4.assigned, r.v4.total) == (2, 10)
    assert r.v6 is not None and r.v6.total == 2**64
    assert r.services == 2


def test_service_rows_show_pool_and_announcer() -> None:
    cfg = parse_config(pools=[pool("p", "192.0.2.10/31")], l2_advertisements=[]).config
    rows = service_rows(cfg, [svc("a", "192.0.2.10"), svc("x", type="ClusterIP")],
                        {"default/a": {"node": "b", "interfaces": ["eth0"], "since": "t"}})
    assert [(r.key, r.ips, r.pool, r.node, r.interfaces) for r in rows] == [
        ("default/a", ("192.0.2.10",), "p", "b", ("eth0",))]


def _explain(target: ServiceRef, others: list[ServiceRef], pools: list[dict[str, object]],
             ads: list[dict[str, object]], endpoints: dict[str, ServiceEndpoints] | None = None) -> list[str]:
    res = parse_config(pools=pools, l2_advertisements=ads)
    found = explain(target, services=[*others, target], config=res.config, config_errors=res.errors, nodes=NODES,
                    endpoints=endpoints or {}, l2_status=None, warnings=[])
    return [f"{f.level}: {f.text}" for f in found]


def test_explain_pool_exhausted() -> None:
    lines = _explain(svc("new"), [svc("old", "192.0.2.10")], [pool("p", "192.0.2.10/32")], [l2("l", "p")])
    assert any(line.startswith("problem: no IP can be assigned: PoolExhausted") for line in lines), lines


def test_explain_no_pool_at_all() -> None:
    assert _explain(svc("new"), [], [], []) == [
        "problem: no valid IPAddressPool exists: create one (see config/samples/lab.yaml)"]


def test_explain_invalid_pool_is_named() -> None:
    lines = _explain(svc("new"), [], [pool("bad", "192.0.2.9-192.0.2.1")], [])
    assert any("IPAddressPool 'bad'" in line and "spec.addresses[0]" in line for line in lines), lines


def test_explain_ip_not_advertised() -> None:
    lines = _explain(svc("s", "192.0.2.10"), [], [pool("p", "192.0.2.10/32")], [])
    assert "ok: holds 192.0.2.10 from pool 'p'" in lines
    assert any("selected by no L2Advertisement" in line for line in lines), lines


def test_explain_controller_not_running() -> None:
    lines = _explain(svc("s"), [], [pool("p", "192.0.2.10/32")], [l2("l", "p")])
    assert any("is the controller running" in line for line in lines), lines


def test_explain_etp_local_without_endpoints() -> None:
    lines = _explain(svc("s", "192.0.2.10", etp="Local"), [], [pool("p", "192.0.2.10/32")], [l2("l", "p")],
                     {"default/s": ServiceEndpoints("default/s", frozenset())})
    assert any("externalTrafficPolicy Local" in line for line in lines), lines


def test_explain_elected_node() -> None:
    lines = _explain(svc("s", "192.0.2.10"), [], [pool("p", "192.0.2.10/32")], [l2("l", "p")])
    assert any(line.startswith("ok: 192.0.2.10: elected node") for line in lines), lines


def test_explain_wrong_type() -> None:
    first = _explain(svc("s", type="NodePort"), [], [], [])[0]
    assert first.startswith("problem: service 'default/s' is type NodePort")


def test_explain_names_an_ignored_edit_and_the_last_good_config() -> None:
    from lbspeaker.core.errors import ConfigError

    res = parse_config(pools=[pool("p", "192.0.2.10/31")], l2_advertisements=[l2("l", "p")])
    err = ConfigError("IPAddressPool", "p", "spec.addresses[1]", "'192.0.2.40-192.0.2.10': start after end")
    found = explain(svc("a", "192.0.2.10"), services=[svc("a", "192.0.2.10")], config=res.config, config_errors=[],
                    ignored_edits=[err], nodes=NODES, endpoints={}, l2_status=None, warnings=[])
    lines = [f"{f.level}: {f.text}" for f in found]
    assert lines[0] == f"problem: invalid edit ignored; last good config in force: {err}", lines
    assert any("holds 192.0.2.10 from pool 'p'" in line for line in lines), lines

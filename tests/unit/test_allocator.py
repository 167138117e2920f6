"""The allocator: small tables per rule, plus big-pool behaviour."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from lbspeaker.core.allocator import Allocator, PoolUsage, Reason
from lbspeaker.core.config import Config, parse_config
from lbspeaker.core.service import ANN_LB_IPS, ANN_POOL, ANN_SHARED, IPAddress, Port, ServiceRef


def ip(s: str) -> IPAddress:
    return ipaddress.ip_address(s)


def cfg(*pools: tuple[str, list[str], dict[str, Any]], namespaces: dict[str, dict[str, str]] | None = None) -> Config:
    raw = [{"metadata": {"name": n}, "spec": {"addresses": a, **s}} for n, a, s in pools]
    ns = [{"metadata": {"name": k, "labels": v}} for k, v in (namespaces or {}).items()]
    res = parse_config(pools=raw, l2_advertisements=[], namespaces=ns)
    assert res.ok, res.errors
    return res.config


def svc(
    name: str,
    *,
    ns: str = "default",
    ann: dict[str, str] | None = None,
    ports: tuple[int, ...] = (80,),
    ingress: tuple[str, ...] = (),
    **kw: Any,
) -> ServiceRef:
    return ServiceRef(
        namespace=ns,
        name=name,
        type="LoadBalancer",
        annotations=tuple(sorted((ann or {}).items())),
        ports=tuple(Port("TCP", p) for p in ports),
        ingress_ips=tuple(ip(i) for i in ingress),
        **kw,
    )


PoolSpec = tuple[str, list[str], dict[str, Any]]

LAB: PoolSpec = ("lab", ["192.0.2.200-192.0.2.202"], {})


def test_assigns_in_order_and_reuses_released() -> None:
    a = Allocator(cfg(LAB))
    got = [a.assign(svc(f"s{i}")) for i in range(3)]
    assert [o.ips for o in got] == [(ip("192.0.2.200"),), (ip("192.0.2.201"),), (ip("192.0.2.202"),)]
    assert all(o.reason is Reason.ALLOCATED and o.pool == "lab" for o in got)
    full = a.assign(svc("s3"))
    assert (full.reason, full.message) == (Reason.POOL_EXHAUSTED, "pool 'lab' exhausted (IPv4)")
    assert a.release("default/s1") == (ip("192.0.2.201"),)
    assert a.assign(svc("s3")).ips == (ip("192.0.2.201"),)


def test_assign_again_keeps_the_same_ip() -> None:
    a = Allocator(cfg(LAB))
    first = a.assign(svc("s"))
    again = a.assign(svc("s", ingress=("192.0.2.200",)))
    assert (again.reason, again.ips) == (Reason.KEPT, first.ips)


@pytest.mark.parametrize(
    ("service", "reason", "message"),
    [
        (svc("x", ann={ANN_LB_IPS: "192.0.2.202"}), Reason.ALLOCATED, ""),
        (svc("x", spec_load_balancer_ip="192.0.2.202"), Reason.ALLOCATED, ""),
        (
            svc("x", ann={ANN_LB_IPS: "192.0.2.7"}),
            Reason.REQUESTED_IP_IN_NO_POOL,
            "requested IP 192.0.2.7 belongs to no pool",
        ),
        (
            svc("x", ann={ANN_LB_IPS: "192.0.2.200"}),
            Reason.IP_IN_USE,
            "requested IP 192.0.2.200 is in use: service 'default/taken' holds it without allowing sharing",
        ),
        (
            svc("x", ann={ANN_LB_IPS: "192.0.2.201"}, spec_load_balancer_ip="192.0.2.201"),
            Reason.CONFLICTING_REQUEST,
            f"both annotation {ANN_LB_IPS} and spec.loadBalancerIP are set; use only the annotation",
        ),
        (
            svc("x", ann={ANN_LB_IPS: "nope"}),
            Reason.INVALID_REQUEST,
            f"{ANN_LB_IPS}: 'nope' is not an IP address",
        ),
        (
            svc("x", ann={ANN_LB_IPS: "192.0.2.201,192.0.2.202"}),
            Reason.INVALID_REQUEST,
            f"{ANN_LB_IPS}: more than one IPv4 address",
        ),
        (
            svc("x", ann={ANN_LB_IPS: "192.0.2.201", ANN_POOL: "other"}),
            Reason.NOT_ALLOWED,
            "requested IP 192.0.2.201 is in pool 'lab', not in the annotated pool 'other'",
        ),
        (
            svc("x", ann={ANN_LB_IPS: "2001:db8::1"}, ip_families=("IPv4",)),
            Reason.FAMILY_MISMATCH,
            f"{ANN_LB_IPS}: 2001:db8::1 is IPv6 but the service is IPv4 only",
        ),
        (svc("x", ann={ANN_POOL: "nope"}), Reason.POOL_NOT_FOUND, "pool 'nope' does not exist"),
        (svc("x", ann={ANN_POOL: "manual"}), Reason.ALLOCATED, ""),
        (svc("x", ann={ANN_POOL: "other"}), Reason.ALLOCATED, ""),
    ],
)
def test_requests(service: ServiceRef, reason: Reason, message: str) -> None:
    a = Allocator(cfg(LAB, ("other", ["198.51.100.0/30"], {}), ("manual", ["203.0.113.0/30"], {"autoAssign": False})))
    a.assign(svc("taken"))
    out = a.assign(service)
    assert (out.reason, out.message) == (reason, message)
    if out.ok:
        assert a.holders(out.ips[0]) == ["default/x"]


def test_auto_assign_false_pool_is_skipped_without_annotation() -> None:
    a = Allocator(cfg(("manual", ["203.0.113.0/30"], {"autoAssign": False})))
    out = a.assign(svc("x"))
    assert (out.reason, out.message) == (Reason.NO_POOL, "no pool with autoAssign allows service 'default/x'")


def test_priority_and_service_allocation() -> None:
    a = Allocator(
        cfg(
            ("low", ["192.0.2.0/30"], {}),
            ("high", ["198.51.100.0/30"], {"serviceAllocation": {"priority": 1}}),
            (
                "team",
                ["203.0.113.0/30"],
                {
                    "serviceAllocation": {
                        "priority": 0,
                        "namespaceSelectors": [{"matchLabels": {"team": "a"}}],
                    }
                },
            ),
            (
                "web",
                ["203.0.113.8/30"],
                {
                    "serviceAllocation": {
                        "priority": 1,
                        "serviceSelectors": [{"matchLabels": {"app": "web"}}],
                        "namespaces": ["shop"],
                    }
                },
            ),
            namespaces={"ta": {"team": "a"}},
        )
    )
    assert a.assign(svc("x")).pool == "high"
    assert a.assign(svc("y", ns="ta")).pool == "high"
    assert a.assign(svc("z", ns="shop", labels=(("app", "web"),))).pool in ("high", "web")
    assert a.assign(svc("w", ns="other", labels=(("app", "web"),))).pool == "high"
    assert a.assign(svc("v", ns="x", ann={ANN_POOL: "web"})).reason is Reason.NOT_ALLOWED


def test_avoid_buggy_ips_skips_zero_and_255() -> None:
    a = Allocator(cfg(("p", ["192.0.2.254-192.0.3.1"], {"avoidBuggyIPs": True})))
    ips = [a.assign(svc(f"s{i}")).ips for i in range(3)]
    assert ips == [(ip("192.0.2.254"),), (ip("192.0.3.1"),), ()]
    assert a.usage()["p"][4] == PoolUsage(assigned=2, available=0, total=2)


def test_restart_adopts_before_allocating() -> None:
    c = cfg(LAB)
    a = Allocator(c)
    before = {k: a.assign(svc(k)).ips for k in ("a", "b", "c")}
    a.release("default/a")
    fresh = Allocator(c)
    for k in ("b", "c"):
        assert fresh.adopt(svc(k, ingress=tuple(str(i) for i in before[k])))
    assert fresh.assign(svc("new")).ips == before["a"]  # not b's or c's
    assert fresh.assign(svc("c", ingress=tuple(map(str, before["c"])))).reason is Reason.KEPT


def test_pool_edit_moves_nothing_still_inside() -> None:
    a = Allocator(cfg(LAB))
    first = a.assign(svc("s")).ips
    a.set_config(
        cfg(
            ("lab", ["192.0.2.100-192.0.2.250"], {}),
            ("better", ["198.51.100.0/30"], {"serviceAllocation": {"priority": 1}}),
        )
    )
    assert a.assign(svc("s", ingress=tuple(map(str, first)))).ips == first
    assert a.assign(svc("t")).pool == "better"


@pytest.mark.parametrize(
    ("may_replace", "reason", "ips"),
    [
        (True, Reason.ALLOCATED, ("198.51.100.0",)),
        (False, Reason.KEPT, ("192.0.2.200",)),
    ],
)
def test_ip_that_left_every_pool(may_replace: bool, reason: Reason, ips: tuple[str, ...]) -> None:
    a = Allocator(cfg(LAB))
    a.assign(svc("s"))
    a.set_config(cfg(("new", ["198.51.100.0/30"], {})))
    out = a.assign(svc("s", ingress=("192.0.2.200",)), may_replace=may_replace)
    assert (out.reason, out.ips) == (reason, tuple(map(ip, ips)))
    assert out.replaced == ((ip("192.0.2.200"),) if may_replace else ())


SHARE = {ANN_SHARED: "k"}


@pytest.mark.parametrize(
    ("second", "shares"),
    [
        (svc("b", ann=SHARE, ports=(443,)), True),
        (svc("b", ann=SHARE, ports=(80,)), False),
        (svc("b", ann={ANN_SHARED: "other"}, ports=(443,)), False),
        (svc("b", ports=(443,)), False),
        (svc("b", ann=SHARE, ports=(443,), external_traffic_policy="Local", selector=(("app", "x"),)), False),
    ],
)
def test_sharing_rules(second: ServiceRef, shares: bool) -> None:
    a = Allocator(cfg(LAB))
    first = a.assign(svc("a", ann=SHARE, ports=(80,))).ips
    out = a.assign(second)
    assert out.ok and (out.ips == first) is shares


def test_sharing_requested_ip_and_release_keeps_the_other() -> None:
    a = Allocator(cfg(LAB))
    a.assign(svc("a", ann=SHARE, ports=(80,)))
    b = a.assign(svc("b", ann={**SHARE, ANN_LB_IPS: "192.0.2.200"}, ports=(443,)))
    assert b.ok and a.holders(ip("192.0.2.200")) == ["default/a", "default/b"]
    a.release("default/a")
    assert a.holders(ip("192.0.2.200")) == ["default/b"]
    assert a.assign(svc("c")).ips == (ip("192.0.2.201"),)


def test_port_change_breaking_sharing_moves_only_the_changed_service() -> None:
    a = Allocator(cfg(LAB))
    shared = a.assign(svc("a", ann=SHARE, ports=(80,))).ips
    a.assign(svc("b", ann=SHARE, ports=(443,)))
    moved = a.assign(svc("b", ann=SHARE, ports=(80,), ingress=tuple(map(str, shared))))
    assert moved.ok and moved.ips != shared
    assert a.assign(svc("a", ann=SHARE, ports=(80,), ingress=tuple(map(str, shared)))).reason is Reason.KEPT


DUAL: PoolSpec = ("dual", ["192.0.2.0/30", "2001:db8::/64"], {})
V4: PoolSpec = ("v4", ["198.51.100.0/30"], {"serviceAllocation": {"priority": 1}})
DUAL_P2: PoolSpec = ("dual", ["192.0.2.0/30", "2001:db8::/64"], {"serviceAllocation": {"priority": 2}})


@pytest.mark.parametrize(
    ("policy", "families", "pools", "expected"),
    [
        ("SingleStack", ("IPv6",), [DUAL], ("2001:db8::",)),
        ("SingleStack", (), [DUAL], ("192.0.2.0",)),
        ("RequireDualStack", ("IPv6", "IPv4"), [V4, DUAL], ("2001:db8::", "192.0.2.0")),
        # a pool giving both families beats a higher-priority single-family pool of the same tier
        # (scoped pools are tried before unscoped ones: test_allocator_parity.py)
        ("PreferDualStack", ("IPv4", "IPv6"), [V4, DUAL_P2], ("192.0.2.0", "2001:db8::")),
        ("PreferDualStack", ("IPv4", "IPv6"), [V4], ("198.51.100.0",)),
        ("PreferDualStack", ("IPv4", "IPv6"), [DUAL], ("192.0.2.0", "2001:db8::")),
        ("PreferDualStack", ("IPv4",), [DUAL], ("192.0.2.0",)),
        ("RequireDualStack", ("IPv4", "IPv6"), [V4], None),
    ],
)
def test_dual_stack(policy: str, families: tuple[str, ...], pools: list[Any], expected: tuple[str, ...] | None) -> None:
    a = Allocator(cfg(*pools))
    out = a.assign(svc("s", ip_family_policy=policy, ip_families=families))
    if expected is None:
        assert (out.reason, out.message) == (
            Reason.NO_POOL,
            "no pool the service may use has both IPv4 and IPv6 addresses (tried 'v4')",
        )
    else:
        assert out.ips == tuple(map(ip, expected))


def test_prefer_dual_stack_adds_missing_family_later_without_moving() -> None:
    a = Allocator(cfg(("p", ["192.0.2.0/30"], {})))
    s = svc("s", ip_family_policy="PreferDualStack", ip_families=("IPv4", "IPv6"))
    first = a.assign(s).ips
    assert first == (ip("192.0.2.0"),)
    a.set_config(cfg(("p", ["192.0.2.0/30", "2001:db8::/120"], {})))
    out = a.assign(svc("s", ip_family_policy="PreferDualStack", ip_families=("IPv4", "IPv6"), ingress=("192.0.2.0",)))
    assert out.ips == (ip("192.0.2.0"), ip("2001:db8::"))


def test_big_ipv6_pools_never_enumerate() -> None:
    a = Allocator(cfg(("big", ["2001:db8::/32"], {}), ("v4", ["192.0.2.0/24"], {})))
    keys = [f"s{i}" for i in range(2000)]
    for k in keys:
        assert a.assign(svc(k, ip_families=("IPv6",))).ok
    a.release("default/s7")
    a.release("default/s3")
    assert a.assign(svc("n1", ip_families=("IPv6",))).ips == (ip("2001:db8::3"),)
    assert a.assign(svc("n2", ip_families=("IPv6",))).ips == (ip("2001:db8::7"),)
    assert a.assign(svc("n3", ip_families=("IPv6",))).ips == (ip("2001:db8::7d0"),)
    use = a.usage()["big"][6]
    assert (use.assigned, use.total, use.available) == (2001, 2**96, 2**96 - 2001)


def test_dual_stack_family_that_left_every_pool_is_replaced_the_other_kept() -> None:
    a = Allocator(cfg(("p", ["192.0.2.0/30", "2001:db8::/126"], {})))
    s = svc("s", ip_family_policy="RequireDualStack", ip_families=("IPv4", "IPv6"))
    assert a.assign(s).ips == (ip("192.0.2.0"), ip("2001:db8::"))
    a.set_config(cfg(("p", ["192.0.2.0/30", "2001:db8:1::/126"], {})))
    out = a.assign(
        svc("s", ip_family_policy="RequireDualStack", ip_families=("IPv4", "IPv6"), ingress=("192.0.2.0", "2001:db8::"))
    )
    assert (out.reason, out.ips, out.replaced) == (
        Reason.ALLOCATED,
        (ip("192.0.2.0"), ip("2001:db8:1::")),
        (ip("2001:db8::"),),
    )

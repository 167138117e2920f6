"""Allocation rules where lbspeaker follows MetalLB exactly; one table per rule.

References are to github.com/metallb/metallb at 7938d3f (internal/allocator/allocator.go,
internal/config/config.go, controller/service.go, controller/main.go).
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterator
from typing import Any

import pytest

from controller.reconciler import decide
from lbspeaker.core.allocator import Allocator, Reason
from lbspeaker.core.config import Config, parse_config
from lbspeaker.core.service import ANN_LB_IPS, IPAddress, Port, ServiceRef
from lbspeaker.k8s.client import IPADDRESSPOOLS, SERVICES
from tests.unit.test_controller_loop import NS, FakeKube, Running, wait_for

PoolSpec = tuple[str, list[str], dict[str, Any]]


def ip(s: str) -> IPAddress:
    return ipaddress.ip_address(s)


def ips(*s: str) -> tuple[IPAddress, ...]:
    return tuple(map(ip, s))


def cfg(*pools: PoolSpec) -> Config:
    raw = [{"metadata": {"name": n}, "spec": {"addresses": a, **s}} for n, a, s in pools]
    res = parse_config(pools=raw, l2_advertisements=[], namespaces=[{"metadata": {"name": "default"}}])
    assert res.ok, res.errors
    return res.config


def svc(name: str = "s", *, ann: dict[str, str] | None = None, ingress: tuple[str, ...] = (), **kw: Any) -> ServiceRef:
    return ServiceRef(
        namespace=kw.pop("ns", "default"),
        name=name,
        type="LoadBalancer",
        annotations=tuple(sorted((ann or {}).items())),
        ports=(Port("TCP", 80),),
        ingress_ips=ips(*ingress),
        **kw,
    )


# -- 1. requested IP vs avoidBuggyIPs ----------------------------------------------------------


# MetalLB: controller/service.go allocateIPs -> Allocator.Assign -> poolFor, which skips an IP when
# p.AvoidBuggyIPs && ipConfusesBuggyFirmwares(ip) ("%q is not allowed in config").
@pytest.mark.parametrize(
    ("avoid", "request_", "reason", "got"),
    [
        (True, {"ann": {ANN_LB_IPS: "192.0.2.0"}}, Reason.NOT_ALLOWED, ()),
        (True, {"spec_load_balancer_ip": "192.0.2.255"}, Reason.NOT_ALLOWED, ()),
        (True, {"ann": {ANN_LB_IPS: "192.0.2.1"}}, Reason.ALLOCATED, ("192.0.2.1",)),
        (False, {"ann": {ANN_LB_IPS: "192.0.2.0"}}, Reason.ALLOCATED, ("192.0.2.0",)),
        # only IPv4 .0/.255 confuse firmwares; a dual-stack request fails as a whole
        (
            True,
            {"ann": {ANN_LB_IPS: "2001:db8::,192.0.2.255"}, "ip_family_policy": "RequireDualStack"},
            Reason.NOT_ALLOWED,
            (),
        ),
        (True, {"ann": {ANN_LB_IPS: "2001:db8::"}, "ip_families": ("IPv6",)}, Reason.ALLOCATED, ("2001:db8::",)),
    ],
)
def test_metallb_requested_ip_refused_when_avoid_buggy_ips_forbids_it(
    avoid: bool, request_: dict[str, Any], reason: Reason, got: tuple[str, ...]
) -> None:
    a = Allocator(cfg(("p", ["192.0.2.0/24", "2001:db8::/126"], {"avoidBuggyIPs": avoid})))
    out = a.assign(svc(**request_))
    assert (out.reason, out.ips) == (reason, ips(*got))
    if reason is Reason.NOT_ALLOWED:
        assert "avoidBuggyIPs of pool 'p' forbids it" in out.message
        assert a.assignment("default/s") is None


# -- 2. config reload re-checks held addresses against avoidBuggyIPs ---------------------------


# MetalLB: Allocator.SetPools unassigns allocations poolFor no longer accepts, and
# convergeBalancer re-Assigns the status IPs on every sync ("current IP not allowed by config,
# clearing") and allocates anew; SetPools returns SyncStateReprocessAll (controller/main.go).
@pytest.mark.parametrize(
    ("service", "held", "may_replace", "reason", "after", "replaced"),
    [
        (svc(), ("192.0.2.0",), True, Reason.ALLOCATED, ("192.0.2.1",), ("192.0.2.0",)),
        (svc(), ("192.0.2.0",), False, Reason.ALLOCATED, ("192.0.2.1",), ("192.0.2.0",)),  # partial config too
        (svc(), ("192.0.2.2",), True, Reason.KEPT, ("192.0.2.2",), ()),
        (
            svc(ip_family_policy="RequireDualStack", ip_families=("IPv4", "IPv6")),
            ("192.0.2.0", "2001:db8::"),
            True,
            Reason.ALLOCATED,
            ("2001:db8::", "192.0.2.1"),  # the IPv6 address stays
            ("192.0.2.0",),
        ),
        (svc(ann={ANN_LB_IPS: "192.0.2.0"}), ("192.0.2.0",), True, Reason.NOT_ALLOWED, (), ("192.0.2.0",)),
    ],
)
def test_metallb_reload_replaces_addresses_avoid_buggy_ips_now_forbids(
    service: ServiceRef,
    held: tuple[str, ...],
    may_replace: bool,
    reason: Reason,
    after: tuple[str, ...],
    replaced: tuple[str, ...],
) -> None:
    pool: PoolSpec = ("p", ["192.0.2.0/30", "2001:db8::/126"], {})
    a = Allocator(cfg(pool))
    s = dataclasses.replace(service, ingress_ips=ips(*held))
    assert a.adopt(s)
    a.set_config(cfg((pool[0], pool[1], {"avoidBuggyIPs": True})))
    d = decide(s, s.key, a, may_replace=may_replace)
    assert d.outcome is not None
    assert (d.outcome.reason, d.outcome.ips, d.outcome.replaced) == (reason, ips(*after), ips(*replaced))
    assert d.ingress == ips(*after)
    if replaced:
        assert d.events[0].reason == "ClearAssignment"
        assert d.events[0].message.startswith(f"IP {replaced[0]} is forbidden by avoidBuggyIPs of its pool; ")


# -- 3. scoped pools before unscoped ones -----------------------------------------------------

OPEN: PoolSpec = ("a-open", ["192.0.2.0/31"], {})
TEAM: PoolSpec = ("b-team", ["198.51.100.0/31"], {"serviceAllocation": {"namespaces": ["default"]}})
WEB: PoolSpec = (
    "c-web",
    ["203.0.113.0/31"],
    {"serviceAllocation": {"priority": 5, "serviceSelectors": [{"matchLabels": {"app": "web"}}]}},
)
V4_FIRST: PoolSpec = ("v4", ["203.0.113.8/30"], {"serviceAllocation": {"priority": 1}})
DUAL_OPEN: PoolSpec = ("dual", ["192.0.2.8/30", "2001:db8::/126"], {})


# MetalLB: Allocator.Allocate tries pinnedPoolsForService (pools with serviceAllocation matching
# the Service, sortPools: by priority, 0 last) and only then the pools with ServiceAllocations ==
# nil; findBestPoolForService runs on each group, so a pinned single-family pool beats an
# unpinned dual-stack one for PreferDualStack.
@pytest.mark.parametrize(
    ("pools", "service", "taken", "pool", "got"),
    [
        ([OPEN, TEAM], svc(), 0, "b-team", ("198.51.100.0",)),
        ([OPEN, TEAM, WEB], svc(labels=(("app", "web"),)), 0, "c-web", ("203.0.113.0",)),
        ([OPEN, TEAM, WEB], svc(ns="other"), 0, "a-open", ("192.0.2.0",)),
        ([OPEN, TEAM], svc(), 2, "a-open", ("192.0.2.0",)),  # scoped pool exhausted: unscoped next
        (
            [V4_FIRST, DUAL_OPEN],
            svc(ip_family_policy="PreferDualStack", ip_families=("IPv4", "IPv6")),
            0,
            "v4",
            ("203.0.113.8",),
        ),
        (
            [V4_FIRST, DUAL_OPEN],
            svc(ip_family_policy="RequireDualStack", ip_families=("IPv4", "IPv6")),
            0,
            "dual",
            ("192.0.2.8", "2001:db8::"),
        ),
    ],
)
def test_metallb_tries_matching_scoped_pools_by_priority_before_unscoped_pools(
    pools: list[PoolSpec], service: ServiceRef, taken: int, pool: str, got: tuple[str, ...]
) -> None:
    a = Allocator(cfg(*pools))
    for i in range(taken):
        assert a.assign(svc(f"t{i}")).pool == "b-team"
    out = a.assign(service)
    assert (out.pool, out.ips) == (pool, ips(*got))


def test_scoped_pools_order_in_config() -> None:
    prio: PoolSpec = ("d-prio", ["203.0.113.4/31"], {"serviceAllocation": {"priority": 1}})
    assert [p.name for p in cfg(OPEN, TEAM, WEB, prio).ordered_pools()] == ["d-prio", "c-web", "b-team", "a-open"]


# -- 4. PreferDualStack primary family --------------------------------------------------------

ONLY4: PoolSpec = ("a4", ["192.0.2.0/30"], {})
ONLY6: PoolSpec = ("b6", ["2001:db8::/126"], {})
DUAL_C: PoolSpec = ("c", ["198.51.100.0/30", "2001:db8:1::/126"], {})


# MetalLB: findBestPoolForService sets primaryIPFamily = IPv6 when svc.Spec.IPFamilies[0] is IPv6
# (IPv4 otherwise) and returns primaryAllocationCandidate before secondaryAllocationCandidate.
@pytest.mark.parametrize(
    ("families", "pools", "got"),
    [
        (("IPv6", "IPv4"), [ONLY4, ONLY6], ("2001:db8::",)),
        (("IPv4", "IPv6"), [ONLY4, ONLY6], ("192.0.2.0",)),
        ((), [ONLY4, ONLY6], ("192.0.2.0",)),
        (("IPv6", "IPv4"), [ONLY4], ("192.0.2.0",)),  # the secondary family when no pool has the primary
        (("IPv6", "IPv4"), [ONLY4, ONLY6, DUAL_C], ("2001:db8:1::", "198.51.100.0")),  # both families first
    ],
)
def test_metallb_prefer_dual_stack_takes_primary_family_from_ip_families_first(
    families: tuple[str, ...], pools: list[PoolSpec], got: tuple[str, ...]
) -> None:
    a = Allocator(cfg(*pools))
    out = a.assign(svc(ip_family_policy="PreferDualStack", ip_families=families))
    assert out.ips == ips(*got)
    assert out.partial is (len(got) == 1)


# -- 5. a dual-stack Service missing a family gains it once an address frees -----------------


def dual_service(name: str, policy: str, families: list[str]) -> dict[str, Any]:
    spec = {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}], "ipFamilies": families}
    if policy:
        spec["ipFamilyPolicy"] = policy
    return {"metadata": {"name": name, "namespace": "default"}, "spec": spec}


@pytest.fixture
def one_each() -> Iterator[FakeKube]:
    k = FakeKube()
    k.create(IPADDRESSPOOLS, {"metadata": {"name": "p"}, "spec": {"addresses": ["192.0.2.200", "2001:db8::1"]}}, NS)
    try:
        yield k
    finally:
        k.closed = True


# MetalLB: convergeBalancer calls AllocateFromPoolForAdditionalFamily (same pool, existing IP kept)
# for a PreferDualStack Service holding one IP, and SetBalancer returns SyncStateReprocessAll when a
# Service released addresses (controller/main.go), so every Service is converged again.
@pytest.mark.parametrize("free", ["delete", "type_change"])
def test_metallb_dual_stack_service_missing_a_family_gains_it_when_an_address_frees(
    one_each: FakeKube, free: str
) -> None:
    kube = one_each
    kube.create(SERVICES, dual_service("v6", "", ["IPv6"]), "default")
    run = Running(kube)
    try:
        wait_for(lambda: kube.ingress("v6") == ["2001:db8::1"], "IPv6 for v6")
        kube.create(SERVICES, dual_service("both", "PreferDualStack", ["IPv4", "IPv6"]), "default")
        wait_for(lambda: kube.ingress("both") == ["192.0.2.200"], "IPv4 only for both")
        if free == "delete":
            kube.delete(SERVICES, "v6", "default")
        else:
            kube.replace_spec(SERVICES, "v6", "default", {"type": "ClusterIP", "ports": [{"port": 80}]})
        wait_for(lambda: kube.ingress("both") == ["192.0.2.200", "2001:db8::1"], "both gains IPv6, keeps IPv4")
    finally:
        run.stop()


# -- 6. ranges in the order the pool lists them -----------------------------------------------


# MetalLB: config.addressPoolFromCR appends each spec.addresses entry's CIDRs to Pool.CIDR in
# order; getFreeIPsFromPool walks pool.CIDR in that order, getIPFromCIDR from the first address.
@pytest.mark.parametrize(
    ("addresses", "families", "got"),
    [
        (["198.51.100.8/31", "192.0.2.0/31"], ("IPv4",), ["198.51.100.8", "198.51.100.9", "192.0.2.0", "192.0.2.1"]),
        (["192.0.2.10-192.0.2.11", "192.0.2.1"], ("IPv4",), ["192.0.2.10", "192.0.2.11", "192.0.2.1"]),
        (
            ["2001:db8::10/127", "2001:db8::/127"],
            ("IPv6",),
            ["2001:db8::10", "2001:db8::11", "2001:db8::", "2001:db8::1"],
        ),
    ],
)
def test_metallb_allocates_ranges_in_the_order_the_pool_lists_them(
    addresses: list[str], families: tuple[str, ...], got: list[str]
) -> None:
    a = Allocator(cfg(("p", addresses, {})))
    first = [a.assign(svc(f"s{i}", ip_families=families)).ips for i in range(len(got) - 1)]
    assert first == [(ip(g),) for g in got[:-1]]
    a.release("default/s0")  # a freed address of the first range comes before the last range's rest
    assert a.assign(svc("again", ip_families=families)).ips == (ip(got[0]),)
    assert a.assign(svc("last", ip_families=families)).ips == (ip(got[-1]),)

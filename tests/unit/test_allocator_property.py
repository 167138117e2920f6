"""Property test: random pool edits, Service changes and controller restarts.

Checked after every step, on the Services' status as the controller wrote it:
- no IP is held by two Services that may not share it;
- an edit of the pools or a restart never moves an IP while all of a Service's IPs are still in
  one pool the Service may use, of families it still takes, and that pool's avoidBuggyIPs allows
  them (dual-stack may gain a family, never lose or change one);
- no Service holds an address its pool's avoidBuggyIPs forbids (MetalLB re-checks on every sync);
- the allocator's own view equals the status view.
The model controller below follows Controller.rebuild/_load_config: adopt every status before
allocating, keep each pool's last good version when an edit is invalid (the shared LastGood policy).
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from controller.reconciler import decide
from lbspeaker.core.allocator import Allocator
from lbspeaker.core.config import Config
from lbspeaker.core.lastgood import LastGood
from lbspeaker.core.loader import RawConfig
from lbspeaker.core.request import Refusal, parse_request
from lbspeaker.core.service import ANN_LB_IPS, ANN_POOL, ANN_SHARED, IPAddress, Port, ServiceRef
from lbspeaker.core.sharing import holder_of, incompatibility

RANGES = [
    "192.0.2.0/30",
    "192.0.2.0/29",
    "192.0.2.4/30",
    "192.0.2.1-192.0.2.2",
    "198.51.100.0/31",
    "2001:db8::/126",
    "2001:db8::4/126",
    "2001:db8::2",
]
POOL_NAMES = ["p1", "p2", "p3"]
KEYS = [f"s{i}" for i in range(7)]

pool_spec = st.fixed_dictionaries(
    {
        "addresses": st.lists(st.sampled_from(RANGES), min_size=1, max_size=2, unique=True),
        "autoAssign": st.booleans(),
        "avoidBuggyIPs": st.booleans(),
        "serviceAllocation": st.sampled_from(
            [
                {},
                {"priority": 1},
                {"namespaces": ["default"]},
                {"namespaces": ["x"]},
                {"priority": 2, "serviceSelectors": [{"matchLabels": {"app": "a"}}]},
            ]
        ),
    }
)
pools_st = st.dictionaries(st.sampled_from(POOL_NAMES), pool_spec, max_size=3)

svc_st = st.fixed_dictionaries(
    {
        "share": st.sampled_from(["", "", "k1", "k2"]),
        "ports": st.sets(st.sampled_from([80, 443, 53]), min_size=1, max_size=2),
        "local": st.booleans(),
        "app": st.sampled_from(["a", "b"]),
        "req": st.sampled_from([None, None, None, "192.0.2.1", "192.0.2.2", "2001:db8::1", "198.51.100.1", "bad"]),
        "pool": st.sampled_from([None, None, "p1", "p2", "p3"]),
        "policy": st.sampled_from(["SingleStack", "SingleStack", "PreferDualStack", "RequireDualStack"]),
        "families": st.sampled_from([("IPv4",), ("IPv6",), ("IPv4", "IPv6"), ()]),
        "lb": st.sampled_from([True, True, True, False]),
    }
)


def make_service(key: str, a: dict[str, Any], ingress: tuple[IPAddress, ...]) -> ServiceRef:
    ann = {}
    if a["share"]:
        ann[ANN_SHARED] = a["share"]
    if a["req"]:
        ann[ANN_LB_IPS] = a["req"]
    if a["pool"]:
        ann[ANN_POOL] = a["pool"]
    return ServiceRef(
        namespace="default",
        name=key,
        type="LoadBalancer" if a["lb"] else "ClusterIP",
        labels=(("app", a["app"]),),
        annotations=tuple(sorted(ann.items())),
        ports=tuple(Port("TCP", p) for p in sorted(a["ports"])),
        external_traffic_policy="Local" if a["local"] else "Cluster",
        selector=(("app", a["app"]),),
        ip_families=a["families"],
        ip_family_policy=a["policy"],
        ingress_ips=ingress,
    )


class ControllerMachine(RuleBasedStateMachine):
    """The cluster (Service attributes + status) and a controller that may restart."""

    def __init__(self) -> None:
        super().__init__()
        self.attrs: dict[str, dict[str, Any]] = {}
        self.status: dict[str, tuple[IPAddress, ...]] = {}
        self.raw_pools: dict[str, dict[str, Any]] = {"p1": {"addresses": ["192.0.2.0/30", "2001:db8::/126"]}}
        self.good: Config | None = None
        self.ok = False
        self.alloc = Allocator()
        self.restart()

    # -- the model controller -------------------------------------------------------------

    def load_config(self) -> None:
        raw = [
            {"metadata": {"name": n, "creationTimestamp": f"2026-01-0{i + 1}T00:00:00Z"}, "spec": s}
            for i, (n, s) in enumerate(sorted(self.raw_pools.items()))
        ]
        live = RawConfig.of({"IPAddressPool": raw}, namespaces=[{"metadata": {"name": "default"}}])
        out = self.last_good.update(live)
        self.ok = out.complete
        self.good = out.loaded.config.l2
        self.alloc.set_config(self.good)

    def svc(self, key: str) -> ServiceRef:
        return make_service(key, self.attrs[key], self.status.get(key, ()))

    def reconcile(self, key: str) -> None:
        d = decide(self.svc(key) if key in self.attrs else None, f"default/{key}", self.alloc, may_replace=self.ok)
        if key not in self.attrs:
            self.status.pop(key, None)
        elif d.ingress is not None:
            self.status[key] = d.ingress

    def reconcile_all(self) -> None:
        for _ in range(3):  # a release can unblock a Service reconciled earlier
            for key in sorted(self.attrs):
                self.reconcile(key)

    def restart(self) -> None:
        self.alloc = Allocator()
        self.good, self.ok = None, False
        self.last_good = LastGood()  # a restarted controller has no memory (its ConfigurationState seed aside)
        self.load_config()
        for key in sorted(self.attrs):
            s = self.svc(key)
            if s.is_load_balancer and s.ingress_ips:
                self.alloc.adopt(s)
        self.reconcile_all()

    # -- stability ------------------------------------------------------------------------

    def allowed(self, key: str, ips: tuple[IPAddress, ...]) -> bool:
        """True when all ips lie in one pool the Service may use, and that pool allows, under the current config."""
        s = self.svc(key)
        req = parse_request(s)
        if isinstance(req, Refusal) or any(ip.version not in req.families for ip in ips):
            return False  # the Service no longer takes that family (or its request is refused)
        pools = {self.alloc.pool_of(ip) for ip in ips}
        if not ips or len(pools) != 1 or None in pools:
            return False
        (p,) = pools
        assert p is not None
        if any(p.forbids(ip) for ip in ips):
            return False
        return p.allows("default", namespace_labels={}, service_labels=s.label_map) and s.annotation(ANN_POOL) in (
            None,
            p.name,
        )

    def check_kept(self, before: dict[str, tuple[IPAddress, ...]]) -> None:
        for key, ips in before.items():
            if self.svc(key).is_load_balancer and self.allowed(key, ips):
                now = self.status.get(key, ())
                assert set(ips) <= set(now), f"{key} moved from {ips} to {now}"

    # -- rules ----------------------------------------------------------------------------

    @rule(key=st.sampled_from(KEYS), attrs=svc_st)
    def upsert_service(self, key: str, attrs: dict[str, Any]) -> None:
        self.attrs[key] = attrs
        self.reconcile(key)
        self.reconcile_all()

    @rule(key=st.sampled_from(KEYS))
    def delete_service(self, key: str) -> None:
        self.attrs.pop(key, None)
        self.reconcile(key)
        self.reconcile_all()

    @rule(pools=pools_st)
    def edit_pools(self, pools: dict[str, dict[str, Any]]) -> None:
        before = dict(self.status)
        self.raw_pools = pools
        self.load_config()
        self.reconcile_all()
        self.check_kept(before)

    @rule()
    def restart_controller(self) -> None:
        before = dict(self.status)
        self.restart()
        self.check_kept(before)

    # -- invariants -----------------------------------------------------------------------

    @invariant()
    def no_incompatible_sharing(self) -> None:
        by_ip: dict[IPAddress, list[str]] = {}
        for key, ips in self.status.items():
            for ip in ips:
                by_ip.setdefault(ip, []).append(key)
        for ip, keys in by_ip.items():
            holders = [holder_of(self.svc(k)) for k in keys]
            for i, a in enumerate(holders):
                for b in holders[i + 1 :]:
                    assert incompatibility(a, b) is None, f"{ip} held by {a.key} and {b.key}"
            assert self.alloc.holders(ip) == sorted(f"default/{k}" for k in keys)

    @invariant()
    def no_address_its_pool_forbids(self) -> None:
        for key, ips in self.status.items():
            for ip in ips:
                pool = self.alloc.pool_of(ip)
                assert pool is None or not pool.forbids(ip), f"{key} holds {ip}, forbidden by '{pool.name}'"

    @invariant()
    def status_matches_allocator(self) -> None:
        for key in self.attrs:
            a = self.alloc.assignment(f"default/{key}")
            assert set(self.status.get(key, ())) == (set(a.ips) if a else set())


TestControllerProperties = ControllerMachine.TestCase
TestControllerProperties.settings = settings(
    max_examples=150, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def test_make_service_roundtrip() -> None:
    s = make_service(
        "s0",
        {
            "share": "k",
            "ports": {80},
            "local": False,
            "app": "a",
            "req": None,
            "pool": None,
            "policy": "SingleStack",
            "families": ("IPv4",),
            "lb": True,
        },
        (ipaddress.ip_address("192.0.2.1"),),
    )
    assert replace(s, ingress_ips=()).key == "default/s0" and s.annotation(ANN_SHARED) == "k"

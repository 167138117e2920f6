"""The pure reconcile decision: status, annotation and events per Service."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from controller.reconciler import CONDITION_TYPE, Condition, decide, merge_condition
from controller.workqueue import WorkQueue
from lbspeaker.core.allocator import Allocator
from lbspeaker.core.config import parse_config
from lbspeaker.core.service import ANN_ALLOCATED_FROM, ANN_LB_IPS, ServiceRef


def alloc(*ranges: str) -> Allocator:
    res = parse_config(pools=[{"metadata": {"name": "lab"}, "spec": {"addresses": list(ranges)}}], l2_advertisements=[])
    return Allocator(res.config)


def svc(
    name: str = "web",
    *,
    type: str = "LoadBalancer",
    ingress: tuple[str, ...] = (),
    pool: str | None = None,
    **kw: Any,
) -> ServiceRef:
    ann = dict(kw.pop("annotations", {}))
    if pool:
        ann[ANN_ALLOCATED_FROM] = pool
    return ServiceRef(
        namespace="default",
        name=name,
        type=type,
        annotations=tuple(sorted(ann.items())),
        ingress_ips=tuple(ipaddress.ip_address(i) for i in ingress),
        **kw,
    )


def test_new_service_gets_ip_status_annotation_and_event() -> None:
    a = alloc("192.0.2.200-192.0.2.201")
    s = svc()
    d = decide(s, s.key, a)
    assert d.status_patch(s) == {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.200", "ipMode": "VIP"}]}}}
    assert d.annotation_patch(s) == {"metadata": {"annotations": {ANN_ALLOCATED_FROM: "lab"}}}
    assert [(e.type, e.reason, e.message) for e in d.events] == [
        ("Normal", "IPAllocated", "assigned IP 192.0.2.200 from pool 'lab'")
    ]


def test_up_to_date_service_needs_no_write() -> None:
    a = alloc("192.0.2.200-192.0.2.201")
    s = svc(ingress=("192.0.2.200",), pool="lab")
    a.adopt(s)
    d = decide(s, s.key, a)
    assert (d.status_patch(s), d.annotation_patch(s), d.events) == (None, None, ())


def test_exhausted_pool_clears_and_warns() -> None:
    a = alloc("192.0.2.200")
    decide(svc("first"), "default/first", a)
    s = svc("second")
    d = decide(s, s.key, a)
    assert d.status_patch(s) is None  # nothing to clear
    assert [(e.type, e.reason, e.message) for e in d.events] == [
        ("Warning", "AllocationFailed", "failed to allocate an IP: pool 'lab' exhausted (IPv4)")
    ]


@pytest.mark.parametrize("change", ["delete", "type", "class"])
def test_release_paths(change: str) -> None:
    a = alloc("192.0.2.200")
    s = svc(ingress=("192.0.2.200",), pool="lab")
    a.adopt(s)
    if change == "delete":
        d = decide(None, s.key, a)
        assert d.ingress is None
    elif change == "type":
        s = svc(type="ClusterIP", ingress=("192.0.2.200",), pool="lab")
        d = decide(s, s.key, a)
        assert d.status_patch(s) == {"status": {"loadBalancer": {"ingress": None}}}
        assert d.annotation_patch(s) == {"metadata": {"annotations": {ANN_ALLOCATED_FROM: None}}}
    else:
        s = svc(ingress=("192.0.2.200",), load_balancer_class="other.io/lb")
        d = decide(s, s.key, a)
        assert d.status_patch(s) is None and d.annotation_patch(s) is None
    assert a.holders(ipaddress.ip_address("192.0.2.200")) == []


def test_load_balancer_class_configured_handles_only_that_class() -> None:
    a = alloc("192.0.2.200-192.0.2.201")
    mine = svc("mine", load_balancer_class="lbspeaker.io/lb")
    assert decide(mine, mine.key, a, lb_class="lbspeaker.io/lb").ingress == (ipaddress.ip_address("192.0.2.200"),)
    plain = svc("plain")
    assert decide(plain, plain.key, a, lb_class="lbspeaker.io/lb").ingress is None


def test_ip_outside_every_pool_is_replaced_with_warning() -> None:
    a = alloc("192.0.2.200")
    s = svc(ingress=("198.51.100.9",))
    a.adopt(s)
    d = decide(s, s.key, a)
    assert d.ingress == (ipaddress.ip_address("192.0.2.200"),)
    assert [(e.type, e.reason) for e in d.events] == [
        ("Warning", "ClearAssignment"),
        ("Normal", "IPAllocated"),
    ]
    assert "IP 198.51.100.9 is in no pool the service may use; replaced by 192.0.2.200" in d.events[0].message


def test_bad_request_clears_existing_ip() -> None:
    a = alloc("192.0.2.200")
    s = svc(ingress=("192.0.2.200",), annotations={ANN_LB_IPS: "bogus"})
    a.adopt(s)
    d = decide(s, s.key, a)
    assert d.status_patch(s) == {"status": {"loadBalancer": {"ingress": None}}}
    assert d.events[0].message == f"failed to allocate an IP: {ANN_LB_IPS}: 'bogus' is not an IP address"


def test_workqueue_dedupes_and_delays() -> None:
    q = WorkQueue()
    for k in ("a", "b", "a"):
        q.add(k)
    q.add_after("c", 0.0)
    assert [q.get(0.1), q.get(0.1), q.get(0.1), q.get(0.0)] == ["a", "b", "c", None]


def test_condition_tracks_the_outcome() -> None:
    a = alloc("192.0.2.200")
    s = svc()
    d = decide(s, s.key, a)
    patch = d.status_patch(s, [{"type": "Other", "status": "True"}], now="2026-01-01T00:00:00Z")
    assert patch is not None
    status: Any = patch["status"]
    assert status["conditions"] == [
        {"type": "Other", "status": "True"},
        {
            "type": CONDITION_TYPE,
            "status": "True",
            "reason": "IPAllocated",
            "message": "IP 192.0.2.200 from pool 'lab'",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        },
    ]
    done = svc(ingress=("192.0.2.200",), pool="lab")
    assert decide(done, done.key, a).status_patch(done, status["conditions"], now="later") is None
    other = svc("other")
    failed = decide(other, other.key, a).status_patch(other, [], now="t1")
    assert failed == {
        "status": {
            "conditions": [
                {
                    "type": CONDITION_TYPE,
                    "status": "False",
                    "reason": "PoolExhausted",
                    "message": "pool 'lab' exhausted (IPv4)",
                    "lastTransitionTime": "t1",
                }
            ]
        }
    }


@pytest.mark.parametrize(
    ("existing", "cond", "expected_since"),
    [
        (
            [
                {
                    "type": CONDITION_TYPE,
                    "status": "False",
                    "reason": "PoolExhausted",
                    "message": "a",
                    "lastTransitionTime": "t0",
                }
            ],
            Condition("False", "NoPool", "b"),
            "t0",
        ),
        (
            [
                {
                    "type": CONDITION_TYPE,
                    "status": "False",
                    "reason": "PoolExhausted",
                    "message": "a",
                    "lastTransitionTime": "t0",
                }
            ],
            Condition("True", "IPAllocated", "c"),
            "now",
        ),
    ],
)
def test_condition_transition_time(existing: list[dict[str, Any]], cond: Condition, expected_since: str) -> None:
    merged = merge_condition(existing, cond, now="now")
    assert merged is not None and merged[0]["lastTransitionTime"] == expected_since


def test_condition_removed_when_service_leaves_load_balancer() -> None:
    a = alloc("192.0.2.200")
    s = svc(type="ClusterIP")
    mine = {
        "type": CONDITION_TYPE,
        "status": "True",
        "reason": "IPAllocated",
        "message": "x",
        "lastTransitionTime": "t",
    }
    assert decide(s, s.key, a).status_patch(s, [mine], now="n") == {"status": {"conditions": None}}

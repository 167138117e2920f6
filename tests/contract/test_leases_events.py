"""Leases (the controller's leader election) and core/v1 Events through the official client,
including DESIGN trap 9: client v37 serialises a zero-microsecond eventTime without fraction,
which a real server rejects."""

from __future__ import annotations

import datetime as dt

import pytest
from kubernetes import client

from tests.contract.conftest import K8s
from tests.contract.helpers import api_error

pytestmark = pytest.mark.contract

UTC = dt.UTC


def lease(name: str, holder: str, *, rv: str | None = None) -> client.V1Lease:
    """A Lease body."""
    now = dt.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    return client.V1Lease(
        metadata=client.V1ObjectMeta(name=name, resource_version=rv),
        spec=client.V1LeaseSpec(holder_identity=holder, lease_duration_seconds=15, acquire_time=now,
                                renew_time=now, lease_transitions=0))


def test_lease_create_read_update_with_rv(core: K8s, ns: str) -> None:
    made = core.coord.create_namespaced_lease(ns, lease("ctl", "a"))
    assert made.spec.holder_identity == "a" and made.metadata.resource_version
    assert made.spec.renew_time == dt.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    r = core.raw.request("GET", f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/ctl")
    assert r.body["spec"]["renewTime"] == "2026-01-02T03:04:05.123456Z", "MicroTime keeps 6 digits"
    made.spec.holder_identity = "b"
    made.spec.lease_transitions = 1
    upd = core.coord.replace_namespaced_lease("ctl", ns, made)
    assert upd.spec.holder_identity == "b"
    assert int(upd.metadata.resource_version) > int(made.metadata.resource_version)
    made.spec.holder_identity = "c"  # still carries the old resourceVersion
    err = api_error(lambda: core.coord.replace_namespaced_lease("ctl", ns, made))
    assert err.status == 409 and err.status_body["reason"] == "Conflict"
    assert core.coord.read_namespaced_lease("ctl", ns).spec.holder_identity == "b"


def test_lease_create_twice_409(core: K8s, ns: str) -> None:
    core.coord.create_namespaced_lease(ns, lease("dup", "a"))
    err = api_error(lambda: core.coord.create_namespaced_lease(ns, lease("dup", "b")))
    assert err.status == 409 and err.status_body["reason"] == "AlreadyExists"


def test_lease_wire_format_accepts_zero_microseconds(core: K8s, ns: str) -> None:
    body = {"metadata": {"name": "wire"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15,
                                                   "renewTime": "2026-01-02T03:04:05.000000Z"}}
    r = core.raw.request("POST", f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases", body=body)
    assert r.status == 201 and r.body["spec"]["renewTime"] == "2026-01-02T03:04:05.000000Z", r.text


def event(ns: str, name: str, *, event_time: dt.datetime | None) -> client.CoreV1Event:
    """A core/v1 Event about a Service."""
    ref = client.V1ObjectReference(kind="Service", namespace=ns, name="svc", api_version="v1")
    ts = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    ev = client.CoreV1Event(
        metadata=client.V1ObjectMeta(name=name, namespace=ns), involved_object=ref, reason="IPAllocated",
        message="assigned 192.0.2.10", type="Normal", count=1, first_timestamp=ts, last_timestamp=ts,
        source=client.V1EventSource(component="lbspeaker-controller"))
    if event_time is not None:
        ev.event_time = event_time
        ev.reporting_component = "lbspeaker.io/controller"
        ev.reporting_instance = "controller-0"
        ev.action = "Allocate"
        ev.first_timestamp = ev.last_timestamp = None
        ev.count = None
        ev.source = None
    return ev


def test_legacy_event_via_client(core: K8s, ns: str) -> None:
    made = core.core.create_namespaced_event(ns, event(ns, "e1", event_time=None))
    assert made.reason == "IPAllocated" and made.involved_object.name == "svc"
    lst = core.core.list_namespaced_event(ns, field_selector="involvedObject.name=svc")
    assert [e.metadata.name for e in lst.items] == ["e1"]
    made.count = 2
    upd = core.core.patch_namespaced_event("e1", ns, {"count": 2, "message": "again"})
    assert upd.count == 2 and upd.message == "again"


def test_event_with_microsecond_event_time(core: K8s, ns: str) -> None:
    t = dt.datetime(2026, 1, 2, 3, 4, 5, 250000, tzinfo=UTC)
    made = core.core.create_namespaced_event(ns, event(ns, "e2", event_time=t))
    assert made.event_time == t
    r = core.raw.request("GET", f"/api/v1/namespaces/{ns}/events/e2")
    assert r.body["eventTime"] == "2026-01-02T03:04:05.250000Z"


def test_event_time_without_fraction_is_rejected(core: K8s, ns: str) -> None:
    """Trap 9: client v37 sends '2026-01-02T03:04:05Z' for a zero-microsecond eventTime; the real
    server cannot parse it as a MicroTime and answers 400. Our event code must avoid it."""
    body = {"metadata": {"name": "e3"}, "involvedObject": {"kind": "Service", "namespace": ns, "name": "svc"},
            "reason": "R", "message": "m", "type": "Normal", "eventTime": "2026-01-02T03:04:05Z",
            "reportingComponent": "lbspeaker.io/controller", "reportingInstance": "c-0", "action": "A"}
    r = core.raw.request("POST", f"/api/v1/namespaces/{ns}/events", body=body)
    st = r.status_obj()
    assert r.status == 400 and st["reason"] == "BadRequest", r.text
    zero = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    err = api_error(lambda: core.core.create_namespaced_event(ns, event(ns, "e4", event_time=zero)))
    assert err.status == 400


def test_events_v1_group(core: K8s, ns: str) -> None:
    body = {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e5"},
            "eventTime": "2026-01-02T03:04:05.000001Z", "reportingController": "lbspeaker.io/controller",
            "reportingInstance": "c-0", "action": "Allocate", "reason": "IPAllocated", "type": "Normal",
            "regarding": {"kind": "Service", "namespace": ns, "name": "svc"}, "note": "assigned"}
    r = core.raw.request("POST", f"/apis/events.k8s.io/v1/namespaces/{ns}/events", body=body)
    assert r.status == 201, r.text
    r = core.raw.request("GET", f"/api/v1/namespaces/{ns}/events/e5")
    assert r.status == 200 and r.body["message"] == "assigned" and r.body["involvedObject"]["name"] == "svc"

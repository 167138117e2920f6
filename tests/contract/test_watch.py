"""Watch contract: replay from "0", resume from a resourceVersion, 410 for a too-old one,
timeoutSeconds, bookmarks, and selector enter/leave as ADDED/DELETED. Every read is bounded."""

from __future__ import annotations

import threading
import time

import pytest
from kubernetes import client, watch

from tests.contract.conftest import WIDGET_GROUP, WIDGET_PLURAL, WIDGET_VERSION, K8s, widget
from tests.contract.helpers import MERGE

pytestmark = pytest.mark.contract


def cms(ns: str) -> str:
    """ConfigMap collection path."""
    return f"/api/v1/namespaces/{ns}/configmaps"


def mkcm(k8s: K8s, ns: str, name: str, **labels: str) -> str:
    """Create a ConfigMap, return its resourceVersion."""
    cm = k8s.core.create_namespaced_config_map(ns, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=name, labels=labels or None), data={"v": "0"}))
    return str(cm.metadata.resource_version)


def test_watch_from_zero_replays_added(core: K8s, ns: str) -> None:
    mkcm(core, ns, "a")
    mkcm(core, ns, "b")
    st, events, _ = core.raw.watch(cms(ns), query={"resourceVersion": "0"}, max_events=2, timeout=10)
    assert st == 200
    assert sorted((t, o["metadata"]["name"]) for t, o in events) == [("ADDED", "a"), ("ADDED", "b")]
    assert all(o["kind"] == "ConfigMap" and o["apiVersion"] == "v1" for _, o in events)


def test_watch_from_rv_replays_later_events_in_order(core: K8s, ns: str) -> None:
    mkcm(core, ns, "early")
    rv = mkcm(core, ns, "x")
    core.core.patch_namespaced_config_map("x", ns, {"data": {"v": "1"}})
    mkcm(core, ns, "y")
    core.core.delete_namespaced_config_map("x", ns)
    st, events, _ = core.raw.watch(cms(ns), query={"resourceVersion": rv}, max_events=3, timeout=10)
    assert st == 200
    assert [(t, o["metadata"]["name"]) for t, o in events] == [
        ("MODIFIED", "x"), ("ADDED", "y"), ("DELETED", "x")]
    rvs = [int(o["metadata"]["resourceVersion"]) for _, o in events]
    assert rvs == sorted(rvs) and rvs[0] > int(rv)
    assert events[0][1]["data"] == {"v": "1"}


def test_watch_cr_from_rv(widgets: K8s, ns: str) -> None:
    base = f"/apis/{WIDGET_GROUP}/{WIDGET_VERSION}/namespaces/{ns}/{WIDGET_PLURAL}"
    r = widgets.raw.request("POST", base, body=widget("w1"))
    rv = r.body["metadata"]["resourceVersion"]
    widgets.raw.request("PATCH", f"{base}/w1", body={"spec": {"size": 2}}, content_type=MERGE)
    widgets.raw.request("DELETE", f"{base}/w1")
    st, events, _ = widgets.raw.watch(base, query={"resourceVersion": rv}, max_events=2, timeout=10)
    assert st == 200
    assert [(t, o["spec"]["size"]) for t, o in events] == [("MODIFIED", 2), ("DELETED", 2)]


def test_too_old_resource_version_410(core: K8s, ns: str) -> None:
    """Write until the first version leaves the server's window (etcd compaction on 1.20, history
    size on the embedded server), then a watch from it must end with one ERROR 410 Expired."""
    old = mkcm(core, ns, "old")
    deadline = time.monotonic() + 150
    writes = 0
    while time.monotonic() < deadline and writes < 2500:
        for _ in range(100):
            writes += 1
            core.core.patch_namespaced_config_map("old", ns, {"data": {"v": str(writes)}})
        st, events, ended = core.raw.watch(cms(ns), query={"resourceVersion": old}, max_events=1000,
                                           timeout=3)
        if any(t == "ERROR" for t, _ in events) or st != 200:
            break
    assert st == 200, "a too-old watch is a 200 stream carrying one ERROR event"
    assert [t for t, _ in events] == ["ERROR"], [t for t, _ in events][:5]
    status = events[0][1]
    assert status["kind"] == "Status" and status["code"] == 410 and status["reason"] == "Expired"
    assert status["status"] == "Failure" and status["message"]
    assert ended, "the server closes the stream after the ERROR event"
    with pytest.raises(client.ApiException) as exc:
        for _ in watch.Watch().stream(core.core.list_namespaced_config_map, ns, resource_version=old,
                                      timeout_seconds=5, _request_timeout=10):
            pass
    assert exc.value.status == 410


def test_timeout_seconds_ends_watch(core: K8s, ns: str) -> None:
    t0 = time.monotonic()
    st, events, ended = core.raw.watch(cms(ns), query={"resourceVersion": "0", "timeoutSeconds": "2"},
                                       max_events=10, timeout=15)
    assert st == 200 and ended, "the server must close the watch after timeoutSeconds"
    assert events == []
    assert time.monotonic() - t0 < 14
    seen = list(watch.Watch().stream(core.core.list_namespaced_config_map, ns, timeout_seconds=1,
                                     _request_timeout=10))
    assert seen == []


def svcs(ns: str) -> str:
    """Service collection path."""
    return f"/api/v1/namespaces/{ns}/services"


def mksvc(k8s: K8s, ns: str, name: str, **labels: str) -> str:
    """Create a ClusterIP Service, return its resourceVersion."""
    svc = k8s.core.create_namespaced_service(ns, client.V1Service(
        metadata=client.V1ObjectMeta(name=name, labels=labels or None),
        spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=80)])))
    return str(svc.metadata.resource_version)


def test_bookmarks_with_allow_watch_bookmarks(core: K8s, ns: str) -> None:
    """A watch with a deadline and allowWatchBookmarks gets a BOOKMARK before the deadline carrying
    a resourceVersion past every change made meanwhile, even changes its selector filters out.
    (1.20's watch cache sends one ~2 s before timeoutSeconds, and only with an RV newer than the
    watch's start, so a filtered-out write happens 1 s into the watch.)"""
    rv = mksvc(core, ns, "bm")
    later: list[str] = []
    t = threading.Timer(1.0, lambda: later.append(mksvc(core, ns, "later", team="other")))
    t.start()
    try:
        st, events, ended = core.raw.watch(
            svcs(ns), query={"resourceVersion": rv, "allowWatchBookmarks": "true", "timeoutSeconds": "5",
                             "labelSelector": "team=none"},
            max_events=10, timeout=15)
    finally:
        t.join(timeout=10)
    assert st == 200 and ended and later
    assert [t for t, _ in events] and {t for t, _ in events} == {"BOOKMARK"}, [t for t, _ in events]
    for _, m in events:
        assert m["kind"] == "Service" and m["apiVersion"] == "v1"
        assert "name" not in m["metadata"]
    assert int(events[-1][1]["metadata"]["resourceVersion"]) >= int(later[0])


def test_no_bookmarks_without_asking(core: K8s, ns: str) -> None:
    rv = mksvc(core, ns, "nb")
    _, events, _ = core.raw.watch(svcs(ns), query={"resourceVersion": rv, "timeoutSeconds": "4"},
                                  max_events=10, timeout=15)
    assert [t for t, _ in events] == []


@pytest.mark.parametrize("kind", ["configmaps", "services"])
def test_label_selector_enter_and_leave(core: K8s, ns: str, kind: str) -> None:
    """Entering the selector is ADDED; leaving it is DELETED carrying the OLD object (still
    matching the selector) at the resourceVersion of the write that made it leave."""
    make = mkcm if kind == "configmaps" else mksvc
    patch = (core.core.patch_namespaced_config_map if kind == "configmaps"
             else core.core.patch_namespaced_service)
    make(core, ns, "s", team="b")
    rv = make(core, ns, "other", team="a")
    patch("s", ns, {"metadata": {"labels": {"team": "a"}}})
    patch("s", ns, {"metadata": {"annotations": {"v": "2"}}})
    leave_rv = patch("s", ns, {"metadata": {"labels": {"team": "c"}}}).metadata.resource_version
    patch("s", ns, {"metadata": {"annotations": {"v": "3"}}})
    # raw: 1.20 answers a Service DELETE with a Status, which client v37 cannot parse as V1Service
    assert core.raw.request("DELETE", f"/api/v1/namespaces/{ns}/{kind}/other").status == 200
    st, events, _ = core.raw.watch(f"/api/v1/namespaces/{ns}/{kind}",
                                   query={"resourceVersion": rv, "labelSelector": "team=a"},
                                   max_events=4, timeout=8)
    assert st == 200
    got = [(t, o["metadata"]["name"], o["metadata"]["labels"]["team"]) for t, o in events]
    assert got == [("ADDED", "s", "a"), ("MODIFIED", "s", "a"), ("DELETED", "s", "a"),
                   ("DELETED", "other", "a")], got
    assert events[2][1]["metadata"]["resourceVersion"] == leave_rv
    assert events[2][1]["metadata"]["annotations"] == {"v": "2"}


def test_field_selector_watch_by_name(core: K8s, ns: str) -> None:
    rv = mkcm(core, ns, "f1")
    mkcm(core, ns, "f2")
    core.core.patch_namespaced_config_map("f1", ns, {"data": {"v": "9"}})
    st, events, _ = core.raw.watch(cms(ns), query={"resourceVersion": rv,
                                                   "fieldSelector": "metadata.name=f1"},
                                   max_events=2, timeout=5)
    assert st == 200
    assert [(t, o["metadata"]["name"]) for t, o in events] == [("MODIFIED", "f1")]


def test_client_watch_stream_sees_changes(core: K8s, ns: str) -> None:
    rv = mkcm(core, ns, "c1")
    core.core.patch_namespaced_config_map("c1", ns, {"data": {"v": "1"}})
    w = watch.Watch()
    seen = []
    for ev in w.stream(core.core.list_namespaced_config_map, ns, resource_version=rv, timeout_seconds=5,
                       _request_timeout=10):
        seen.append((ev["type"], ev["object"].metadata.name, ev["object"].data))
        if len(seen) == 1:
            w.stop()
    assert seen == [("MODIFIED", "c1", {"v": "1"})]
    assert w.resource_version and int(w.resource_version) > int(rv)

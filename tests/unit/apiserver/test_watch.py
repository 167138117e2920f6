"""Watch semantics: replay, resume, 410, timeout, bookmarks, selector transitions, client resume."""

from __future__ import annotations

import http.client
import json
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from kubernetes import client, watch

from lbspeaker.apiserver.server import EmbeddedServer
from tests.unit.apiserver.conftest import svc_body


def stream(
    srv: EmbeddedServer, path: str, *, limit: int = 100, timeout: float = 10.0
) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Read a watch until it ends (or ``limit`` events); returns headers and events."""
    u = urlsplit(srv.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        events = []
        while len(events) < limit:
            line = resp.readline()
            if not line:
                break
            events.append(json.loads(line))
        return hdrs, events
    finally:
        conn.close()


def test_watch_replays_current_objects_then_times_out(srv: EmbeddedServer, v1: client.CoreV1Api) -> None:
    v1.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    v1.create_namespaced_config_map("default", {"metadata": {"name": "b"}})
    t0 = time.monotonic()
    hdrs, evs = stream(srv, "/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1")
    assert time.monotonic() - t0 >= 0.9
    assert hdrs["content-type"] == "application/json" and hdrs["transfer-encoding"] == "chunked"
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in evs] == [("ADDED", "a"), ("ADDED", "b")]


def test_watch_from_rv_replays_history(srv: EmbeddedServer, v1: client.CoreV1Api) -> None:
    a = v1.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    v1.patch_namespaced_config_map("a", "default", {"data": {"x": "1"}})
    v1.delete_namespaced_config_map("a", "default")
    rv = a.metadata.resource_version
    _, evs = stream(srv, f"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=1")
    assert [e["type"] for e in evs] == ["MODIFIED", "DELETED"]
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in evs]
    assert rvs == sorted(rvs) and rvs[0] > int(rv)


def test_too_old_resource_version_gives_410(v1: client.CoreV1Api) -> None:
    srv = EmbeddedServer(history_size=3)
    srv.start()
    try:
        c = client.CoreV1Api(client.ApiClient(client.Configuration(host=srv.url)))
        first = c.create_namespaced_config_map("default", {"metadata": {"name": "x"}})
        for i in range(5):
            c.patch_namespaced_config_map("x", "default", {"data": {"i": str(i)}})
        _, evs = stream(srv, f"/api/v1/configmaps?watch=1&resourceVersion={first.metadata.resource_version}")
        assert len(evs) == 1 and evs[0]["type"] == "ERROR"
        st = evs[0]["object"]
        assert st["kind"] == "Status" and st["code"] == 410 and st["reason"] == "Expired"
        c.api_client.close()
    finally:
        srv.stop()


def test_bookmarks(srv: EmbeddedServer, v1: client.CoreV1Api) -> None:
    v1.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    _, evs = stream(srv, "/api/v1/configmaps?watch=1&allowWatchBookmarks=true&timeoutSeconds=1")
    bms = [e for e in evs if e["type"] == "BOOKMARK"]
    assert bms, evs
    obj = bms[0]["object"]
    assert obj["kind"] == "ConfigMap" and obj["apiVersion"] == "v1" and int(obj["metadata"]["resourceVersion"]) > 0
    assert set(obj) == {"kind", "apiVersion", "metadata"}


def test_send_initial_events_ends_with_marked_bookmark(srv: EmbeddedServer, v1: client.CoreV1Api) -> None:
    v1.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    path = (
        "/api/v1/configmaps?watch=1&allowWatchBookmarks=true&sendInitialEvents=true"
        "&resourceVersionMatch=NotOlderThan&timeoutSeconds=1"
    )
    _, evs = stream(srv, path)
    assert evs[0]["type"] == "ADDED" and evs[1]["type"] == "BOOKMARK"
    assert evs[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_selector_transitions_added_deleted(srv: EmbeddedServer, v1: client.CoreV1Api) -> None:
    cm = v1.create_namespaced_config_map("default", {"metadata": {"name": "t", "labels": {"app": "x"}}})
    rv = cm.metadata.resource_version
    v1.patch_namespaced_config_map("t", "default", {"metadata": {"labels": {"app": "y"}}})
    v1.patch_namespaced_config_map("t", "default", {"data": {"k": "v"}})
    v1.patch_namespaced_config_map("t", "default", {"metadata": {"labels": {"app": "x"}}})
    v1.patch_namespaced_config_map("t", "default", {"data": {"k": "w"}})
    _, evs = stream(srv, f"/api/v1/configmaps?watch=1&labelSelector=app%3Dx&resourceVersion={rv}&timeoutSeconds=1")
    assert [e["type"] for e in evs] == ["DELETED", "ADDED", "MODIFIED"]
    _, evs = stream(
        srv,
        f"/api/v1/configmaps?watch=1&fieldSelector=metadata.name%3Dother&resourceVersion={rv}&timeoutSeconds=1",
    )
    assert evs == []


def test_live_events_reach_watcher(srv: EmbeddedServer, v1: client.CoreV1Api) -> None:
    got: list[tuple[str, str]] = []

    def reader() -> None:
        w = watch.Watch()
        for ev in w.stream(v1.list_namespaced_service, "default", timeout_seconds=3, resource_version="0"):
            got.append((ev["type"], ev["object"].metadata.name))
            if len(got) >= 3:
                w.stop()

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.3)
    v1.create_namespaced_service("default", svc_body("live"))
    v1.delete_namespaced_service("live", "default")
    t.join(10)
    assert got == [("ADDED", "kubernetes"), ("ADDED", "live"), ("DELETED", "live")]


def test_client_watch_resumes_after_forced_close(srv: EmbeddedServer, v1: client.CoreV1Api) -> None:
    start = v1.list_namespaced_config_map("default").metadata.resource_version
    seen: list[str] = []
    w = watch.Watch()
    done = threading.Event()

    def reader() -> None:
        for ev in w.stream(v1.list_namespaced_config_map, "default", resource_version=start, _request_timeout=10):
            seen.append(ev["object"].metadata.name)
            if len(seen) == 2:
                break
        done.set()

    t = threading.Thread(target=reader)
    t.start()
    v1.create_namespaced_config_map("default", {"metadata": {"name": "before"}})
    for _ in range(50):
        if seen:
            break
        time.sleep(0.05)
    assert srv.faults.close_watches() >= 1
    v1.create_namespaced_config_map("default", {"metadata": {"name": "after"}})
    assert done.wait(10)
    t.join(5)
    assert seen == ["before", "after"]


def test_informer_relists_after_forced_410(srv: EmbeddedServer, v1: client.CoreV1Api) -> None:
    """A list+watch loop: a 410 makes it relist and carry on from the new list resourceVersion."""
    v1.create_namespaced_config_map("default", {"metadata": {"name": "one"}})
    srv.faults.expire_next_watches(1)
    lists = 0
    names: set[str] = set()
    for _ in range(5):
        lst = v1.list_namespaced_config_map("default")
        lists += 1
        names = {c.metadata.name for c in lst.items}
        try:
            for ev in watch.Watch().stream(
                v1.list_namespaced_config_map,
                "default",
                resource_version=lst.metadata.resource_version,
                timeout_seconds=1,
            ):
                names.add(ev["object"].metadata.name)
            break
        except client.ApiException as err:
            assert err.status == 410
    assert lists == 2 and names == {"one"}


def test_kubernetes_client_watch_with_selector_and_timeout(v1: client.CoreV1Api) -> None:
    v1.create_namespaced_config_map("default", {"metadata": {"name": "s1", "labels": {"k": "v"}}})
    v1.create_namespaced_config_map("default", {"metadata": {"name": "s2"}})
    evs = list(watch.Watch().stream(v1.list_namespaced_config_map, "default", label_selector="k=v", timeout_seconds=1))
    assert [e["object"].metadata.name for e in evs] == ["s1"]


@pytest.mark.parametrize("param", ["watch=true", "watch=1"])
def test_watch_single_object_path(srv: EmbeddedServer, v1: client.CoreV1Api, param: str) -> None:
    v1.create_namespaced_config_map("default", {"metadata": {"name": "one"}})
    v1.create_namespaced_config_map("default", {"metadata": {"name": "two"}})
    _, evs = stream(
        srv,
        f"/api/v1/namespaces/default/configmaps?{param}&fieldSelector=metadata.name%3Dtwo&timeoutSeconds=1",
    )
    assert [e["object"]["metadata"]["name"] for e in evs] == ["two"]


def test_python_client_sees_bookmarks(srv: EmbeddedServer, v1: client.CoreV1Api) -> None:
    v1.create_namespaced_config_map("default", {"metadata": {"name": "bm"}})
    w = watch.Watch()
    types: list[str] = []
    for ev in w.stream(v1.list_namespaced_config_map, "default", allow_watch_bookmarks=True, timeout_seconds=1):
        types.append(ev["type"])
    assert types[0] == "ADDED" and "BOOKMARK" in types
    assert int(w.resource_version) >= int(v1.read_namespaced_config_map("bm", "default").metadata.resource_version)


def test_concurrent_writers_watch_order(srv: EmbeddedServer, v1: client.CoreV1Api) -> None:
    start = v1.list_namespaced_config_map("default").metadata.resource_version
    url = srv.url

    def writer(n: int) -> None:
        c = client.ApiClient(client.Configuration(host=url))
        api = client.CoreV1Api(c)
        for i in range(25):
            api.create_namespaced_config_map("default", {"metadata": {"name": f"w{n}-{i}"}})
        c.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    _, evs = stream(srv, f"/api/v1/configmaps?watch=1&resourceVersion={start}&timeoutSeconds=1", limit=200)
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in evs]
    assert len(rvs) == 100 and rvs == sorted(set(rvs))
    lst = v1.list_namespaced_config_map("default")
    assert int(lst.metadata.resource_version) == rvs[-1] and len(lst.items) == 100

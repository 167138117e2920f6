"""The official client's `watch.Watch().stream()` against forced faults (embedded server only; it has
fault hooks `srv.faults`): after a forced disconnect the stream resumes from the last
resourceVersion with no event lost or repeated; after one forced 410 it retries by itself; after a
410 that persists it raises ApiException(410) and a relist + re-watch sees every later change."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client, watch

from tests.contract.conftest import K8s, gate
from tests.contract.servers import FAULTS

pytestmark = pytest.mark.contract


@pytest.fixture
def faulty(core: K8s) -> Any:
    """The embedded server's fault hooks (cleared afterwards)."""
    gate(core.api, FAULTS, "fault hooks exist only in the embedded server")
    f = core.api.embedded.faults
    f.clear()
    yield f
    f.clear()


def mkcm(k8s: K8s, ns: str, name: str) -> str:
    """Create a ConfigMap; return its resourceVersion."""
    return str(k8s.core.create_namespaced_config_map(
        ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name))).metadata.resource_version)


def later(delay: float, fn: Callable[[], None]) -> threading.Thread:
    """Run fn in a thread after delay seconds."""
    def run() -> None:
        time.sleep(delay)
        fn()
    t = threading.Thread(target=run, name="lbs-contract-later", daemon=True)
    t.start()
    return t


def collect(k8s: K8s, ns: str, rv: str, want: int, *, deadline: float = 20) -> tuple[list[tuple[str, str]], str]:
    """Stream ConfigMap events from rv without timeout_seconds (client retries enabled) until
    `want` events arrived or the deadline passed; returns the events and the client's last RV."""
    w = watch.Watch()
    seen: list[tuple[str, str]] = []
    end = time.monotonic() + deadline
    for ev in w.stream(k8s.core.list_namespaced_config_map, ns, resource_version=rv, _request_timeout=5):
        seen.append((ev["type"], ev["object"].metadata.name))
        if len(seen) >= want or time.monotonic() > end:
            w.stop()
    return seen, str(w.resource_version)


def test_stream_resumes_after_forced_disconnect(core: K8s, ns: str, faulty: Any) -> None:
    rv = mkcm(core, ns, "start")

    def writes() -> None:
        mkcm(core, ns, "a")
        time.sleep(0.3)
        assert faulty.close_watches() >= 1
        time.sleep(0.3)
        mkcm(core, ns, "b")  # made while the client reconnects: must arrive exactly once
        time.sleep(0.3)
        faulty.close_watches()
        mkcm(core, ns, "c")

    t = later(0.5, writes)
    seen, last = collect(core, ns, rv, 3)
    t.join(timeout=10)
    assert seen == [("ADDED", "a"), ("ADDED", "b"), ("ADDED", "c")]
    assert int(last) > int(rv)


def test_stream_retries_once_after_single_forced_410(core: K8s, ns: str, faulty: Any) -> None:
    rv = mkcm(core, ns, "start")
    mkcm(core, ns, "a")
    faulty.expire_next_watches(1)
    seen, _ = collect(core, ns, rv, 1)
    assert seen == [("ADDED", "a")], "the client retries once after a 410 and the retry is served"


def test_persistent_410_raises_then_relist_and_rewatch(core: K8s, ns: str, faulty: Any) -> None:
    rv = mkcm(core, ns, "start")
    mkcm(core, ns, "a")
    faulty.expire_next_watches(2)
    with pytest.raises(client.ApiException) as exc:
        collect(core, ns, rv, 1, deadline=10)
    assert exc.value.status == 410
    lst = core.core.list_namespaced_config_map(ns)  # relist: the recovery the client leaves to us
    assert {i.metadata.name for i in lst.items} == {"start", "a"}
    t = later(0.5, lambda: mkcm(core, ns, "after"))
    seen, _ = collect(core, ns, lst.metadata.resource_version, 1)
    t.join(timeout=10)
    assert seen == [("ADDED", "after")]


def test_forced_410_is_an_error_event(core: K8s, ns: str, faulty: Any) -> None:
    faulty.expire_next_watches(1)
    st, events, ended = core.raw.watch(f"/api/v1/namespaces/{ns}/configmaps", query={"resourceVersion": "0"},
                                       max_events=5, timeout=5)
    assert st == 200 and ended and [t for t, _ in events] == ["ERROR"]
    assert events[0][1]["code"] == 410 and events[0][1]["reason"] == "Expired"

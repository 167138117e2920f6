"""The controller loop against an in-memory stand-in of the Kube layer (list/watch/patch/event).

The embedded API server test (test_controller_e2e.py) covers the real HTTP path; this one keeps
the loop's rules fast and deterministic: allocation, restart stability, release, exhaustion.
"""

from __future__ import annotations

import builtins
import copy
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from controller.controller import Controller
from lbspeaker.apiserver.patch import json_merge
from lbspeaker.core.errors import NotFoundError
from lbspeaker.k8s.client import IPADDRESSPOOLS, L2ADVERTISEMENTS, SERVICES, Resource

NS = "lbspeaker-system"


class FakeKube:
    """Just enough of lbspeaker.k8s.client.Kube for the controller."""

    host = "fake"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.objs: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.rv = 0
        self.watchers: list[tuple[str, queue.Queue[dict[str, Any]]]] = []
        self.events: list[tuple[str, str, str, str]] = []
        self.closed = False

    def _bump(self, res: Resource, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        obj.setdefault("kind", res.kind)
        obj.setdefault("apiVersion", res.api_version)
        for plural, q in self.watchers:
            if plural == res.plural:
                q.put({"type": kind, "object": copy.deepcopy(obj)})
        return copy.deepcopy(obj)

    def served(self, res: Resource) -> Resource:
        return res

    def list(self, res: Resource, namespace: str | None = None, **_: Any) -> tuple[list[dict[str, Any]], str]:
        with self.lock:
            items = [
                copy.deepcopy(o)
                for (p, ns, _n), o in sorted(self.objs.items())
                if p == res.plural and (namespace is None or ns == namespace)
            ]
            return items, str(self.rv)

    def watch(
        self, res: Resource, *, resource_version: str, namespace: str | None = None, **_: Any
    ) -> Iterator[dict[str, Any]]:
        q: queue.Queue[dict[str, Any]] = queue.Queue()
        with self.lock:
            self.watchers.append((res.plural, q))
        while not self.closed:
            try:
                ev = q.get(timeout=0.05)
            except queue.Empty:
                continue
            if namespace is None or ev["object"]["metadata"].get("namespace") == namespace:
                yield ev

    def get(self, res: Resource, name: str, namespace: str | None = None) -> dict[str, Any]:
        with self.lock:
            obj = self.objs.get((res.plural, namespace or "", name))
            if obj is None:
                raise NotFoundError(f"{res.plural} {namespace}/{name} not found", code=404)
            return copy.deepcopy(obj)

    def create(self, res: Resource, body: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        with self.lock:
            obj = copy.deepcopy(body)
            ns = namespace or obj["metadata"].get("namespace") or ""
            obj["metadata"]["namespace"] = ns
            obj["metadata"].setdefault("creationTimestamp", f"2026-01-01T00:00:{len(self.objs):02d}Z")
            self.objs[(res.plural, ns, obj["metadata"]["name"])] = obj
            return self._bump(res, "ADDED", obj)

    def patch(
        self,
        res: Resource,
        name: str,
        body: dict[str, Any],
        namespace: str | None = None,
        *,
        subresource: str | None = None,
        content_type: str = "",
    ) -> dict[str, Any]:
        with self.lock:
            key = (res.plural, namespace or "", name)
            if key not in self.objs:
                raise NotFoundError(f"{res.plural} {namespace}/{name} not found", code=404)
            part = (
                {"status": body.get("status")}
                if subresource == "status"
                else {k: v for k, v in body.items() if k != "status"}
            )
            self.objs[key] = json_merge(self.objs[key], part)
            return self._bump(res, "MODIFIED", self.objs[key])

    def replace_spec(self, res: Resource, name: str, namespace: str, spec: dict[str, Any]) -> None:
        with self.lock:
            obj = self.objs[(res.plural, namespace, name)]
            obj["spec"] = spec
            self._bump(res, "MODIFIED", obj)

    def delete(self, res: Resource, name: str, namespace: str | None = None) -> None:
        with self.lock:
            obj = self.objs.pop((res.plural, namespace or "", name), None)
            if obj is not None:
                self._bump(res, "DELETED", obj)

    def event(self, obj: dict[str, Any], *, reason: str, message: str, type: str = "Normal", **_: Any) -> None:
        meta = obj["metadata"]
        with self.lock:
            self.events.append((f"{meta.get('namespace')}/{meta['name']}", type, reason, message))

    def ingress(self, name: str, ns: str = "default") -> builtins.list[str]:
        obj = self.get(SERVICES, name, ns)
        return [i["ip"] for i in ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]


def service(name: str, *, type: str = "LoadBalancer", ns: str = "default") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": ns},
        "spec": {"type": type, "ports": [{"port": 80, "protocol": "TCP"}], "ipFamilies": ["IPv4"]},
    }


def wait_for(cond: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


class Running:
    """One controller in a thread, stopped by ``stop()``."""

    def __init__(self, kube: FakeKube) -> None:
        self.ctrl = Controller(kube, namespace=NS, status_interval=0.05)  # type: ignore[arg-type]
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self.ctrl.run, args=(self.stop_ev,), daemon=True)
        self.thread.start()
        assert self.ctrl.ready.wait(5.0)

    def stop(self) -> None:
        self.stop_ev.set()
        self.thread.join(5.0)
        assert not self.thread.is_alive()


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    k = FakeKube()
    k.create(IPADDRESSPOOLS, {"metadata": {"name": "lab"}, "spec": {"addresses": ["192.0.2.200-192.0.2.202"]}}, NS)
    k.create(L2ADVERTISEMENTS, {"metadata": {"name": "lab"}, "spec": {"ipAddressPools": ["lab"]}}, NS)
    try:
        yield k
    finally:
        k.closed = True


def test_allocate_restart_release_exhaust(kube: FakeKube) -> None:
    for n in ("a", "b"):
        kube.create(SERVICES, service(n), "default")
    kube.create(SERVICES, service("plain", type="ClusterIP"), "default")
    run = Running(kube)
    try:
        wait_for(
            lambda: (
                bool(kube.ingress("a") and kube.ingress("b"))
                and "annotations" in kube.get(SERVICES, "a", "default")["metadata"]
            ),
            "IPs for a and b",
        )
        before = {n: kube.ingress(n) for n in ("a", "b")}
        assert sorted(before.values()) == [["192.0.2.200"], ["192.0.2.201"]]
        ann = kube.get(SERVICES, "a", "default")["metadata"]["annotations"]
        assert ann["lbspeaker.io/ip-allocated-from-pool"] == "lab"
        assert kube.ingress("plain") == []
        wait_for(
            lambda: (kube.get(IPADDRESSPOOLS, "lab", NS).get("status") or {}).get("assignedIPv4") == 2,
            "pool status",
        )
        assert kube.get(IPADDRESSPOOLS, "lab", NS)["status"]["availableIPv4"] == 1
    finally:
        run.stop()

    # restart: a new service created while the controller is down must not steal a or b's IP
    kube.delete(SERVICES, "a", "default")
    kube.create(SERVICES, {**service("c"), "status": {}}, "default")
    kube.create(SERVICES, service("a2"), "default")
    run = Running(kube)
    try:
        wait_for(lambda: bool(kube.ingress("c") and kube.ingress("a2")), "IPs for c and a2")
        assert kube.ingress("b") == before["b"]
        assert sorted(kube.ingress("c") + kube.ingress("a2")) == sorted(["192.0.2.200", "192.0.2.202"])
        # exhaustion
        kube.create(SERVICES, service("d"), "default")
        wait_for(lambda: any(e[0] == "default/d" and e[2] == "AllocationFailed" for e in kube.events), "failure")
        assert (
            "default/d",
            "Warning",
            "AllocationFailed",
            "failed to allocate an IP: pool 'lab' exhausted (IPv4)",
        ) in kube.events
        # type change releases, and the freed IP goes to the waiting service
        freed = kube.ingress("b")
        kube.replace_spec(SERVICES, "b", "default", {"type": "ClusterIP", "ports": [{"port": 80}]})
        wait_for(
            lambda: (
                kube.ingress("b") == []
                and kube.ingress("d") == freed
                and "lbspeaker.io/ip-allocated-from-pool"
                not in kube.get(SERVICES, "b", "default")["metadata"].get("annotations", {})
            ),
            "b released (status and annotation), d gets its IP",
        )
    finally:
        run.stop()


def test_invalid_pool_edit_keeps_last_good_config(kube: FakeKube) -> None:
    kube.create(SERVICES, service("a"), "default")
    run = Running(kube)
    try:
        wait_for(lambda: bool(kube.ingress("a")), "IP for a")
        kube.replace_spec(IPADDRESSPOOLS, "lab", NS, {"addresses": ["192.0.2.210-192.0.2.201"]})
        wait_for(lambda: any(e[2] == "InvalidConfig" for e in kube.events), "InvalidConfig event")
        assert (
            "lbspeaker-system/lab",
            "Warning",
            "InvalidConfig",
            "parsing IPAddressPool 'lab': spec.addresses[0]: '192.0.2.210-192.0.2.201': start after end; "
            "invalid edit ignored; last good config in force",
        ) in kube.events
        kube.create(SERVICES, service("b"), "default")
        wait_for(lambda: bool(kube.ingress("b")), "IP for b from the last good config")
        assert kube.ingress("a") == ["192.0.2.200"] and kube.ingress("b") == ["192.0.2.201"]
    finally:
        run.stop()

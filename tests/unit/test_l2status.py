"""ServiceL2Status publishing: the owner's record survives another node's brief claim and guarded delete."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from lbspeaker.core.errors import NotFoundError
from lbspeaker.k8s.client import Resource
from lbspeaker.speaker import l2status
from lbspeaker.speaker.l2status import L2Record, StatusPublisher

SINCE = datetime(2026, 1, 1, tzinfo=UTC)


class FakeKube:
    """ServiceL2Status objects in a dict; Services always exist; Events counted."""

    def __init__(self) -> None:
        self.objs: dict[str, dict[str, Any]] = {}
        self.events: list[str] = []
        self.rv = 0

    def patch(self, _res: Resource, name: str, body: dict[str, Any], _ns: str, *, subresource: str) -> None:
        if name not in self.objs:
            raise NotFoundError("404")
        self.rv += 1
        self.objs[name]["status"] = body["status"]
        self.objs[name]["metadata"]["resourceVersion"] = str(self.rv)

    def create(self, _res: Resource, body: dict[str, Any], _ns: str) -> None:
        self.rv += 1
        self.objs[body["metadata"]["name"]] = {"metadata": {**body["metadata"], "resourceVersion": str(self.rv)}}

    def get(self, res: Resource, name: str, _ns: str) -> dict[str, Any]:
        if res.plural == "services":
            return {"metadata": {"name": name}}
        if name not in self.objs:
            raise NotFoundError("404")
        return self.objs[name]

    def list(self, _res: Resource, _ns: str) -> tuple[list[dict[str, Any]], str]:
        return list(self.objs.values()), str(self.rv)

    def delete(self, _res: Resource, name: str, _ns: str, *, resource_version: str) -> None:
        self.objs.pop(name, None)

    def event(self, _obj: dict[str, Any], *, reason: str, message: str, **_: Any) -> None:
        self.events.append(reason)


def _rec(node: str) -> L2Record:
    return L2Record("default", "web", node, ("192.0.2.200",), ("eth0",), SINCE)


def test_owner_rewrites_its_record_after_another_node_claimed_and_dropped_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    kube = FakeKube()
    owner = StatusPublisher(kube, node="node3", namespace="ns")  # type: ignore[arg-type]
    flapper = StatusPublisher(kube, node="node1", namespace="ns")  # type: ignore[arg-type]
    owner.publish({"default/web": _rec("node3")})
    owner.sync()
    flapper.publish({"default/web": _rec("node1")})  # a membership flap: node1 claims for a moment ...
    flapper.sync()
    flapper.publish({})  # ... and gives it back, deleting the record that names it
    flapper.sync()
    assert "default.web" not in kube.objs
    owner.sync()  # within VERIFY_S: nothing checked yet
    assert "default.web" not in kube.objs
    monkeypatch.setattr(l2status, "VERIFY_S", 0.0)
    owner.sync()
    assert kube.objs["default.web"]["status"]["node"] == "node3"


def test_verify_leaves_a_record_that_is_still_ours(monkeypatch: pytest.MonkeyPatch) -> None:
    kube = FakeKube()
    owner = StatusPublisher(kube, node="node3", namespace="ns")  # type: ignore[arg-type]
    owner.publish({"default/web": _rec("node3")})
    owner.sync()
    rv = kube.objs["default.web"]["metadata"]["resourceVersion"]
    monkeypatch.setattr(l2status, "VERIFY_S", 0.0)
    owner.sync()
    assert kube.objs["default.web"]["metadata"]["resourceVersion"] == rv  # no rewrite
    assert kube.events == ["nodeAssigned"]

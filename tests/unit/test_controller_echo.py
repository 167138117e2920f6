"""Echo suppression: the watch echo of our own write is not decided again; foreign changes are."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import pytest

from controller.controller import Controller, _expected
from controller.writer import WriteJob
from lbspeaker.core.errors import ConflictError
from lbspeaker.core.service import ANN_ALLOCATED_FROM

KEY = "default/a"
STATUS = {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1", "ipMode": "VIP"}]}}}
ANN = {"metadata": {"annotations": {ANN_ALLOCATED_FROM: "lab"}}}
JOB = WriteJob(key=KEY, name="a", namespace="default", resource_version="1")


def svc(rv: str, *, pool: str | None = None, ingress: bool = False, port: int = 80) -> dict[str, Any]:
    """Service a at rv, with our annotation and/or ingress as given."""
    return {
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {
            "name": "a",
            "namespace": "default",
            "resourceVersion": rv,
            "annotations": {"team": "x", **({ANN_ALLOCATED_FROM: pool} if pool else {})},
        },
        "spec": {"type": "LoadBalancer", "ports": [{"port": port, "protocol": "TCP"}]},
        "status": {"loadBalancer": {"ingress": STATUS["status"]["loadBalancer"]["ingress"] if ingress else []}},
    }


@pytest.fixture
def ctrl() -> Iterator[Controller]:
    c = Controller(cast(Any, object()))
    c._started = True
    c._writing[KEY] = []  # as _process does when it submits the job for svc("1")
    c._expect[KEY] = _expected(svc("1"), STATUS, ANN)
    try:
        yield c
    finally:
        c.writer.close()


def test_own_echoes_during_and_after_the_write_queue_nothing(ctrl: Controller) -> None:
    ctrl._on_service("MODIFIED", svc("2", ingress=True))  # status patch echo, before the write ended
    ctrl._write_done(JOB, ("1", "2", "3"), None)
    ctrl._on_service("MODIFIED", svc("3", ingress=True, pool="lab"))  # annotation patch echo, after
    assert len(ctrl.queue) == 0
    assert KEY not in ctrl._expect  # confirmed echoes leave no state behind but the RVs


def test_foreign_change_while_writing_is_reconciled_after_the_write(ctrl: Controller) -> None:
    ctrl._on_service("MODIFIED", svc("2", port=81))  # someone edited the Service meanwhile
    assert len(ctrl.queue) == 0  # not while our write is in flight
    ctrl._write_done(JOB, ("1", "3", "4"), None)
    assert ctrl.queue.get(timeout=0) == KEY


def test_our_final_rv_with_unexpected_content_is_reconciled(ctrl: Controller) -> None:
    ctrl._write_done(JOB, ("1", "2", "3"), None)
    ctrl._on_service("MODIFIED", svc("3", ingress=True))  # e.g. after a relist: annotation missing
    assert ctrl.queue.get(timeout=0) == KEY


def test_failed_write_retries_and_forgets_the_expectation(ctrl: Controller) -> None:
    ctrl._write_done(JOB, ("1",), ConflictError("conflict", code=409))
    assert KEY not in ctrl._writing and KEY not in ctrl._expect
    ctrl._on_service("MODIFIED", svc("2", ingress=True))
    assert ctrl.queue.get(timeout=0) == KEY


def test_deletion_while_writing_is_queued_at_once(ctrl: Controller) -> None:
    ctrl._on_service("DELETED", svc("2"))
    assert ctrl.queue.get(timeout=0) == KEY

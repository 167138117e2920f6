"""Writes reconcile results to the API from a few threads, so API latency does not bound throughput.

Invariants:
- At most one write job per Service key is in flight; a key decided again meanwhile is handed
  back (``requeue``) when that job ends, so writes for one Service never reorder.
- At most 4 jobs per writer thread are queued: the worker blocks instead of piling up jobs.
- Events are sent after the job's writes succeeded, on their own thread; they never delay a
  status write, a failed write sends none, and beyond a backlog of MAX_QUEUED_EVENTS they are
  dropped and counted (as client-go does) so memory stays bounded.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from controller.reconciler import EventSpec
from lbspeaker.core.errors import ApiError
from lbspeaker.k8s.client import SERVICES, Kube

log = logging.getLogger(__name__)

COMPONENT = "lbspeaker-controller"
MAX_QUEUED_EVENTS = 5000
"""Like client-go's event broadcaster, drop (and count) events beyond this backlog."""


@dataclass(frozen=True)
class WriteJob:
    """The patches and events for one Service."""

    key: str
    name: str
    namespace: str
    resource_version: str
    status: dict[str, Any] | None = None
    annotation: dict[str, Any] | None = None
    events: tuple[EventSpec, ...] = ()
    ref: dict[str, Any] = field(default_factory=dict)


Done = Callable[[WriteJob, tuple[str, ...], ApiError | None], None]
"""Called with the job, the resourceVersions before and after each write (in order), the error."""


class Writer:
    """A small pool of API writers with per-key serialisation."""

    def __init__(self, kube: Kube, *, on_done: Done, requeue: Callable[[str], None], workers: int = 4) -> None:
        self.kube = kube
        self._on_done = on_done
        self._requeue = requeue
        self._lock = threading.Lock()
        self._inflight: set[str] = set()
        self._dirty: set[str] = set()
        self._slots = threading.BoundedSemaphore(workers * 4)  # backpressure: the worker waits, memory stays flat
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="writer")
        self._events = ThreadPoolExecutor(1, thread_name_prefix="events")
        self._events_queued = 0
        self.events_dropped = 0

    def claim(self, key: str) -> bool:
        """True when no job for key is in flight; otherwise remember to requeue key later."""
        with self._lock:
            if key in self._inflight:
                self._dirty.add(key)
                return False
            return True

    def submit(self, job: WriteJob) -> None:
        """Run the job's writes (if any) in the pool, then send its events."""
        if job.status is None and job.annotation is None:
            self._send_events(job)
            return
        self._slots.acquire()
        with self._lock:
            self._inflight.add(job.key)
        self._pool.submit(self._run, job)

    def _run(self, job: WriteJob) -> None:
        rvs = [job.resource_version]
        err: ApiError | None = None
        try:
            if job.status is not None:
                out = self.kube.patch(SERVICES, job.name, job.status, namespace=job.namespace, subresource="status")
                rvs.append(str((out.get("metadata") or {}).get("resourceVersion") or ""))
            if job.annotation is not None:
                out = self.kube.patch(SERVICES, job.name, job.annotation, namespace=job.namespace)
                rvs.append(str((out.get("metadata") or {}).get("resourceVersion") or ""))
        except ApiError as e:
            err = e
        except Exception as e:  # a bug must not leave the key in flight forever
            log.exception("write_failed key=%s", job.key)
            err = ApiError(f"writing service '{job.key}': {e}")
        try:
            self._on_done(job, tuple(rvs), err)
        finally:
            with self._lock:
                self._inflight.discard(job.key)
                again = job.key in self._dirty
                self._dirty.discard(job.key)
            self._slots.release()
            if again:
                self._requeue(job.key)
        if err is None:
            self._send_events(job)

    def _send_events(self, job: WriteJob) -> None:
        for ev in job.events:
            self._events.submit(
                self.kube.event,
                job.ref,
                reason=ev.reason,
                message=ev.message,
                type=ev.type,
                component=COMPONENT,
            )

    def idle(self) -> bool:
        """True when no write is in flight."""
        with self._lock:
            return not self._inflight

    def close(self) -> None:
        """Finish in-flight writes; drop events not yet sent."""
        self._pool.shutdown(wait=True)
        self._events.shutdown(wait=True, cancel_futures=True)

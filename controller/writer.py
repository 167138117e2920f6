"""Writes reconcile results to the API from a few threads, so API latency does not bound throughput.

Invariants:
- At most one write job per Service key is in flight; a key decided again meanwhile is handed
  back (``requeue``) when that job ends, so writes for one Service never reorder.
- At most 4 jobs per writer thread are queued: the worker blocks instead of piling up jobs.
- Plain threads on SimpleQueues, not ThreadPoolExecutor: a Future per write and per event cost
  the controller about a sixth of its CPU at 10k Services.
- Events are sent after the job's writes succeeded, on their own thread; they never delay a
  status write, and a failed write sends none. The event queue is not bounded: every
  IPAllocated / AllocationFailed is sent, even in a 10k-Service burst (about 1 kB each while queued).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from controller.reconciler import EventSpec
from lbspeaker.core.errors import ApiError
from lbspeaker.k8s.client import SERVICES, Kube

log = logging.getLogger(__name__)

COMPONENT = "lbspeaker-controller"


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
        self._workers = workers
        self._jobs: queue.SimpleQueue[WriteJob | None] = queue.SimpleQueue()
        self._events: queue.SimpleQueue[tuple[dict[str, Any], EventSpec] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._closing = False
        self._closed = False
        self._events_queued = 0

    def _start(self) -> None:
        """Start the writer and event threads on first use (daemons: close() joins them)."""
        with self._lock:
            if self._threads:
                return
            for i in range(self._workers):
                self._threads.append(threading.Thread(target=self._write_loop, name=f"writer_{i}", daemon=True))
            self._threads.append(threading.Thread(target=self._event_loop, name="events_0", daemon=True))
        for t in self._threads:
            t.start()

    def _write_loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                self._run(job)
            except Exception:  # _run handles API errors; anything else must not kill the thread
                log.exception("writer_failed key=%s", job.key)

    def _event_loop(self) -> None:
        while (item := self._events.get()) is not None:
            if self._closing:
                continue  # close() drops events not yet sent
            ref, ev = item
            try:
                self.kube.event(ref, reason=ev.reason, message=ev.message, type=ev.type, component=COMPONENT)
            except Exception:
                log.exception("event_failed reason=%s", ev.reason)

    def claim(self, key: str) -> bool:
        """True when no job for key is in flight; otherwise remember to requeue key later."""
        with self._lock:
            if key in self._inflight:
                self._dirty.add(key)
                return False
            return True

    def submit(self, job: WriteJob) -> None:
        """Run the job's writes (if any) in the pool, then send its events."""
        if self._closed:
            raise RuntimeError("writer: submit after close")
        if not self._threads:
            self._start()
        if job.status is None and job.annotation is None:
            self._send_events(job)
            return
        self._slots.acquire()
        with self._lock:
            self._inflight.add(job.key)
        self._jobs.put(job)

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
            self._events.put((job.ref, ev))

    def idle(self) -> bool:
        """True when no write is in flight."""
        with self._lock:
            return not self._inflight

    def close(self) -> None:
        """Finish in-flight and queued writes; drop events not yet sent."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        writers = threads[:-1]
        for _ in writers:
            self._jobs.put(None)
        for t in writers:
            t.join()
        self._closing = True
        self._events.put(None)
        for t in threads[-1:]:
            t.join()

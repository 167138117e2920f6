"""Lease-based leader election (coordination.k8s.io/v1), the client-go algorithm.

Invariants: at most one holder acts at a time as long as clocks advance at the same rate — a
candidate only takes over a Lease whose record it has seen unchanged for a whole lease duration
(measured on its own monotonic clock, never by comparing timestamps across machines); every
write carries the resourceVersion read, so two candidates racing for an expired Lease cannot
both win; a leader that cannot renew within ``renew_deadline`` stops leading (callback) before
its Lease can expire for the others.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from lbspeaker.core.errors import ApiError, ConflictError, NotFoundError
from lbspeaker.k8s.client import JSON, LEASES, Kube

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaderSettings:
    """Timings of the election (client-go defaults)."""

    name: str
    """Lease name."""
    namespace: str
    """Lease namespace."""
    identity: str
    """This candidate's unique identity (pod name + random suffix)."""
    lease_duration: float = 15.0
    """How long a silent holder keeps the Lease for the others."""
    renew_deadline: float = 10.0
    """How long the leader keeps trying to renew before it gives up leading."""
    retry_period: float = 2.0
    """Pause between attempts."""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Runs the election in a thread; calls on_start / on_stop when leadership changes."""

    def __init__(self, kube: Kube, settings: LeaderSettings, *, on_start: Callable[[], None],
                 on_stop: Callable[[], None]) -> None:
        self.kube = kube
        self.s = settings
        self.on_start = on_start
        self.on_stop = on_stop
        self.leading = False
        self._observed: tuple[str, str] | None = None  # (holder, renewTime) last seen
        self._observed_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)

    def start(self) -> None:
        """Start campaigning."""
        self._thread.start()

    def stop(self) -> None:
        """Stop campaigning; a leader releases the Lease so a standby takes over at once."""
        self._stop.set()
        self._thread.join(timeout=5)
        if self.leading:
            self._release()

    def _spec(self, *, transitions: int, acquire: str | None = None) -> JSON:
        spec: JSON = {"holderIdentity": self.s.identity, "leaseDurationSeconds": int(self.s.lease_duration),
                      "renewTime": _now(), "leaseTransitions": transitions}
        if acquire:
            spec["acquireTime"] = acquire
        return spec

    def try_acquire_or_renew(self) -> bool:
        """One attempt; True when this candidate holds the Lease afterwards."""
        try:
            lease = self.kube.get(LEASES, self.s.name, self.s.namespace)
        except NotFoundError:
            body = {"metadata": {"name": self.s.name, "namespace": self.s.namespace},
                    "spec": self._spec(transitions=0, acquire=_now())}
            try:
                self.kube.create(LEASES, body, namespace=self.s.namespace)
                return True
            except ApiError:
                return False
        spec = lease.get("spec") or {}
        holder = str(spec.get("holderIdentity") or "")
        record = (holder, str(spec.get("renewTime") or ""))
        if record != self._observed:
            self._observed, self._observed_at = record, time.monotonic()
        expired = time.monotonic() - self._observed_at >= float(spec.get("leaseDurationSeconds")
                                                                 or self.s.lease_duration)
        if holder and holder != self.s.identity and not expired:
            return False
        transitions = int(spec.get("leaseTransitions") or 0)
        if holder != self.s.identity:
            new_spec = self._spec(transitions=transitions + 1, acquire=_now())
        else:
            new_spec = {**spec, **self._spec(transitions=transitions)}
        body = {"metadata": {**lease["metadata"]}, "spec": new_spec}
        try:
            out = self.kube.replace(LEASES, self.s.name, body, self.s.namespace)
        except (ConflictError, ApiError):
            return False
        o = out.get("spec") or {}
        self._observed = (str(o.get("holderIdentity") or ""), str(o.get("renewTime") or ""))
        self._observed_at = time.monotonic()
        return True

    def _release(self) -> None:
        try:
            lease = self.kube.get(LEASES, self.s.name, self.s.namespace)
            if (lease.get("spec") or {}).get("holderIdentity") == self.s.identity:
                spec = {**lease["spec"], "holderIdentity": "", "leaseDurationSeconds": 1, "renewTime": _now()}
                self.kube.replace(LEASES, self.s.name, {"metadata": lease["metadata"], "spec": spec},
                                  self.s.namespace)
        except ApiError as err:
            log.warning("lease_release_failed lease=%s/%s err=%s", self.s.namespace, self.s.name, err)

    def _run(self) -> None:
        last_renew = 0.0
        while not self._stop.is_set():
            ok = self.try_acquire_or_renew()
            now = time.monotonic()
            if ok:
                last_renew = now
                if not self.leading:
                    self.leading = True
                    log.info("leader_elected lease=%s/%s identity=%s", self.s.namespace, self.s.name,
                             self.s.identity)
                    self.on_start()
            elif self.leading and now - last_renew > self.s.renew_deadline:
                self.leading = False
                log.warning("leader_lost lease=%s/%s identity=%s", self.s.namespace, self.s.name,
                            self.s.identity)
                self.on_stop()
            self._stop.wait(self.s.retry_period / (2.0 if self.leading else 1.0))

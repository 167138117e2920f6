"""Publishes where each Service's L2 announcement lives (ServiceL2Status objects + Events).

The API may be down exactly when ownership changes (that is when failover matters most), so
writes are desired state, retried in a background thread until they land; announcing never
waits for them. A speaker only deletes a record that still names itself (delete guarded by the
resourceVersion it read), so it never erases the record of the node that took over.

Warnings are deduplicated: the same (Service, reason, message) becomes at most one Event per
``WARN_HOLDOFF_S``, so an ongoing conflict (a duplicate announcer claims the IP every second)
is one Event, not an Event storm; the metrics still count every occurrence.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from lbspeaker.core.errors import ApiError, NotFoundError
from lbspeaker.k8s.client import JSON, SERVICE_L2_STATUSES, SERVICES, Kube

log = logging.getLogger(__name__)

WARN_HOLDOFF_S = 60.0
"""Shortest time between two identical warning Events."""
VERIFY_S = 5.0
"""How often the records this node owns are checked against the API and rewritten if another
node overwrote or deleted them (after a membership flap two nodes both wrote, and the loser's
guarded delete then removes the record the owner believes is written)."""


@dataclass(frozen=True)
class L2Record:
    """This node announces one Service's IPs."""

    namespace: str
    name: str
    node: str
    ips: tuple[str, ...]
    interfaces: tuple[str, ...]
    since: datetime

    @property
    def object_name(self) -> str:
        """Name of the ServiceL2Status object."""
        return f"{self.namespace}.{self.name}"

    def status(self) -> JSON:
        """The status body."""
        return {"serviceNamespace": self.namespace, "serviceName": self.name, "node": self.node,
                "ips": list(self.ips), "interfaces": list(self.interfaces),
                "since": self.since.strftime("%Y-%m-%dT%H:%M:%SZ")}


def now() -> datetime:
    """The current UTC time."""
    return datetime.now(UTC)


class StatusPublisher:
    """Keeps ServiceL2Status objects in line with what this node announces."""

    def __init__(self, kube: Kube, *, node: str, namespace: str, retry: float = 2.0,
                 warn_holdoff: float = WARN_HOLDOFF_S) -> None:
        self.kube = kube
        self.node = node
        self.namespace = namespace
        self.retry = retry
        self.warn_holdoff = warn_holdoff
        self._warned: dict[tuple[str, str, str], float] = {}
        self._want: dict[str, L2Record] = {}
        self._warnings: list[tuple[str, str, str]] = []
        self._written: dict[str, L2Record] = {}
        self._verified = 0.0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="l2status", daemon=True)

    def start(self) -> None:
        """Start the writer thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the writer thread (records stay: the next owner overwrites them)."""
        self._stop.set()
        self._wake.set()

    def publish(self, records: dict[str, L2Record]) -> None:
        """Set the records this node should own (keyed by service key)."""
        with self._lock:
            self._want = dict(records)
        self._wake.set()

    def warn(self, service_key: str, *, reason: str, message: str) -> None:
        """Queue a Warning Event on a Service (sent from the writer thread); repeats are dropped."""
        key = (service_key, reason, message)
        now = time.monotonic()
        with self._lock:
            last = self._warned.get(key)
            if last is not None and now - last < self.warn_holdoff:
                return
            if len(self._warned) >= 1000:
                self._warned = {k: t for k, t in self._warned.items() if now - t < self.warn_holdoff}
            self._warned[key] = now
            if len(self._warnings) < 100:
                self._warnings.append(key)
        self._wake.set()

    def _send_warnings(self) -> None:
        with self._lock:
            pending, self._warnings = self._warnings, []
        for key, reason, message in pending:
            ns, name = key.split("/", 1)
            try:
                svc = self.kube.get(SERVICES, name, ns)
            except NotFoundError:
                continue
            self.kube.event(svc, reason=reason, message=message, type="Warning",
                            component="lbspeaker-speaker")

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.retry)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self._send_warnings()
                self.sync()
            except ApiError as err:
                log.info("l2status_sync_deferred node=%s err=%s", self.node, err)

    def sync(self) -> None:
        """Write what changed (and, every VERIFY_S, what the API lost); raises ApiError to retry later."""
        with self._lock:
            want = dict(self._want)
        if want and time.monotonic() - self._verified >= VERIFY_S:
            self._verify(want)
        for key, rec in want.items():
            if self._written.get(key) != rec:
                self._write(rec, first=self._written.get(key) is None)
                self._written[key] = rec
        for key in [k for k in self._written if k not in want]:
            self._drop(self._written[key])
            del self._written[key]

    def _verify(self, want: dict[str, L2Record]) -> None:
        """Forget written records the API no longer holds as this node's, so sync rewrites them."""
        items, _ = self.kube.list(SERVICE_L2_STATUSES, self.namespace)
        held = {str((o.get("metadata") or {}).get("name")): (o.get("status") or {}) for o in items}
        for key, rec in want.items():
            st = held.get(rec.object_name)
            if key in self._written and (st is None or st.get("node") != self.node
                                         or list(st.get("ips") or []) != list(rec.ips)):
                log.info("l2status_lost service=%s node=%s action=rewrite", key, self.node)
                del self._written[key]
        self._verified = time.monotonic()

    def _write(self, rec: L2Record, *, first: bool) -> None:
        name = rec.object_name
        try:
            self.kube.patch(SERVICE_L2_STATUSES, name, {"status": rec.status()}, self.namespace,
                            subresource="status")
        except NotFoundError:
            self.kube.create(SERVICE_L2_STATUSES, {"metadata": {
                "name": name, "namespace": self.namespace,
                "labels": {"lbspeaker.io/service-namespace": rec.namespace,
                           "lbspeaker.io/service-name": rec.name}}, "spec": {}}, self.namespace)
            self.kube.patch(SERVICE_L2_STATUSES, name, {"status": rec.status()}, self.namespace,
                            subresource="status")
        if first:
            try:
                svc = self.kube.get(SERVICES, rec.name, rec.namespace)
            except NotFoundError:
                return
            self.kube.event(svc, reason="nodeAssigned", component="lbspeaker-speaker",
                            message=f"announcing {', '.join(rec.ips)} from node {rec.node} "
                                    f"interface {', '.join(rec.interfaces)}")
        log.info("l2status_written service=%s/%s node=%s ips=%s", rec.namespace, rec.name, rec.node,
                 ",".join(rec.ips))

    def _drop(self, rec: L2Record) -> None:
        try:
            cur = self.kube.get(SERVICE_L2_STATUSES, rec.object_name, self.namespace)
        except NotFoundError:
            return
        if (cur.get("status") or {}).get("node") != self.node:
            return  # another node took over and owns the record now
        rv = str((cur.get("metadata") or {}).get("resourceVersion") or "")
        try:
            self.kube.delete(SERVICE_L2_STATUSES, rec.object_name, self.namespace, resource_version=rv)
        except ApiError as err:
            if err.code != 409:
                raise

"""The controller loop: informers feed a key queue, one worker reconciles, results go to the API.

Invariants:
- Nothing is allocated before the Service, pool, L2Advertisement and Namespace caches synced
  and every existing ``status.loadBalancer.ingress`` was adopted (a restart moves no IP).
- One worker thread owns the allocator; informer threads only enqueue keys.
- The watch echo of our own write is not decided again: while a write is in flight the events
  for its key are collected, and only one with a resourceVersion we did not write, or whose
  spec/labels/annotations/ingress differ from what the write should have produced, re-queues it.
- Config goes through the shared LastGood policy (lbspeaker.core.lastgood): an invalid edit keeps
  that object's last valid version in force; while an object with no valid version exists
  (invalid at start), addresses outside every pool are kept, not replaced. The outcome is
  published as the ``controller`` ConfigurationState, Events and config gauges.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

from controller.reconciler import Decision, decide, is_ours
from controller.workqueue import WorkQueue
from controller.writer import WriteJob, Writer
from lbspeaker.core.allocator import Allocator, PoolUsage
from lbspeaker.core.config import L2_KIND, POOL_KIND, Config
from lbspeaker.core.configstate import STALE_NOTE
from lbspeaker.core.errors import ApiError, ConflictError, NotFoundError
from lbspeaker.core.lastgood import LastGood, Outcome
from lbspeaker.core.loader import RawConfig
from lbspeaker.core.service import ServiceRef, parse_service
from lbspeaker.k8s.client import (
    BFDPROFILES,
    BGPADVERTISEMENTS,
    BGPPEERS,
    COMMUNITIES,
    IPADDRESSPOOLS,
    L2ADVERTISEMENTS,
    NAMESPACES,
    SERVICES,
    Kube,
    Resource,
)
from lbspeaker.k8s.informer import Informer, object_key
from lbspeaker.runtime.configstate import ConfigReporter

log = logging.getLogger(__name__)

CONFIG_KEY = "\x00config"
COMPONENT = "lbspeaker-controller"
INT64_MAX = 2**63 - 1


def _svc_ref(svc: ServiceRef) -> dict[str, Any]:
    return {
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {
            "name": svc.name,
            "namespace": svc.namespace,
            "uid": svc.uid,
            "resourceVersion": svc.resource_version,
        },
    }


def _rv(obj: dict[str, Any] | None) -> str:
    return str(((obj or {}).get("metadata") or {}).get("resourceVersion") or "")


def _ingress(status: Any) -> Any:
    return ((status or {}).get("loadBalancer") or {}).get("ingress") or []


def _fingerprint(obj: dict[str, Any]) -> tuple[Any, ...]:
    """The parts of a Service a decision depends on or our writes set (cheap dict compares)."""
    meta = obj.get("metadata") or {}
    return (obj.get("spec"), meta.get("labels") or {}, meta.get("annotations") or {}, _ingress(obj.get("status")))


def _expected(obj: dict[str, Any], status: dict[str, Any] | None, ann: dict[str, Any] | None) -> tuple[Any, ...]:
    """The fingerprint obj should have once the merge patches status and ann were applied."""
    spec, labels, annotations, ingress = _fingerprint(obj)
    if status is not None and "loadBalancer" in (status.get("status") or {}):
        ingress = _ingress(status["status"])
    if ann is not None:
        annotations = dict(annotations)
        for k, v in ((ann.get("metadata") or {}).get("annotations") or {}).items():
            if v is None:
                annotations.pop(k, None)
            else:
                annotations[k] = v
    return spec, labels, annotations, ingress


class Controller:
    """Allocates pool addresses to LoadBalancer Services through the Kubernetes API."""

    def __init__(
        self,
        kube: Kube,
        *,
        namespace: str = "lbspeaker-system",
        lb_class: str | None = None,
        status_interval: float = 1.0,
        writers: int = 5,
        bgp_caches: bool = False,
    ) -> None:
        # 4 watches + `writers` + 1 event sender + the worker fit the client's pool of 10 connections;
        # beyond it urllib3 discards connections and every extra request opens a new one.
        self.kube = kube
        self.namespace = namespace
        self.lb_class = lb_class
        self.status_interval = status_interval
        self.allocator = Allocator()
        self.queue = WorkQueue()
        self.ready = threading.Event()
        self.settled = threading.Event()
        self.config_ok = False
        """True when every live config object has a version in force (else foreign IPs are kept)."""
        self.last_good = LastGood()
        self.config_outcome: Outcome | None = None
        self.reporter = ConfigReporter(kube, namespace=namespace, component="controller")
        self._seeded = False
        self._started = False
        self._failures: dict[str, int] = {}
        self._last_failure: dict[str, str] = {}
        self._partial: set[str] = set()
        """Keys of dual-stack Services holding one family of two (MetalLB retries them too)."""
        self._pending: dict[str, tuple[str, ...]] = {}
        """Per key, the resourceVersions around our last write (the last one is the result)."""
        self._expect: dict[str, tuple[Any, ...]] = {}
        """Per key, the fingerprint our last (or in-flight) write should produce."""
        self._writing: dict[str, list[dict[str, Any]]] = {}
        """Per key with a write in flight, the objects the watch delivered meanwhile."""
        self._lock = threading.Lock()
        self._config_errors: set[str] = set()
        self._stats_dirty = True
        self._stats_written: dict[str, dict[str, int]] = {}
        self._stats_at = 0.0
        self.usage: dict[str, dict[int, PoolUsage]] = {}
        """Per pool and IP version, the usage last computed by the worker (read by metrics)."""
        self.services_per_pool: dict[str, int] = {}
        self.decisions = 0
        """How many times a Service was decided (echo suppression keeps this near one per change)."""
        self.services = Informer(kube, SERVICES, on_event=self._on_service)
        self.pools = Informer(kube, IPADDRESSPOOLS, namespace, on_event=self._on_config)
        self.l2ads = Informer(kube, L2ADVERTISEMENTS, namespace, on_event=self._on_config)
        self.namespaces = Informer(kube, NAMESPACES, on_event=self._on_config)
        # BGP kinds (bgp_caches): only the admission webhook reads them, so that a BGPAdvertisement
        # naming a BGPPeer or Community is judged against the live ones
        self.bgp = {res.kind: Informer(kube, res, namespace) for res in BGP_RESOURCES if bgp_caches}
        self._informers = (self.services, self.pools, self.l2ads, self.namespaces, *self.bgp.values())
        self._informers_started = False
        self.writer = Writer(kube, on_done=self._write_done, requeue=self.queue.add, workers=writers)

    # -- informer callbacks (informer threads) --------------------------------------------

    def _on_service(self, kind: str, obj: dict[str, Any]) -> None:
        if not self._started:
            return
        key = object_key(obj)
        if kind != "DELETED":
            with self._lock:
                seen = self._writing.get(key)
                if seen is not None:
                    seen.append(obj)  # judged when the write ended: our echo or a foreign change
                    return
                if self._is_echo(key, obj, self._pending.get(key, ())):
                    return  # the echo of our own write: nothing new
        self.queue.add(key)

    def _is_echo(self, key: str, obj: dict[str, Any], rvs: tuple[str, ...]) -> bool:
        """True when obj is a state our last write for key produced (call with the lock held)."""
        rv = _rv(obj)
        if not rvs or rv not in rvs:
            return False
        # the final state must look as the write intended (a relist may have folded in a foreign
        # change); intermediate states are superseded by it
        if rv != rvs[-1]:
            return True
        if _fingerprint(obj) != self._expect.get(key):
            return False
        del self._expect[key]  # confirmed: keep memory flat (a repeat of this state is decided again)
        return True

    def _on_config(self, _kind: str, _obj: dict[str, Any]) -> None:
        if self._started:
            self.queue.add(CONFIG_KEY)

    # -- start-up -------------------------------------------------------------------------

    def start_informers(self, stop: threading.Event) -> bool:
        """Start the informers (unless started already) and wait until all synced (False if stopped first)."""
        if not self._informers_started:
            self._informers_started = True
            for inf in self._informers:
                inf.start()
        for inf in self._informers:
            while not inf.wait_synced(timeout=1.0):
                if stop.is_set():
                    return False
                log.info("waiting_for_sync resource=%s", inf.res.plural)
        return True

    def rebuild(self) -> int:
        """Load the config and adopt every existing assignment; returns how many were adopted."""
        self._started = True  # from now on events queue keys; the worker starts after the adoption
        self._load_config()
        objs = sorted(
            self.services.items(),
            key=lambda o: (str((o.get("metadata") or {}).get("creationTimestamp") or ""), object_key(o)),
        )
        adopted = 0
        for obj in objs:
            svc = parse_service(obj)
            if svc.is_load_balancer and is_ours(svc, self.lb_class) and svc.ingress_ips:
                if self.allocator.adopt(svc):
                    adopted += 1
                else:
                    log.warning("adopt_conflict key=%s ips=%s", svc.key, ",".join(map(str, svc.ingress_ips)))
        for obj in objs:
            self.queue.add(object_key(obj))
        self.ready.set()
        log.info("rebuilt services=%d adopted=%d config_ok=%s", len(objs), adopted, self.config_ok)
        return adopted

    def run(self, stop: threading.Event) -> None:
        """Sync, rebuild, then reconcile until stop is set."""
        self.reporter.start()
        try:
            if not self.start_informers(stop):
                return
            self.rebuild()
            while not stop.is_set():
                key = self.queue.get(timeout=0.2)
                if key is not None:
                    self._process(key)
                elif not self.settled.is_set() and self.writer.idle() and not len(self.queue):
                    self.settled.set()
                    log.info(
                        "initial_reconcile_done services=%d assignments=%d decisions=%d",
                        len(self.services.items()),
                        len(self.allocator.assignments()),
                        self.decisions,
                    )
                if key is None or time.monotonic() - self._stats_at > 5 * self.status_interval:
                    self._write_pool_status()
        finally:
            self.reporter.stop()
            self.writer.close()
            for inf in self._informers:
                inf.stop()

    def raw_config(self) -> RawConfig | None:
        """The live config objects of the caches, for the admission webhook (None until synced)."""
        if not all(inf.synced for inf in (self.pools, self.l2ads, self.namespaces, *self.bgp.values())):
            return None
        objs = {"IPAddressPool": self.pools.items(), "L2Advertisement": self.l2ads.items()}
        objs.update({kind: inf.items() for kind, inf in self.bgp.items()})
        return RawConfig.of(objs, namespaces=self.namespaces.items())

    # -- config ---------------------------------------------------------------------------

    def _raw(self) -> RawConfig:
        pools = self.pools.items()
        # Namespace labels matter only to namespaceSelectors; leaving them out otherwise keeps
        # namespace churn from re-queueing every Service.
        uses_ns = any(
            ((p.get("spec") or {}).get("serviceAllocation") or {}).get("namespaceSelectors")
            for p in pools
            if isinstance(p.get("spec"), dict)
        )
        return RawConfig.of(
            {POOL_KIND: pools, L2_KIND: self.l2ads.items()},
            namespaces=self.namespaces.items() if uses_ns else (),
        )

    def _report_config_errors(self, outcome: Outcome) -> None:
        seen = set()
        for r in outcome.rejections:
            err = r.error
            text = f"{err}; {STALE_NOTE}" if r.in_force else f"{err}; object left out"
            seen.add(text)
            if text in self._config_errors:
                continue
            log.warning(
                "config_invalid kind=%s name=%s field=%s cause=%s in_force=%s",
                err.kind, err.name, err.field, err.cause, "last_good" if r.in_force else "none",
            )
            res = IPADDRESSPOOLS if err.kind == POOL_KIND else L2ADVERTISEMENTS
            ref = {
                "kind": err.kind,
                "apiVersion": res.api_version,
                "metadata": {"name": r.key[1], "namespace": self.namespace},
            }
            obj = (self.pools if res is IPADDRESSPOOLS else self.l2ads).get(f"{self.namespace}/{r.key[1]}")
            if obj is not None:
                ref["metadata"] = dict(obj.get("metadata") or {}, namespace=self.namespace)
            self.kube.event(ref, reason="InvalidConfig", message=text, type="Warning", component=COMPONENT)
        self._config_errors = seen

    def _load_config(self) -> bool:
        """Load the config through the shared last-good policy; True when the allocator's config changed."""
        raw = self._raw()
        if not self._seeded:
            self._seeded = True
            self.last_good.seed(self.reporter.seed(raw))
        outcome = self.last_good.update(raw)
        self.config_outcome = outcome
        self._report_config_errors(outcome)
        self.reporter.report("config", outcome, self.last_good.good)
        for w in outcome.loaded.warnings:
            log.info("config_warning kind=%s name=%s field=%s cause=%s", w.kind, w.name, w.field, w.cause)
        new: Config = outcome.loaded.config.l2
        changed = new != self.allocator.config or self.config_ok != outcome.complete
        self.config_ok = outcome.complete
        if changed:
            self.allocator.set_config(new)
            self._stats_dirty = True
            log.info(
                "config_loaded pools=%d l2advertisements=%d complete=%s stale=%s",
                len(new.pools),
                len(new.l2_advertisements),
                outcome.complete,
                outcome.stale,
            )
        return changed

    # -- reconcile ------------------------------------------------------------------------

    def _process(self, key: str) -> None:
        if key == CONFIG_KEY:
            if self._load_config():
                for o in self.services.items():
                    self.queue.add(object_key(o))
            return
        if not self.writer.claim(key):
            return  # a write for this key is in flight; the writer re-queues the key after it
        obj = self.services.get(key)
        with self._lock:
            rvs = self._pending.get(key, ())
            if obj is not None and _rv(obj) in rvs[:-1]:
                stale = True  # the cache has not seen our last write yet: decide once it has
            else:
                stale = False
                self._pending.pop(key, None)
                self._expect.pop(key, None)
        if stale:
            self.queue.add_after(key, 0.05)
            return
        svc = parse_service(obj) if obj is not None else None
        before = self.allocator.assignment(key)
        self.decisions += 1
        decision = decide(svc, key, self.allocator, lb_class=self.lb_class, may_replace=self.config_ok)
        self._stats_dirty = True
        after = self.allocator.assignment(key)
        if decision.outcome is not None and decision.outcome.partial:
            self._partial.add(key)
        else:
            self._partial.discard(key)
        if before is not None and (after is None or set(before.ips) - set(after.ips)):
            # freed addresses: retry Services that found none, and those missing a family
            for waiting in [*self._last_failure, *self._partial]:
                if waiting != key:
                    self.queue.add(waiting)
        if svc is None:
            self._last_failure.pop(key, None)
            return
        conditions = ((obj or {}).get("status") or {}).get("conditions") or []
        job = self._job(svc, decision, conditions if isinstance(conditions, list) else [])
        if obj is not None and (job.status is not None or job.annotation is not None):
            with self._lock:
                self._writing[key] = []
                self._expect[key] = _expected(obj, job.status, job.annotation)
        self.writer.submit(job)

    def _job(self, svc: ServiceRef, d: Decision, conditions: list[dict[str, Any]]) -> WriteJob:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        status = d.status_patch(svc, conditions, now=now)
        ann = d.annotation_patch(svc)
        out = d.outcome
        if out is not None and out.ok:
            self._last_failure.pop(svc.key, None)
            if status is not None:
                log.info(
                    "ip_allocated key=%s ips=%s pool=%s reason=%s",
                    svc.key,
                    ",".join(map(str, out.ips)),
                    out.pool,
                    out.reason.value,
                )
        elif out is not None:
            log.warning("allocation_failed key=%s reason=%s message=%s", svc.key, out.reason.value, out.message)
        elif status is not None:
            log.info("ip_released key=%s type=%s", svc.key, svc.type)
        events = []
        for ev in d.events:
            if ev.reason == "AllocationFailed":
                if self._last_failure.get(svc.key) == ev.message:
                    continue
                self._last_failure[svc.key] = ev.message
            events.append(ev)
        return WriteJob(
            key=svc.key,
            name=svc.name,
            namespace=svc.namespace,
            resource_version=svc.resource_version,
            status=status,
            annotation=ann,
            events=tuple(events),
            ref=_svc_ref(svc),
        )

    def _write_done(self, job: WriteJob, rvs: tuple[str, ...], err: ApiError | None) -> None:
        """Called from a writer thread when a job ended."""
        with self._lock:
            seen = self._writing.pop(job.key, [])
            if err is None:
                self._pending[job.key] = rvs
                self._failures.pop(job.key, None)
                if not all(self._is_echo(job.key, o, rvs) for o in seen):
                    self.queue.add(job.key)  # a foreign change arrived while we wrote
                return
            self._expect.pop(job.key, None)
            if isinstance(err, NotFoundError):
                self._failures.pop(job.key, None)
                if seen:
                    self.queue.add(job.key)
                return
            n = self._failures.get(job.key, 0) + 1
            self._failures[job.key] = n
        delay = min(0.05 * 2 ** min(n, 10), 5.0)
        kind = "conflict" if isinstance(err, ConflictError) else "api_error"
        log.warning("reconcile_failed key=%s cause=%s err=%s retry_in=%.2fs", job.key, kind, err, delay)
        self._last_failure.pop(job.key, None)
        self.queue.add_after(job.key, delay)

    # -- pool status ----------------------------------------------------------------------

    def pool_status(self) -> dict[str, dict[str, int]]:
        """The status counts per pool (capped at int64), as last computed by the worker."""
        return {name: status_counts(fams) for name, fams in self.usage.items()}

    def _write_pool_status(self) -> None:
        now = time.monotonic()
        if not self._stats_dirty or now - self._stats_at < self.status_interval:
            return
        self._stats_at, self._stats_dirty = now, False
        self.usage = self.allocator.usage()
        per_pool: dict[str, int] = dict.fromkeys(self.usage, 0)
        for a in self.allocator.assignments():
            pool = self.allocator.pool_of(a.ips[0]) if a.ips else None
            if pool is not None:
                per_pool[pool.name] = per_pool.get(pool.name, 0) + 1
        self.services_per_pool = per_pool
        for name, counts in self.pool_status().items():
            if self._stats_written.get(name) == counts:
                continue
            try:
                self.kube.patch(
                    IPADDRESSPOOLS, name, {"status": counts}, namespace=self.namespace, subresource="status"
                )
                self._stats_written[name] = counts
            except ApiError as err:
                log.warning("pool_status_failed pool=%s err=%s", name, err)
                self._stats_dirty = True


def status_counts(fams: dict[int, PoolUsage]) -> dict[str, int]:
    """IPAddressPool status fields from per-family usage; IPv6 counts are capped at int64."""
    v4, v6 = fams.get(4), fams.get(6)
    return {
        "assignedIPv4": min(v4.assigned, INT64_MAX) if v4 else 0,
        "availableIPv4": min(v4.available, INT64_MAX) if v4 else 0,
        "assignedIPv6": min(v6.assigned, INT64_MAX) if v6 else 0,
        "availableIPv6": min(v6.available, INT64_MAX) if v6 else 0,
    }


BGP_RESOURCES = (BGPPEERS, BGPADVERTISEMENTS, BFDPROFILES, COMMUNITIES)


def resources() -> tuple[Resource, ...]:
    """The API resources the controller reads or writes (for RBAC and tests)."""
    return (SERVICES, IPADDRESSPOOLS, L2ADVERTISEMENTS, NAMESPACES, *BGP_RESOURCES)

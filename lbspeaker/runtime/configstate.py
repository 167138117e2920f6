"""Publishes a component's ConfigurationState and its config metrics; reads it back at start.

``ConfigReporter.report(part, outcome, good)`` is cheap and never blocks on the API: it builds the
status (lbspeaker.core.configstate), and a writer thread creates the object once and merge-patches
its status whenever it changes (retrying every ``retry`` seconds while the API is unreachable).
A speaker reports two parts (``l2``, ``bgp``) into one object. The reporter is also a Prometheus
collector: ``lbspeaker_config_loaded``, ``lbspeaker_config_stale`` (MetalLB's
``*_config_loaded_bool`` / ``*_config_stale_bool``) and ``lbspeaker_config_rejected_objects``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from lbspeaker.core import configstate
from lbspeaker.core.errors import ApiError, NotFoundError
from lbspeaker.core.lastgood import Outcome
from lbspeaker.core.loader import JSON, ObjKey, RawConfig
from lbspeaker.k8s.client import CONFIGURATION_STATES, Kube

log = logging.getLogger(__name__)


class ConfigReporter(Collector):
    """One component's ConfigurationState writer and config gauges."""

    def __init__(self, kube: Kube, *, namespace: str, component: str, node: str = "", retry: float = 2.0) -> None:
        self.kube = kube
        self.namespace = namespace
        self.component = component
        self.node = node
        self.name = configstate.component_name(component, node)
        self.retry = retry
        self._parts: dict[str, dict[str, Any]] = {}
        self._written: dict[str, Any] | None = None
        self._exists = False
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="configstate", daemon=True)

    # ---- reading back ---------------------------------------------------------------------------

    def seed(self, live: RawConfig) -> dict[ObjKey, JSON]:
        """The last good versions this component published before it (re)started ({} on any error)."""
        try:
            obj = self.kube.get(CONFIGURATION_STATES, self.name, self.namespace)
        except NotFoundError:
            return {}
        except ApiError as err:
            log.warning("configstate_unreadable name=%s err=%s action=start_without_seed", self.name, err)
            return {}
        seeds = configstate.seed_from(obj.get("status"), live)
        if seeds:
            log.info("configstate_seeded name=%s objects=%s", self.name, ",".join(f"{k}/{n}" for k, n in seeds))
        return seeds

    # ---- reporting ------------------------------------------------------------------------------

    def report(self, part: str, outcome: Outcome, good: Mapping[ObjKey, JSON]) -> None:
        """Record the outcome of one part's last load; the writer publishes it if it changed."""
        status = configstate.status_of(outcome, good, component=self.component, node=self.node)
        with self._lock:
            if self._parts.get(part) == status:
                return
            self._parts[part] = status
        self._wake.set()

    def status(self) -> dict[str, Any]:
        """The status as it stands (all parts merged)."""
        with self._lock:
            return configstate.merge([self._parts[p] for p in sorted(self._parts)])

    def start(self) -> None:
        """Start the writer thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the writer thread."""
        self._stop.set()
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.retry)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.sync()
            except ApiError as err:
                log.info("configstate_write_deferred name=%s err=%s", self.name, err)

    def sync(self) -> None:
        """Write the status if it changed since the last write; raises ApiError to retry later."""
        want = self.status()
        if not want or want == self._written:
            return
        if not self._exists:
            try:
                self.kube.create(
                    CONFIGURATION_STATES,
                    {"metadata": {"name": self.name, "namespace": self.namespace,
                                  "labels": {"app.kubernetes.io/name": "lbspeaker",
                                             "lbspeaker.io/component": self.component}},
                     "spec": {}},
                    self.namespace,
                )
            except ApiError as err:
                if err.code != 409:
                    raise
            self._exists = True
        try:
            self.kube.patch(CONFIGURATION_STATES, self.name, {"status": want}, self.namespace, subresource="status")
        except NotFoundError:
            self._exists = False  # deleted by someone: create it again on the next round
            raise
        self._written = want
        if want["result"] != "Valid":
            log.warning("configstate result=%s name=%s errors=%d", want["result"], self.name, len(want["errors"]))

    # ---- metrics --------------------------------------------------------------------------------

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """The config gauges of this component."""
        st = self.status()
        labels = ["component"]
        loaded = GaugeMetricFamily("lbspeaker_config_loaded", "1 once a config was loaded.", labels=labels)
        stale = GaugeMetricFamily(
            "lbspeaker_config_stale",
            "1 while some live config object is not in force as written (invalid edit ignored).",
            labels=labels,
        )
        rejected = GaugeMetricFamily(
            "lbspeaker_config_rejected_objects", "Live config objects not in force as written.", labels=labels
        )
        loaded.add_metric([self.component], 1.0 if st else 0.0)
        stale.add_metric([self.component], 1.0 if st and st["result"] != "Valid" else 0.0)
        rejected.add_metric([self.component], float(len(st.get("errors") or [])))
        yield loaded
        yield stale
        yield rejected

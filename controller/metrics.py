"""Prometheus metrics of the controller: per pool and family, addresses total / in use, services.

Read at scrape time from the snapshot the worker thread computes with the pool status (so the
HTTP thread never touches the allocator), like MetalLB's ``metallb_allocator_*`` gauges.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from controller.controller import Controller

FAMILIES = {4: "ipv4", 6: "ipv6"}


class AllocatorCollector(Collector):
    """Gauges from ``Controller.usage`` and ``Controller.services_per_pool``."""

    def __init__(self, ctrl: Controller) -> None:
        self.ctrl = ctrl

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """One sample per pool and family (IPv6 totals are floats: 2^64 is fine)."""
        total = GaugeMetricFamily(
            "lbspeaker_allocator_addresses_total", "Addresses in the pool.", labels=["pool", "family"]
        )
        in_use = GaugeMetricFamily(
            "lbspeaker_allocator_addresses_in_use_total", "Addresses assigned to services.", labels=["pool", "family"]
        )
        services = GaugeMetricFamily(
            "lbspeaker_allocator_services_total", "Services with addresses from the pool.", labels=["pool"]
        )
        usage, per_pool = self.ctrl.usage, self.ctrl.services_per_pool
        for pool, fams in sorted(usage.items()):
            for version, u in sorted(fams.items()):
                total.add_metric([pool, FAMILIES[version]], float(u.total))
                in_use.add_metric([pool, FAMILIES[version]], float(u.assigned))
            services.add_metric([pool], float(per_pool.get(pool, 0)))
        yield total
        yield in_use
        yield services


def registry_for(ctrl: Controller) -> CollectorRegistry:
    """A registry holding the allocator and config gauges (plus nothing process-global)."""
    reg = CollectorRegistry()
    reg.register(AllocatorCollector(ctrl))
    reg.register(ctrl.reporter)
    return reg

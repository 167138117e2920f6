"""Prometheus view of a speaker, read from the responders' and membership's counters at scrape time.

Nothing is counted twice and the packet path pays nothing: each responder keeps plain integer
counters (single writer) and this collector turns a snapshot into metric families on scrape. One
collector covers every responder, so interfaces may come and go (automatic selection opens and
closes responders): each scrape shows the responders open at that moment, labelled by interface.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

_COUNTERS = {
    "requests_received": "ARP requests / Neighbor Solicitations received for announced IPs",
    "responses_sent": "ARP replies / Neighbor Advertisements sent",
    "gratuitous_sent": "Gratuitous ARPs / unsolicited Neighbor Advertisements sent",
    "conflicts": "Frames from another MAC claiming an IP this node announces (duplicate announcer)",
}

ResponderStats = Callable[[], Mapping[str, Mapping[str, int]]]
"""Interface name -> that responder's counter snapshot."""


class SpeakerCollector(Collector):
    """Collects L2 and membership metrics from live objects."""

    def __init__(self, *, node: str, responder_stats: ResponderStats,
                 membership_stats: Callable[[], dict[str, int]], alive: Callable[[], int]) -> None:
        self.node = node
        self.responder_stats = responder_stats
        self.membership_stats = membership_stats
        self.alive = alive

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        """Yield the metric families (called by the registry on scrape)."""
        per_if = sorted(self.responder_stats().items())
        labels = ["node", "interface"]
        for key, doc in _COUNTERS.items():
            fam = CounterMetricFamily(f"lbspeaker_l2_{key}", doc, labels=labels)
            for interface, stats in per_if:
                fam.add_metric([self.node, interface], float(stats.get(key, 0)))
            yield fam
        dropped = CounterMetricFamily("lbspeaker_l2_dropped", "Frames not answered, by reason",
                                      labels=[*labels, "reason"])
        for interface, stats in per_if:
            for key, val in stats.items():
                if key.startswith("dropped_"):
                    dropped.add_metric([self.node, interface, key.removeprefix("dropped_")], float(val))
        yield dropped
        announced = GaugeMetricFamily("lbspeaker_l2_announced", "IPs this node answers for", labels=labels)
        for interface, stats in per_if:
            announced.add_metric([self.node, interface], float(stats.get("owned", 0)))
        yield announced
        alive = GaugeMetricFamily("lbspeaker_membership_alive_nodes", "Speakers alive in this node's view",
                                  labels=["node"])
        alive.add_metric([self.node], float(self.alive()))
        yield alive
        mstats = CounterMetricFamily("lbspeaker_membership_messages", "Heartbeat messages by outcome",
                                     labels=["node", "outcome"])
        for key, val in self.membership_stats().items():
            mstats.add_metric([self.node, key], float(val))
        yield mstats

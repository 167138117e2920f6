"""What the speaker's BGP sessions look like, made visible: BGPPeer status, Events and Prometheus metrics.

Many speakers write one BGPPeer's ``status.nodes`` list, so every write is a read-modify-write of
the status subresource guarded by resourceVersion (retried on 409); each speaker only ever
touches its own entry. Writes happen only when this node's entry changed. An API that is down
delays the status, never the sessions: failures are logged and retried on the next change tick.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from lbspeaker.core.errors import ApiError, ConflictError, NotFoundError
from lbspeaker.k8s.client import BGPPEERS, JSON, Kube

log = logging.getLogger(__name__)

ESTABLISHED = "Established"
# exabgp's neighbor states (process API) -> the BGP FSM names users know from routers
_STATES = {"up": ESTABLISHED, "connected": "OpenSent", "down": "Active", "configured": "Connect"}


def fsm_state(exabgp_state: str) -> str:
    """The RFC 4271 state name for an exabgp neighbor state."""
    return _STATES.get(exabgp_state, exabgp_state.capitalize() or "Idle")


def _ts(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class PeerView:
    """One session of this node as published: the BGPPeer's status entry and the metric labels."""

    peer: str
    address: str
    state: str
    prefixes: int = 0
    updates: int = 0
    reason: str = ""
    last_error: str = ""
    bfd_state: str = ""
    since: datetime | None = None

    @property
    def established(self) -> bool:
        """True while the session is up."""
        return self.state == ESTABLISHED

    def entry(self, node: str) -> JSON:
        """This node's entry in BGPPeer status.nodes."""
        out: JSON = {"node": node, "state": self.state, "prefixesAnnounced": self.prefixes}
        if self.reason:
            out["reason"] = self.reason[:500]
        if self.last_error:
            out["lastError"] = self.last_error[:500]
        if self.bfd_state:
            out["bfdState"] = self.bfd_state
        if self.since is not None:
            out["lastTransitionTime"] = _ts(self.since)
        return out


def stamp(views: Mapping[str, PeerView], previous: Mapping[str, PeerView]) -> dict[str, PeerView]:
    """Keep each peer's ``since`` while its state is unchanged, else set it to now."""
    now = datetime.now(UTC).replace(microsecond=0)
    out = {}
    for name, v in views.items():
        old = previous.get(name)
        since = old.since if old is not None and old.state == v.state and old.since is not None else now
        out[name] = replace(v, since=since)
    return out


class PeerStatusWriter:
    """Writes this node's entries into BGPPeer status and records session up/down Events."""

    def __init__(self, kube: Kube, *, node: str, namespace: str) -> None:
        self.kube = kube
        self.node = node
        self.namespace = namespace
        self._written: dict[str, JSON] = {}
        self._states: dict[str, str] = {}

    def publish(self, views: Mapping[str, PeerView]) -> None:
        """Bring every BGPPeer's entry for this node in line with views (missing peer = entry removed)."""
        for name in sorted(set(self._written) | set(views)):
            view = views.get(name)
            entry = view.entry(self.node) if view is not None else None
            if entry is not None and self._written.get(name) == entry:
                continue
            try:
                obj = self._write(name, entry)
            except NotFoundError:
                self._written.pop(name, None)
                continue
            except ApiError as err:
                log.warning("bgp.status_write_failed peer=%s node=%s err=%s", name, self.node, err)
                continue
            if entry is None:
                self._written.pop(name, None)
            else:
                self._written[name] = entry
            if view is not None:
                self._maybe_event(obj, view)
        for name in set(self._states) - set(views):
            del self._states[name]

    def _maybe_event(self, obj: JSON, view: PeerView) -> None:
        old = self._states.get(view.peer)
        self._states[view.peer] = view.state
        if old is None and not view.established:
            return  # first sight of a session that is still connecting: no news
        if view.established and old != ESTABLISHED:
            self.kube.event(
                obj,
                reason="SessionEstablished",
                message=f"node {self.node}: BGP session to {view.address} is Established",
            )
        elif old == ESTABLISHED and not view.established:
            why = view.reason or view.last_error or view.state
            self.kube.event(
                obj,
                reason="SessionDown",
                type="Warning",
                message=f"node {self.node}: BGP session to {view.address} is {view.state}: {why}",
            )

    def _write(self, name: str, entry: JSON | None) -> JSON:
        last: ApiError | None = None
        for _ in range(5):
            obj = self.kube.get(BGPPEERS, name, self.namespace)
            status: JSON = dict(obj.get("status") or {})
            nodes = [n for n in status.get("nodes") or [] if isinstance(n, dict) and n.get("node") != self.node]
            if entry is not None:
                nodes.append(entry)
            nodes.sort(key=lambda n: str(n.get("node")))
            status["nodes"] = nodes
            status["establishedNodes"] = sum(1 for n in nodes if n.get("state") == ESTABLISHED)
            body = {"metadata": obj["metadata"], "spec": obj.get("spec") or {}, "status": status}
            try:
                out = self.kube.replace(BGPPEERS, name, body, self.namespace, subresource="status")
                return {**out, "kind": BGPPEERS.kind, "apiVersion": BGPPEERS.api_version}
            except ConflictError as err:
                last = err
        assert last is not None
        raise last


class BgpCollector(Collector):
    """Prometheus metrics of this node's BGP sessions, read from a snapshot at scrape time."""

    def __init__(self, *, node: str, views: Callable[[], Mapping[str, PeerView]]) -> None:
        self.node = node
        self.views = views

    def collect(self) -> Iterator[Any]:
        """Yield the metric families (called by the registry on scrape)."""
        labels = ["node", "peer", "address"]
        up = GaugeMetricFamily("lbspeaker_bgp_session_up", "1 while the BGP session is Established", labels=labels)
        updates = CounterMetricFamily(
            "lbspeaker_bgp_updates_sent", "UPDATE commands sent to exabgp for the peer", labels=labels
        )
        prefixes = GaugeMetricFamily(
            "lbspeaker_bgp_announced_prefixes", "Prefixes announced to the peer", labels=labels
        )
        for v in sorted(self.views().values(), key=lambda v: v.peer):
            values = [self.node, v.peer, v.address]
            up.add_metric(values, 1.0 if v.established else 0.0)
            updates.add_metric(values, float(v.updates))
            prefixes.add_metric(values, float(v.prefixes))
        yield up
        yield updates
        yield prefixes

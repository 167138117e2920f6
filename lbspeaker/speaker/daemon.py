"""The node speaker: turns API state + live membership into the set of VIPs this node answers for.

Two inputs drive it: the API (Services, Nodes, EndpointSlices, config CRs — slow and
authoritative) and the heartbeat membership (fast; keeps failover working while the API is
down). Every change marks the state dirty; one worker thread recomputes the pure L2
assignment and hands the owned set to the responder. The API being unreachable never clears
state: informers keep their last snapshot.

Interfaces: with a fixed ``--interface`` list the speaker answers there (narrowed per IP by
``L2Advertisement.spec.interfaces``). Without one it re-reads the node's links on every
recompute (at least every ``RESYNC_S``) and answers each IP on the interfaces
``core.ifselect.select_interfaces`` picks (the NIC whose subnet holds it, else every usable one);
responders are opened for interfaces that are needed and closed when no longer needed.

Health gating: the worker polls interface health every ``HEALTH_POLL_S``; an unhealthy node
announces nothing. Healthy = every *required* interface has a live responder whose link is up.
Required = the fixed list; in automatic mode, the interfaces selected for any IP this node could
announce (its pool has an L2Advertisement selecting this node; independent of the election, so
stepping down cannot make the node healthy again). A down NAT NIC that carries no VIP does not
count; a down LAN NIC does (selection keeps a down NIC whose subnet holds the VIP). In automatic
mode the node is also unhealthy when such an IP has no usable interface at all.

While it was cut off its membership view lost every peer, and after the link
returns their heartbeats arrive one by one: an election on that partial view would hand it other
nodes' IPs for a moment, and its gratuitous ARPs would move clients to it for good. So for a
settle period after being unhealthy (twice ``membership_timeout``, at least ``MIN_SETTLE_S``) the
peers it last saw alive while healthy still count as alive; it only claims what it would win
against them. Cost: an IP whose owner really died meanwhile, and that this node should now win,
waits for the settle period.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import CollectorRegistry

from lbspeaker.core.announce import L2Assignment, l2_assignments, owned_by
from lbspeaker.core.config import L2_KIND, POOL_KIND, Config
from lbspeaker.core.errors import ApiError, NetworkError
from lbspeaker.core.ifselect import LinkInfo, advertised_interfaces, select_interfaces
from lbspeaker.core.lastgood import LastGood
from lbspeaker.core.loader import RawConfig
from lbspeaker.core.node import NodeInfo, endpoints_from_slices, parse_node
from lbspeaker.core.service import IPAddress, parse_service
from lbspeaker.k8s.client import (
    ENDPOINTSLICES,
    IPADDRESSPOOLS,
    JSON,
    L2ADVERTISEMENTS,
    NODES,
    SECRETS,
    SERVICES,
    Kube,
)
from lbspeaker.k8s.informer import Informer
from lbspeaker.runtime.configstate import ConfigReporter
from lbspeaker.runtime.endpoint import Endpoint
from lbspeaker.speaker.l2status import L2Record, StatusPublisher, now
from lbspeaker.speaker.links import LinkReader
from lbspeaker.speaker.membership import DEFAULT_INTERVAL, DEFAULT_TIMEOUT, Membership
from lbspeaker.speaker.metrics import SpeakerCollector
from lbspeaker.speaker.responder import Responder

log = logging.getLogger(__name__)

SECRET_KEY = "secretkey"
HEALTH_POLL_S = 0.05
"""How often the worker checks the interfaces' health (link up, responder live)."""
MIN_SETTLE_S = 0.25
"""Shortest settle period after being unhealthy (see the module docstring)."""
RESYNC_S = 1.0
"""Recompute at least this often even when nothing signalled a change."""


@dataclass(frozen=True)
class SpeakerSettings:
    """How one speaker runs."""

    node: str
    """This node's name (the Node object's name)."""
    interfaces: tuple[str, ...]
    """Fixed interfaces to answer ARP/NDP on (an L2Advertisement may narrow them per IP); () = automatic."""
    namespace: str = "lbspeaker-system"
    """Where the config CRs and the memberlist Secret live."""
    secret_name: str = "lbspeaker-memberlist"
    """Secret holding the shared membership key under 'secretkey'."""
    membership_port: int = 7946
    """UDP port of the heartbeat membership."""
    metrics_port: int = 7472
    """HTTP port of /metrics, /healthz and /readyz (0 = off)."""
    membership_interval: float = DEFAULT_INTERVAL
    """Seconds between heartbeats to each peer."""
    membership_timeout: float = DEFAULT_TIMEOUT
    """Silence after which a peer is dead (and its IPs move)."""


class Speaker:
    """Wires informers, membership and the responder around the pure assignment."""

    def __init__(self, kube: Kube, settings: SpeakerSettings) -> None:
        self.kube = kube
        self.s = settings
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._config = Config()
        self._owned: frozenset[IPAddress] = frozenset()
        self._config_errors: tuple[str, ...] = ()
        self.last_good = LastGood()
        self.reporter = ConfigReporter(kube, namespace=settings.namespace, component="speaker", node=settings.node)
        self._seeded = False
        self._peers: dict[str, IPAddress] = {}
        ns = settings.namespace
        self.services = Informer(kube, SERVICES, on_event=self._changed)
        self.nodes = Informer(kube, NODES, on_event=self._changed)
        self.slices = Informer(kube, ENDPOINTSLICES, on_event=self._changed)
        self.pools = Informer(kube, IPADDRESSPOOLS, ns, on_event=self._changed)
        self.l2advs = Informer(kube, L2ADVERTISEMENTS, ns, on_event=self._changed)
        self.informers = [self.services, self.nodes, self.slices, self.pools, self.l2advs]
        self._fixed = settings.interfaces
        self._links = None if self._fixed else LinkReader()
        self.responders: dict[str, Responder] = {}
        """Open responders by interface; replaced as a whole (readers on other threads take one dict)."""
        for i in self._fixed:
            self.responders[i] = Responder(interface=i)
            self.responders[i].on_conflict = self._conflict
        self._required: frozenset[str] = frozenset(self._fixed)
        self._stranded = False
        self.membership: Membership | None = None
        self.publisher = StatusPublisher(kube, node=settings.node, namespace=ns)
        self._since: dict[str, datetime] = {}
        self._ip_services: dict[IPAddress, tuple[str, ...]] = {}
        self.endpoint: Endpoint | None = None
        self._settle_s = max(MIN_SETTLE_S, 2 * settings.membership_timeout)
        self._settle_until = 0.0
        self._settling = False
        self._was_healthy = True
        self._last_good_alive: frozenset[str] = frozenset()
        self._worker = threading.Thread(target=self._loop, name="speaker-reconcile", daemon=True)

    def _changed(self, _kind: str, _obj: JSON) -> None:
        self._dirty.set()

    def _conflict(self, ip: IPAddress, mac: str) -> None:
        """Another MAC answers for an IP we announce: metric (responder) + Warning Event."""
        for key in self._ip_services.get(ip, ()):
            self.publisher.warn(key, reason="DuplicateAnnouncer",
                                message=f"node {self.s.node} announces {ip} but {mac} answers for it too")

    def _ready(self) -> bool:
        return all(i.synced for i in self.informers) and self.healthy

    @property
    def healthy(self) -> bool:
        """Every required interface is up and its responder live (see the module docstring)."""
        responders = self.responders
        return not self._stranded and all(n in responders and responders[n].healthy for n in self._required)

    def _membership_changed(self, alive: frozenset[str]) -> None:
        log.info("membership_changed alive=%s", ",".join(sorted(alive)))
        self._dirty.set()

    def _read_secret(self) -> bytes:
        deadline = 30
        for _ in range(deadline * 2):
            try:
                sec = self.kube.get(SECRETS, self.s.secret_name, self.s.namespace)
                raw = (sec.get("data") or {}).get(SECRET_KEY)
                if raw:
                    return base64.b64decode(raw)
                log.warning("memberlist_secret_empty secret=%s/%s", self.s.namespace, self.s.secret_name)
            except ApiError as err:
                log.warning(
                    "memberlist_secret_unreadable secret=%s/%s err=%s",
                    self.s.namespace,
                    self.s.secret_name,
                    err,
                )
            if self._stop.wait(0.5):
                break
        raise ApiError(f"reading memberlist secret '{self.s.namespace}/{self.s.secret_name}': not available")

    def start(self) -> None:
        """Start everything; returns once the informers synced."""
        for r in self.responders.values():
            r.start()
        for inf in self.informers:
            inf.start()
        for inf in self.informers:
            if not inf.wait_synced(30.0):
                log.warning("informer_not_synced resource=%s", inf.res.plural)
        self.membership = Membership(
            self.s.node,
            secret=self._read_secret(),
            port=self.s.membership_port,
            interval=self.s.membership_interval,
            timeout=self.s.membership_timeout,
            on_change=self._membership_changed,
        )
        self.membership.set_peers(self._peer_addresses())
        self.membership.start()
        self._last_good_alive = self.membership.alive()
        self.publisher.start()
        self.reporter.start()
        if self.s.metrics_port:
            self.endpoint = Endpoint("0.0.0.0", self.s.metrics_port, ready=self._ready,
                                     registry=CollectorRegistry())
            m = self.membership
            self.endpoint.registry.register(SpeakerCollector(
                node=self.s.node, responder_stats=lambda: {n: r.stats for n, r in self.responders.items()},
                membership_stats=m.stats, alive=lambda: len(m.alive())))
            self.endpoint.registry.register(self.reporter)
            self.endpoint.start()
        self._dirty.set()
        self._worker.start()
        log.info("speaker_started node=%s interfaces=%s", self.s.node, ",".join(self._fixed) or "auto")

    def stop(self) -> None:
        """Stop answering and leave."""
        self._stop.set()
        self._dirty.set()
        if self._worker.is_alive():  # it may be opening responders
            self._worker.join(timeout=5.0)
        for inf in self.informers:
            inf.stop()
        if self.membership is not None:
            self.membership.stop()
        for r in self.responders.values():
            r.stop()
        if self._links is not None:
            self._links.close()
        self.publisher.stop()
        self.reporter.stop()
        if self.endpoint is not None:
            self.endpoint.stop()

    def _peer_addresses(self) -> dict[str, IPAddress]:
        peers: dict[str, IPAddress] = {}
        for obj in self.nodes.items():
            n = parse_node(obj)
            v4: list[IPAddress] = [a for a in n.addresses if isinstance(a, ipaddress.IPv4Address)]
            addrs = v4 or list(n.addresses)
            if addrs and n.name:
                peers[n.name] = addrs[0]
        return peers

    def _current_config(self) -> Config:
        raw = RawConfig.of({POOL_KIND: self.pools.items(), L2_KIND: self.l2advs.items()})
        if not self._seeded:
            self._seeded = True
            self.last_good.seed(self.reporter.seed(raw))
        outcome = self.last_good.update(raw)
        errs = tuple(str(r.error) for r in outcome.rejections)
        if errs != self._config_errors:
            for r in outcome.rejections:
                log.warning("config_invalid err=%s in_force=%s", r.error, "last_good" if r.in_force else "none")
            self._config_errors = errs
        self.reporter.report("l2", outcome, self.last_good.good)
        self._config = outcome.loaded.config.l2
        return self._config

    def reconcile(self) -> frozenset[IPAddress]:
        """Recompute what this node owns and hand it to the responder."""
        nodes: dict[str, NodeInfo] = {}
        for obj in self.nodes.items():
            n = parse_node(obj)
            nodes[n.name] = n
        peers = self._peer_addresses()
        if self.membership is not None and peers != self._peers:
            self.membership.set_peers(peers)
            self._peers = peers
        alive = self._effective_alive()
        config = self._current_config()
        assignments = l2_assignments(
            services=[parse_service(o) for o in self.services.items()],
            nodes=nodes,
            config=config,
            endpoints=endpoints_from_slices(self.slices.items()),
            alive=alive,
        )
        owned = owned_by(self.s.node, assignments)
        self._ip_services = {ip: a.services for ip, a in assignments.items() if a.node == self.s.node}
        links = self._links.read() if self._links is not None else ()
        plan = {ip: select_interfaces(ip, links, restrict=assignments[ip].interfaces, fixed=self._fixed)
                for ip in owned}
        self.publisher.publish(self._records(assignments, plan))
        if owned != self._owned:
            gained, lost = owned - self._owned, self._owned - owned
            log.info(
                "ownership_changed node=%s gained=%s lost=%s",
                self.s.node,
                ",".join(map(str, sorted(gained, key=str))),
                ",".join(map(str, sorted(lost, key=str))),
            )
            self._owned = owned
        me = nodes.get(self.s.node)
        self._sync_responders(plan, links, self._required_interfaces(
            assignments, links, config=config, labels=me.label_map if me else {}))
        return owned

    def _required_interfaces(self, assignments: dict[IPAddress, L2Assignment], links: tuple[LinkInfo, ...], *,
                             config: Config, labels: dict[str, str]) -> tuple[frozenset[str], bool]:
        """(interfaces health depends on, whether some IP this node could announce has none)."""
        if self._fixed:
            return frozenset(self._fixed), False
        required: set[str] = set()
        stranded = False
        for ip in assignments:
            restrict = advertised_interfaces(ip, config, node_labels=labels)
            if restrict is None:
                continue
            chosen = select_interfaces(ip, links, restrict=restrict)
            required.update(chosen)
            stranded = stranded or (not chosen and not restrict)
        return frozenset(required), stranded

    def _sync_responders(self, plan: dict[IPAddress, tuple[str, ...]], links: tuple[LinkInfo, ...],
                         health: tuple[frozenset[str], bool]) -> None:
        """Open responders for needed interfaces, close unneeded (or re-created) ones, hand out the IPs."""
        required, stranded = health
        wanted = required | {i for chosen in plan.values() for i in chosen}
        index = {link.name: link.index for link in links}
        current = dict(self.responders)
        closing = [current.pop(n) for n in list(current) if not self._fixed and (
            n not in wanted or index.get(n, current[n].ifindex) != current[n].ifindex)]
        for name in sorted(wanted - set(current)):
            try:
                r = Responder(interface=name)
            except NetworkError as err:
                log.warning("responder_open_failed node=%s interface=%s err=%s", self.s.node, name, err)
                continue
            r.on_conflict = self._conflict
            r.start()
            current[name] = r
        if closing or set(current) != set(self.responders):
            log.info("interfaces_changed node=%s open=%s", self.s.node, ",".join(sorted(current)))
        self.responders, self._required, self._stranded = current, required, stranded
        for name, r in current.items():
            r.set_owned(ip for ip, chosen in plan.items() if name in chosen)
        for r in closing:
            r.stop()

    def _effective_alive(self) -> frozenset[str] | None:
        """The membership view the election uses (None = no view yet); see the module docstring."""
        if self.membership is None:
            return None
        alive = self.membership.alive()
        now = time.monotonic()
        if not self.healthy:
            self._settle_until = now + self._settle_s
            self._settling = True
            return alive - {self.s.node}
        if now < self._settle_until:
            return alive | self._last_good_alive
        if self._settling:
            self._settling = False
            log.info("settled node=%s alive=%s", self.s.node, ",".join(sorted(alive)))
        self._last_good_alive = alive
        return alive

    def _records(self, assignments: dict[IPAddress, L2Assignment],
                 plan: dict[IPAddress, tuple[str, ...]]) -> dict[str, L2Record]:
        ips: dict[str, list[str]] = {}
        ifaces: dict[str, set[str]] = {}
        for ip, a in sorted(assignments.items(), key=lambda kv: (kv[0].version, kv[0])):
            if a.node != self.s.node:
                continue
            for key in a.services:
                ips.setdefault(key, []).append(str(ip))
                ifaces.setdefault(key, set()).update(plan.get(ip, ()))
        since = {k: self._since.get(k) or now() for k in ips}
        self._since = dict(since)
        out = {}
        for key, addrs in ips.items():
            ns, name = key.split("/", 1)
            out[key] = L2Record(ns, name, self.s.node, tuple(addrs), tuple(sorted(ifaces[key])), since[key])
        return out

    def _due(self, woke: bool, next_resync: float) -> bool:
        """True when the worker must recompute: signalled, health changed, settle over, or resync."""
        now = time.monotonic()
        healthy = self.healthy
        if not healthy:
            self._settle_until = now + self._settle_s
            self._settling = True
        changed, self._was_healthy = healthy != self._was_healthy, healthy
        if changed:
            log.info("health_changed node=%s healthy=%s", self.s.node, healthy)
        return woke or changed or now >= next_resync or (self._settling and now >= self._settle_until)

    def _loop(self) -> None:
        next_resync = 0.0
        while not self._stop.is_set():
            woke = self._dirty.wait(HEALTH_POLL_S)
            if self._stop.is_set():
                return
            if not self._due(woke, next_resync):
                continue
            self._dirty.clear()
            next_resync = time.monotonic() + RESYNC_S
            try:
                self.reconcile()
            except Exception:  # keep serving the last owned set on a bug
                log.exception("reconcile_failed node=%s", self.s.node)

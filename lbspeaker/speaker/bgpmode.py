"""BGP mode of the speaker: API state in, exabgp sessions and announcements out.

Informers feed one worker thread that runs its own asyncio loop (the exabgp driver and BFD are
asyncio). On every change the worker parses the config, computes this node's sessions and routes
with the pure functions of ``lbspeaker.core.bgp.routes`` and hands them to ``BgpManager.apply``.
Invariants:
- inert until a BGPPeer selects this node: no exabgp process, no BFD socket;
- config goes through the shared LastGood policy (lbspeaker.core.lastgood): an invalid edit of any
  object (pools included) never removes what its last valid version configured;
- a peer that cannot connect, a refused command or an unreachable API is reported (log, status,
  metrics), never raised out of the worker;
- the API being unreachable never clears state: informers keep their last snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lbspeaker.core.bgp.routes import Route, Session, SkippedPeer, desired_routes, sessions_for_node
from lbspeaker.core.config import POOL_KIND
from lbspeaker.core.errors import ApiError, LbError
from lbspeaker.core.lastgood import LastGood
from lbspeaker.core.loader import Loaded, RawConfig
from lbspeaker.core.node import endpoints_from_slices, parse_node
from lbspeaker.core.service import parse_service
from lbspeaker.k8s.client import (
    BFDPROFILES,
    BGPADVERTISEMENTS,
    BGPPEERS,
    COMMUNITIES,
    ENDPOINTSLICES,
    IPADDRESSPOOLS,
    JSON,
    NODES,
    SECRETS,
    SERVICES,
    Kube,
)
from lbspeaker.k8s.informer import Informer
from lbspeaker.runtime.configstate import ConfigReporter
from lbspeaker.speaker.bgp.exabgp_driver import DEFAULT_EXABGP, ExabgpDriver
from lbspeaker.speaker.bgp.manager import BgpManager
from lbspeaker.speaker.bgpstatus import BgpCollector, PeerStatusWriter, PeerView, fsm_state, stamp

log = logging.getLogger(__name__)

# exabgp runs in its own session (the driver's choice); tie its life to ours so a SIGKILLed speaker
# never leaves an orphan exabgp holding the sessions and routes of a dead node
_SETPRIV = shutil.which("setpriv")
DEFAULT_PREFIX: tuple[str, ...] = (_SETPRIV, "--pdeathsig", "KILL") if _SETPRIV else ()

INFORMER_NAMES = (
    "services",
    "nodes",
    "slices",
    "pools",
    "peers",
    "advertisements",
    "bfdprofiles",
    "communities",
    "secrets",
)
_KINDS = {
    "peers": "BGPPeer",
    "advertisements": "BGPAdvertisement",
    "bfdprofiles": "BFDProfile",
    "communities": "Community",
}


def make_informers(kube: Kube, namespace: str) -> dict[str, Informer]:
    """The informers BGP mode reads (unstarted), keyed by INFORMER_NAMES."""
    return {
        "services": Informer(kube, SERVICES),
        "nodes": Informer(kube, NODES),
        "slices": Informer(kube, ENDPOINTSLICES),
        "pools": Informer(kube, IPADDRESSPOOLS, namespace),
        "peers": Informer(kube, BGPPEERS, namespace),
        "advertisements": Informer(kube, BGPADVERTISEMENTS, namespace),
        "bfdprofiles": Informer(kube, BFDPROFILES, namespace),
        "communities": Informer(kube, COMMUNITIES, namespace),
        "secrets": Informer(kube, SECRETS, namespace),
    }


@dataclass(frozen=True)
class Desired:
    """What this node wants from exabgp right now."""

    sessions: tuple[Session, ...]
    routes: Mapping[str, frozenset[Route]]
    skipped: tuple[SkippedPeer, ...]


class BgpMode:
    """Runs this node's BGP sessions from the API state; ``views()`` is what it looks like.

    ``informers`` (keys from INFORMER_NAMES) may share the L2 speaker's: their handlers are chained,
    their owner starts and stops them; the missing ones are created, started and stopped here.
    """

    def __init__(
        self,
        kube: Kube,
        *,
        node: str,
        namespace: str,
        workdir: Path,
        informers: Mapping[str, Informer] | None = None,
        exabgp: Path = DEFAULT_EXABGP,
        command_prefix: Sequence[str] = DEFAULT_PREFIX,
        status_interval: float = 1.0,
        reporter: ConfigReporter | None = None,
    ) -> None:
        self.kube = kube
        self.node = node
        self.namespace = namespace
        self.workdir = workdir
        self.exabgp = exabgp
        self.command_prefix = tuple(command_prefix)
        self.status_interval = status_interval
        shared = dict(informers or {})
        missing = [n for n in INFORMER_NAMES if n not in shared]
        own = {n: inf for n, inf in make_informers(kube, namespace).items() if n in missing} if missing else {}
        self._owned = list(own.values())  # started and stopped by us; shared ones by their owner
        self.informers = {**shared, **own}
        for inf in self.informers.values():
            prev = inf.on_event
            inf.on_event = self._chain(prev)
        self.writer = PeerStatusWriter(kube, node=node, namespace=namespace)
        self.manager: BgpManager | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stop = threading.Event()
        self._graceful = False
        self.last_good = LastGood()
        self.reporter = reporter
        self._seeded = False
        self._foreign: dict[tuple[str, str], JSON] = {}
        """Secrets of other namespaces that peers reference (read on demand, not watched)."""
        self._errors: tuple[str, ...] = ()
        self._desired: Desired | None = None
        self._views: dict[str, PeerView] = {}
        self._thread = threading.Thread(target=self._run, name="bgp-mode", daemon=True)
        self.collector = BgpCollector(node=node, views=lambda: self._views)

    # ---- lifecycle ----------------------------------------------------------------------------

    def _chain(self, prev: Any) -> Any:
        def handler(kind: str, obj: JSON) -> None:
            if prev is not None:
                prev(kind, obj)
            self._changed()

        return handler

    def _changed(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # loop closed between the check and the call
                pass

    def start(self, *, sync_timeout: float = 30.0) -> None:
        """Start the informers (if owned) and the worker; returns once the informers synced."""
        for inf in self._owned:
            inf.start()
        for inf in self.informers.values():
            if not inf.wait_synced(sync_timeout):
                log.warning("bgp.informer_not_synced resource=%s", inf.res.plural)
        self._thread.start()
        log.info("bgp.mode_started node=%s", self.node)

    def stop(self, *, graceful_restart: bool = False) -> None:
        """Stop exabgp and BFD (graceful_restart: routers keep the routes) and the informers we own."""
        self._graceful = graceful_restart
        self._stop.set()
        self._changed()
        if self._thread.is_alive():
            self._thread.join(timeout=15.0)
        for inf in self._owned:
            inf.stop()

    def views(self) -> dict[str, PeerView]:
        """Per peer name: this node's session as last published."""
        return dict(self._views)

    @property
    def exabgp_pid(self) -> int | None:
        """exabgp's pid while it runs (None while inert)."""
        return self.manager.driver.pid if self.manager is not None else None

    # ---- computing ----------------------------------------------------------------------------

    def _items(self, name: str) -> list[JSON]:
        return self.informers[name].items()

    def _raw(self) -> RawConfig:
        by_kind: dict[str, list[JSON]] = {kind: self._items(name) for name, kind in _KINDS.items()}
        by_kind[POOL_KIND] = self._items("pools")
        secrets = [*self._items("secrets"), *self._foreign.values()]
        return RawConfig.of(by_kind, secrets=secrets)

    def _fetch_foreign(self, loaded: Loaded) -> bool:
        """Read Secrets of other namespaces that peers reference; True when one was added."""
        added = False
        for peer in loaded.config.bgp.peers.values():
            ref = peer.password_secret
            if ref is None or ref.namespace == self.namespace or ref in loaded.config.passwords:
                continue
            if (ref.namespace, ref.name) in self._foreign:
                continue
            try:
                self._foreign[(ref.namespace, ref.name)] = self.kube.get(SECRETS, ref.name, ref.namespace)
                added = True
            except ApiError as err:
                log.warning("bgp.secret_unreadable secret=%s/%s err=%s", ref.namespace, ref.name, err)
        return added

    def load(self) -> Loaded:
        """The config in force through the shared last-good policy (pools and BGP kinds)."""
        raw = self._raw()
        if not self._seeded and self.reporter is not None:
            self._seeded = True
            self.last_good.seed(self.reporter.seed(raw))
        outcome = self.last_good.update(raw)
        if self._fetch_foreign(outcome.loaded):
            outcome = self.last_good.update(self._raw())
        errs = tuple(str(r.error) for r in outcome.rejections)
        if errs != self._errors:
            for r in outcome.rejections:
                log.warning("bgp.config_invalid err=%s in_force=%s", r.error, "last_good" if r.in_force else "none")
            self._errors = errs
        if self.reporter is not None:
            self.reporter.report("bgp", outcome, self.last_good.good)
        return outcome.loaded

    def compute(self) -> Desired:
        """This node's sessions and routes from the informers' current state (pure apart from reading)."""
        cfg = self.load().config
        node_obj = self.informers["nodes"].get(self.node)
        if node_obj is None:
            return Desired((), {}, ())
        node = parse_node(node_obj)
        sessions, skipped = sessions_for_node(cfg.bgp, node, passwords=cfg.passwords)
        routes = desired_routes(
            cfg.l2,
            cfg.bgp,
            node=node,
            services=[parse_service(o) for o in self._items("services")],
            endpoints=endpoints_from_slices(self._items("slices")),
            sessions=sessions,
        )
        return Desired(sessions, routes, skipped)

    # ---- worker -------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception:  # never take the speaker down with us
            log.exception("bgp.worker_crashed node=%s", self.node)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._wake.set()
        try:
            while not self._stop.is_set():
                try:
                    await asyncio.wait_for(self._wake.wait(), self.status_interval)
                except TimeoutError:
                    pass
                if self._stop.is_set():
                    break
                changed = self._wake.is_set()
                self._wake.clear()
                if changed:
                    await self._reconcile()
                await self._publish()
        finally:
            if self.manager is not None:
                await self.manager.stop(graceful_restart=self._graceful)

    async def _reconcile(self) -> None:
        try:
            desired = self.compute()
        except Exception:
            log.exception("bgp.compute_failed node=%s", self.node)
            return
        if desired == self._desired and self.manager is not None:
            return
        if self.manager is None and not desired.sessions:
            self._desired = desired  # inert: nothing selects this node
            return
        try:
            if self.manager is None:
                self.manager = BgpManager(
                    driver=ExabgpDriver(
                        workdir=self.workdir,
                        exabgp=self.exabgp,
                        command_prefix=self.command_prefix,
                        on_status=lambda _st: self._changed(),
                    )
                )
                await self.manager.start()
            await self.manager.apply(desired.sessions, desired.routes)
            self._desired = desired
            n = sum(len(r) for r in desired.routes.values())
            log.info(
                "bgp.applied node=%s sessions=%d routes=%d skipped=%d",
                self.node,
                len(desired.sessions),
                n,
                len(desired.skipped),
            )
        except (LbError, OSError) as err:
            log.warning("bgp.apply_failed node=%s err=%s", self.node, err)
            self._desired = None  # retry on the next tick
            self._changed()
            await asyncio.sleep(1.0)

    def _collect_views(self) -> dict[str, PeerView]:
        views: dict[str, PeerView] = {}
        desired = self._desired or Desired((), {}, ())
        status = self.manager.status() if self.manager is not None else {}
        bfd_states: dict[str, str] = {}
        if self.manager is not None:
            for s in desired.sessions:
                bfd = self.manager.bfd.state(s.peer_address) if s.bfd is not None else None
                if bfd is not None:
                    bfd_states[s.peer] = bfd.name.capitalize()
        for s in desired.sessions:
            st = status.get(s.peer)
            if st is None:
                views[s.peer] = PeerView(s.peer, str(s.peer_address), "Idle")
                continue
            views[s.peer] = PeerView(
                s.peer,
                str(s.peer_address),
                fsm_state(st.state),
                prefixes=st.prefixes,
                updates=st.updates,
                reason=st.reason,
                last_error=st.last_error,
                bfd_state=bfd_states.get(s.peer, ""),
            )
        for sk in desired.skipped:
            views[sk.peer] = PeerView(sk.peer, "", "Skipped", reason=sk.reason)
        return views

    async def _publish(self) -> None:
        self._views = stamp(self._collect_views(), self._views)
        views = dict(self._views)
        try:
            await asyncio.to_thread(self.writer.publish, views)
        except Exception:
            log.exception("bgp.status_failed node=%s", self.node)

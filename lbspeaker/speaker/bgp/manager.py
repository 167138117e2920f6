"""BGP mode of one speaker: the exabgp driver and the BFD sessions, kept in step.

Invariants: a peer with a BFD profile has a BFD session toward it from the session's local
address; when that BFD session falls from Up to Down, the BGP session is torn down at once
(exabgp reconnects by itself, and the router only takes it back once its own BFD is Up again).
While exabgp is hung (no answer on its API), BFD goes silent: exabgp's TCP sessions would stay
open until the routers' hold timers, but their BFD drops them within the detection time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence

from lbspeaker.core.bgp.bfd import State, Transition
from lbspeaker.core.bgp.routes import Route, Session
from lbspeaker.core.service import IPAddress
from lbspeaker.speaker.bgp.bfd import BfdManager, BfdPeer
from lbspeaker.speaker.bgp.exabgp_driver import ExabgpDriver, PeerStatus

log = logging.getLogger(__name__)


class BgpManager:
    """Applies sessions and routes to exabgp and BFD together."""

    def __init__(self, *, driver: ExabgpDriver, bfd: BfdManager | None = None) -> None:
        self.driver = driver
        self.bfd = bfd if bfd is not None else BfdManager(on_transition=self._on_bfd)
        if driver.on_hung is None:
            driver.on_hung = self.bfd.set_silent
        self._tasks: set[asyncio.Task[None]] = set()
        self.bfd_teardowns = 0

    async def start(self) -> None:
        """Start the driver's API listener and the BFD sockets."""
        await self.driver.start()
        await self.bfd.start()

    async def stop(self, *, graceful_restart: bool = False) -> None:
        """Stop BFD then exabgp (graceful_restart: without a NOTIFICATION, so routers keep routes)."""
        for t in list(self._tasks):
            t.cancel()
        await self.bfd.stop()
        await self.driver.stop(graceful_restart=graceful_restart)

    async def apply(self, sessions: Sequence[Session], routes: Mapping[str, frozenset[Route]]) -> None:
        """Desired sessions (with their BFD profiles) and routes per peer name."""
        self.bfd.set_peers(BfdPeer(s.peer_address, s.local_address, s.bfd) for s in sessions if s.bfd is not None)
        await self.driver.apply(sessions, routes)

    def status(self) -> dict[str, PeerStatus]:
        """Per peer name: the BGP session status."""
        return self.driver.status()

    def _on_bfd(self, peer: IPAddress, tr: Transition) -> None:
        if tr.old == State.UP and tr.new == State.DOWN:
            log.warning("bgp.bfd_down peer=%s diag=%s action=teardown", peer, tr.diag.name)
            self.bfd_teardowns += 1
            task = asyncio.create_task(self._teardown(peer), name=f"bfd-teardown-{peer}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _teardown(self, peer: IPAddress) -> None:
        try:
            await self.driver.teardown(peer)
        except Exception as exc:  # reported, never fatal: exabgp's own hold timer still applies
            log.warning("bgp.bfd_teardown_failed peer=%s error=%s", peer, exc)

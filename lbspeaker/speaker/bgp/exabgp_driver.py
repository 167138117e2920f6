"""One exabgp process per speaker, driven through its process API, always converging on the desired state.

exabgp only talks to helper processes it starts itself; ours (``relay.py``) splices that helper's
stdin/stdout onto a Unix socket this driver listens on. Invariants:
- the driver holds the whole desired state (sessions + routes per peer) and what exabgp has
  acknowledged; every reconcile sends only the difference, batched;
- a restarted exabgp starts empty (DESIGN.md trap 5): on every new API connection the acknowledged
  state is forgotten and the full desired state replayed;
- peer changes go through a configuration reload (exabgp keeps unchanged peers and their routes);
  a peer whose settings changed is removed in one reload and re-added in the next, so its new
  session is fresh and its routes are replayed; every reload is confirmed with ``show neighbor json``
  (exabgp can drop a reload signal while it is flushing updates);
- every command names its neighbor; every ``done``/``error`` answer is drained in order;
- a hung exabgp (no answer for ``hang_after``) is reported through ``on_hung`` at once (the BGP
  manager silences BFD so routers drop the sessions) and killed/restarted after ``hung_restart``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lbspeaker.core.bgp.exabgp import (
    DEFAULT_BATCH,
    Message,
    Notification,
    PeerState,
    announce_commands,
    eor_command,
    render_config,
    teardown_command,
    withdraw_commands,
)
from lbspeaker.core.bgp.routes import Route, Session, diff_routes
from lbspeaker.core.service import IPAddress
from lbspeaker.speaker.bgp.exabgp_api import ApiChannel, DriverError

__all__ = ["DriverError", "ExabgpDriver", "PeerStatus"]

log = logging.getLogger(__name__)

RELAY = Path(__file__).with_name("relay.py")
DEFAULT_EXABGP = Path(sys.executable).with_name("exabgp")


@dataclass
class PeerStatus:
    """What a session looks like from the speaker: state, why, how many prefixes, last error."""

    peer: str
    address: IPAddress
    state: str = "configured"
    reason: str = ""
    last_error: str = ""
    prefixes: int = 0
    updates: int = 0
    since: float = field(default_factory=time.monotonic)

    @property
    def established(self) -> bool:
        """True while exabgp reports the session up."""
        return self.state == "up"


class ExabgpDriver:
    """Owns one exabgp process; ``apply`` makes it announce exactly the desired routes."""

    def __init__(
        self,
        *,
        workdir: Path,
        exabgp: Path = DEFAULT_EXABGP,
        command_prefix: Sequence[str] = (),
        batch: int = DEFAULT_BATCH,
        timeout: float = 30.0,
        on_status: Callable[[PeerStatus], None] | None = None,
        on_hung: Callable[[bool], None] | None = None,
        hang_after: float = 0.25,
        hung_restart: float = 10.0,
    ) -> None:
        self._dir = workdir
        self._exabgp = exabgp
        self._prefix = list(command_prefix)
        self._batch = batch
        self._timeout = timeout
        self._on_status = on_status
        self._sock = workdir / "api.sock"
        self._conf = workdir / "exabgp.conf"
        self._sessions: dict[IPAddress, Session] = {}
        self._routes: dict[IPAddress, frozenset[Route]] = {}
        self._running: dict[IPAddress, Session] = {}
        self._sent: dict[IPAddress, frozenset[Route]] = {}
        self._status: dict[IPAddress, PeerStatus] = {}
        self._eor_due: set[IPAddress] = set()
        self.on_hung = on_hung
        self._hung_restart = hung_restart
        self._hung_task: asyncio.Task[None] | None = None
        self._api = ApiChannel(
            timeout=timeout,
            on_message=self._on_message,
            on_connect=self._on_connect,
            on_hung=self._hung,
            hang_after=hang_after,
            progress=self._cpu_ticks,
        )
        self._lock = asyncio.Lock()
        self._proc: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._closed = False
        self.restarts = 0

    # ---- public -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen for the relay; exabgp itself starts with the first session."""
        self._dir.mkdir(parents=True, exist_ok=True)
        await self._api.serve(self._sock)

    async def stop(self, *, graceful_restart: bool = False) -> None:
        """Stop exabgp; with graceful_restart it is killed without a NOTIFICATION so routers keep routes."""
        self._closed = True
        self._stopping = True
        await self._kill(signal.SIGKILL if graceful_restart else signal.SIGTERM)
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        for t in list(self._tasks):
            t.cancel()
        await self._api.close()

    async def apply(self, sessions: Sequence[Session], routes: Mapping[str, frozenset[Route]]) -> None:
        """Set the desired sessions and per-peer-name routes, and wait until exabgp holds them."""
        self._sessions = {s.peer_address: s for s in sessions}
        self._routes = {s.peer_address: routes.get(s.peer, frozenset()) for s in sessions}
        for addr, s in self._sessions.items():
            st = self._status.get(addr)
            if st is None or st.peer != s.peer:
                self._status[addr] = PeerStatus(s.peer, addr)
        for addr in set(self._status) - set(self._sessions):
            del self._status[addr]
        await self.reconcile()

    async def teardown(self, address: IPAddress) -> None:
        """Close one session with a Cease (BFD said the path is down); exabgp reconnects by itself."""
        if self._api.connected.is_set() and address in self._running:
            await self._api.commands([teardown_command(address)])

    def status(self) -> dict[str, PeerStatus]:
        """Per peer name: the session's current status."""
        return {st.peer: st for st in self._status.values()}

    @property
    def pid(self) -> int | None:
        """The exabgp process id while it runs."""
        return self._proc.pid if self._proc is not None and self._proc.returncode is None else None

    # ---- reconcile ----------------------------------------------------------------------------

    async def reconcile(self) -> None:
        """Bring exabgp to the desired state (idempotent)."""
        async with self._lock:
            if self._closed:
                return
            if not self._sessions:
                await self._kill(signal.SIGTERM)
                self._running, self._sent = {}, {}
                return
            if self._supervisor is None or self._supervisor.done():
                self._write_conf(self._sessions.values())
                self._running = dict(self._sessions)
                self._stopping = False
                self._supervisor = asyncio.create_task(self._supervise(), name="exabgp-supervisor")
            await self._wait_connected()
            if self._running != self._sessions:
                await self._reload_peers()
            for addr in sorted(self._sessions, key=lambda a: (a.version, a)):
                await self._sync_peer(addr)

    async def _reload_peers(self) -> None:
        changed = {a for a, s in self._sessions.items() if a in self._running and self._running[a] != s}
        untouched = {a for a in self._sessions if a in self._running and a not in changed}
        for addr in set(self._sent) - untouched:
            del self._sent[addr]
        if changed:
            await self._reload([s for a, s in self._running.items() if a not in changed])
        await self._reload(list(self._sessions.values()))

    async def _reload(self, sessions: list[Session]) -> None:
        self._write_conf(sessions)
        want = {str(s.peer_address) for s in sessions}
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.returncode is None:
                self._proc.send_signal(signal.SIGUSR1)
            for _ in range(10):
                await asyncio.sleep(0.1)
                if await self._configured_peers() == want:
                    self._running = {s.peer_address: s for s in sessions}
                    return
        raise DriverError(f"reloading exabgp: peers {sorted(want)}: not confirmed within {self._timeout}s")

    async def _configured_peers(self) -> set[str] | None:
        try:
            ((ok, output),) = await self._api.commands(["show neighbor json"])
        except DriverError:
            return None
        for line in output:
            with contextlib.suppress(ValueError, AttributeError, TypeError):
                return {str(n["peer"]["address"]) for n in json.loads(line)}
        return set() if ok else None

    async def _sync_peer(self, addr: IPAddress) -> None:
        want = self._routes.get(addr, frozenset())
        withdraw, announce = diff_routes(self._sent.get(addr, frozenset()), want)
        lines = withdraw_commands(addr, withdraw, batch=self._batch)
        local = self._sessions[addr].local_address if addr in self._sessions else None
        lines += announce_commands(addr, announce, local=local, batch=self._batch)
        st = self._status[addr]
        if lines:
            results = await self._api.commands(lines)
            st.updates += len(lines)
            failed = [line for (ok, _), line in zip(results, lines, strict=True) if not ok]
            if failed:
                st.last_error = f"exabgp refused {len(failed)} command(s), first: {failed[0][:120]}"
                log.warning("bgp.command_refused peer=%s count=%d first=%r", st.peer, len(failed), failed[0][:120])
                self._sent.pop(addr, None)
                return
            self._sent[addr] = want
            st.prefixes = len(want)
        if addr in self._eor_due:
            self._eor_due.discard(addr)
            ((ok, _),) = await self._api.commands([eor_command(addr)])
            log.info("bgp.eor_sent peer=%s ok=%s", st.peer, ok)

    # ---- API channel --------------------------------------------------------------------------

    async def _wait_connected(self) -> None:
        try:
            await asyncio.wait_for(self._api.connected.wait(), self._timeout)
        except TimeoutError:
            raise DriverError(
                f"starting exabgp: {self._conf}: API helper not connected within {self._timeout}s"
            ) from None

    def _on_connect(self) -> None:
        self._sent = {}
        log.info("bgp.api_connected pid=%s", self.pid)
        self._spawn(self.reconcile(), "exabgp-replay")

    def _on_message(self, msg: Message) -> None:
        if isinstance(msg, PeerState):
            st = self._status.get(msg.peer)
            if st is None:
                return
            st.state, st.reason, st.since = msg.state, msg.reason, time.monotonic()
            if msg.state == "down" and msg.reason:
                st.last_error = msg.reason
            log.info("bgp.session peer=%s address=%s state=%s reason=%r", st.peer, msg.peer, msg.state, msg.reason)
            if self._on_status is not None:
                self._on_status(st)
        elif isinstance(msg, Notification):
            st = self._status.get(msg.peer)
            if st is not None:
                st.last_error = f"notification {msg.text}"

    def _cpu_ticks(self) -> int | None:
        """exabgp's CPU time so far (clock ticks), None when unknown."""
        pid = self.pid
        if pid is None:
            return None
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            return None

    def _hung(self, hung: bool) -> None:
        if self.on_hung is not None:
            self.on_hung(hung)
        if self._hung_task is not None:
            self._hung_task.cancel()
            self._hung_task = None
        if hung:
            self._hung_task = asyncio.create_task(self._kill_if_still_hung(), name="exabgp-hung-restart")

    async def _kill_if_still_hung(self) -> None:
        await asyncio.sleep(self._hung_restart)
        proc = self._proc
        if self._api.hung and proc is not None and proc.returncode is None:
            log.warning("bgp.exabgp_killed reason=hung seconds=%.1f", self._hung_restart)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()

    # ---- process ------------------------------------------------------------------------------

    def _write_conf(self, sessions: Iterable[Session]) -> None:
        text = render_config(sessions, process_command=[sys.executable, "-I", str(RELAY), str(self._sock)])
        tmp = self._conf.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(self._conf)

    async def _supervise(self) -> None:
        backoff = 0.2
        while not self._stopping and not self._closed:
            env = dict(os.environ)
            env.update(
                exabgp_daemon_user="root",
                exabgp_daemon_drop="false",
                exabgp_tcp_bind="",
                exabgp_api_ack="true",
                exabgp_log_destination="stdout",
            )
            env.setdefault("exabgp_log_level", "WARNING")
            logf = (self._dir / "exabgp.log").open("ab")
            try:
                self._proc = await asyncio.create_subprocess_exec(
                    *self._prefix, str(self._exabgp), str(self._conf),
                    env=env, stdin=asyncio.subprocess.DEVNULL, stdout=logf, stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,
                )  # fmt: skip
            finally:
                logf.close()
            started = time.monotonic()
            log.info("bgp.exabgp_started pid=%d", self._proc.pid)
            code = await self._proc.wait()
            if self._stopping or self._closed:
                return
            self.restarts += 1
            self._running = dict(self._running)
            backoff = 0.2 if time.monotonic() - started > 30 else min(backoff * 2, 10.0)
            log.warning("bgp.exabgp_exited code=%s restart_in=%.1fs", code, backoff)
            await asyncio.sleep(backoff)
            self._write_conf(self._running.values())

    async def _kill(self, sig: signal.Signals) -> None:
        proc = self._proc
        if self._supervisor is not None and not self._supervisor.done():
            self._stopping = True
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            await asyncio.wait_for(proc.wait(), 5.0)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("bgp.task_failed name=%s error=%s", task.get_name(), task.exception())

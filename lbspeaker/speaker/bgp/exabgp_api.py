"""The API channel to exabgp: ordered commands with their done/error answers, and a liveness watch.

exabgp answers every command, in order, with ``done`` or ``error`` (``api.ack``); other lines are
either JSON events (session state) or the output of the command being answered. Invariants:
- answers are matched to commands strictly in order; a lost connection fails every waiting one;
- exabgp is "hung" when the oldest unanswered command has waited ``hang_after`` seconds, nothing
  at all came back meanwhile and exabgp did no work (``progress``: its CPU time) either, so a
  slow but busy exabgp (10k routes on a loaded host) is never taken for a hung one;
- an idle channel is probed with a no-op (``#``) command, so a hang is seen even when the
  speaker has nothing to say; ``on_hung`` hears both edges;
- a stall of our own event loop is not blamed on exabgp (the watch restarts its clock after one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lbspeaker.core.bgp.exabgp import Ack, Message, parse_line
from lbspeaker.core.errors import LbError

log = logging.getLogger(__name__)

PROBE = "# lbspeaker liveness probe"


class DriverError(LbError):
    """exabgp could not be started, reached or brought to the desired state."""


@dataclass
class _Pending:
    line: str
    future: asyncio.Future[tuple[bool, list[str]]]
    sent_at: float
    output: list[str] = field(default_factory=list)


class ApiChannel:
    """Listens on a Unix socket for the relay; one live connection at a time."""

    def __init__(
        self,
        *,
        timeout: float,
        on_message: Callable[[Message], None],
        on_connect: Callable[[], None],
        on_hung: Callable[[bool], None] | None = None,
        hang_after: float = 0.25,
        probe_interval: float = 0.1,
        progress: Callable[[], int | None] | None = None,
    ) -> None:
        self._timeout = timeout
        self._on_message = on_message
        self._on_connect = on_connect
        self._on_hung = on_hung
        self._hang_after = hang_after
        self._probe_interval = probe_interval
        self._progress = progress
        self._last_progress: int | None = None
        self._pending: deque[_Pending] = deque()
        self._writer: asyncio.StreamWriter | None = None
        self._conns: set[asyncio.StreamWriter] = set()
        self._server: asyncio.AbstractServer | None = None
        self._watch: asyncio.Task[None] | None = None
        self._probes: set[asyncio.Task[None]] = set()
        self._handlers: set[asyncio.Task[object]] = set()
        self._last_rx = 0.0
        self.connected = asyncio.Event()
        self.hung = False

    async def serve(self, path: Path) -> None:
        """Listen on path and start the liveness watch."""
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        self._server = await asyncio.start_unix_server(self._handle_conn, path=str(path), limit=2**24)
        self._watch = asyncio.create_task(self._watchdog(), name="exabgp-watchdog")

    async def close(self) -> None:
        """Stop listening, close connections, fail waiting commands."""
        for t in [self._watch, *self._probes]:
            if t is not None:
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t
        if self._server is not None:
            self._server.close()
        for w in list(self._conns):
            w.transport.abort()  # never wait to flush toward a helper that may not read any more
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=2.0)
        if self._server is not None:
            await self._server.wait_closed()
        self._fail_pending("driver stopped")

    async def commands(self, lines: list[str]) -> list[tuple[bool, list[str]]]:
        """Send lines in one write; return (ok, output lines) per line, in order."""
        writer = self._writer
        if writer is None:
            raise DriverError("sending to exabgp: no API connection")
        loop = asyncio.get_running_loop()
        now = loop.time()
        items = [_Pending(line, loop.create_future(), now) for line in lines]
        self._pending.extend(items)
        writer.write("".join(p.line + "\n" for p in items).encode())
        try:
            async with asyncio.timeout(self._timeout):
                await writer.drain()
                return [await p.future for p in items]
        except (TimeoutError, ConnectionError) as exc:
            raise DriverError(f"sending to exabgp: {len(lines)} command(s): {exc or 'no answer'}") from exc

    async def _handle_conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._writer is not None:
            self._writer.transport.abort()
        self._fail_pending("API connection replaced")
        self._writer = writer
        self._conns.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        self._last_rx = asyncio.get_running_loop().time()
        self._set_hung(False)
        self.connected.set()
        self._on_connect()
        try:
            while line := await reader.readline():
                self._last_rx = asyncio.get_running_loop().time()
                self._set_hung(False)
                self._line(line.decode(errors="replace"))
        except ConnectionError:
            pass
        finally:
            self._conns.discard(writer)
            writer.close()
            if self._writer is writer:
                self._writer = None
                self.connected.clear()
                self._fail_pending("API connection closed")

    def _line(self, line: str) -> None:
        msg = parse_line(line)
        if isinstance(msg, Ack):
            if self._pending:
                p = self._pending.popleft()
                if not p.future.done():
                    p.future.set_result((msg.ok, p.output))
        elif msg is not None:
            self._on_message(msg)
        elif self._pending and line.strip():
            self._pending[0].output.append(line.strip())

    def _fail_pending(self, why: str) -> None:
        while self._pending:
            p = self._pending.popleft()
            if not p.future.done():
                p.future.set_exception(ConnectionError(why))

    def _set_hung(self, hung: bool) -> None:
        if hung == self.hung:
            return
        self.hung = hung
        log.warning("bgp.exabgp_hung hung=%s", hung)
        if self._on_hung is not None:
            self._on_hung(hung)

    async def _watchdog(self) -> None:
        loop = asyncio.get_running_loop()
        tick = self._probe_interval / 2
        last = loop.time()
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            stalled = now - last - tick > self._hang_after / 2
            last = now
            if stalled:
                # our own loop was busy: answers may sit unread in the socket, so judge nothing yet
                self._last_rx = now
                continue
            if self._writer is None:
                continue
            work = self._progress() if self._progress is not None else None
            if work is not None and work != self._last_progress:
                self._last_progress = work
                self._last_rx = now  # busy, not hung: a big batch can take longer than hang_after
                continue
            if self._pending:
                waited = now - max(self._last_rx, self._pending[0].sent_at)
                if waited > self._hang_after:
                    self._set_hung(True)
            elif now - self._last_rx >= self._probe_interval:
                # the answer (or its absence) is all the watch needs
                task = loop.create_task(self._probe(), name="exabgp-probe")
                self._probes.add(task)
                task.add_done_callback(self._probes.discard)

    async def _probe(self) -> None:
        with contextlib.suppress(DriverError):
            await self.commands([PROBE])

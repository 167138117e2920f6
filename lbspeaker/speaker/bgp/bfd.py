"""RFC 5881 single-hop BFD over UDP for the speaker's BGP peers, driving the pure RFC 5880 state machine.

One receive socket per family on port 3784 (TTL/hop limit checked to be 255, GTSM); one send
socket per session bound to the session's local address and a source port in 49152-65535, sent
with TTL 255. Everything runs in a dedicated thread with its own event loop, so a busy speaker loop (computing
10k routes, decoding a big watch event) never delays a packet: Python switches threads every few
ms, well inside a 100 ms interval. One task there runs every session's timers, sleeping until the
earliest packet or detection deadline.
Invariants: a packet that fails the checks or matches no session changes nothing; every state
transition is reported once, through ``on_transition``, in the event loop that called
``start`` (never in the BFD thread); while
``silent`` (exabgp hung) nothing is sent, so routers drop the BGP sessions on BFD.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import random
import socket
import struct
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from lbspeaker.core.bgp.bfd import ControlPacket, Drop, Session, State, Transition, decode, encode
from lbspeaker.core.bgp.bgpobjects import BFDProfile
from lbspeaker.core.errors import NetworkError
from lbspeaker.core.service import IPAddress

log = logging.getLogger(__name__)

CONTROL_PORT = 3784
SOURCE_PORTS = range(49152, 65536)
TTL = 255
IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)
IPV6_RECVHOPLIMIT = getattr(socket, "IPV6_RECVHOPLIMIT", 51)
IPV6_HOPLIMIT = getattr(socket, "IPV6_HOPLIMIT", 52)


@dataclass(frozen=True)
class BfdPeer:
    """One BFD session to run: the BGP peer, our address toward it, and its profile."""

    peer: IPAddress
    local: IPAddress
    profile: BFDProfile


@dataclass
class _Entry:
    spec: BfdPeer
    session: Session
    sock: socket.socket


def _ttl_of(ancdata: list[tuple[int, int, bytes]]) -> int | None:
    for level, kind, data in ancdata:
        if (level, kind) in ((socket.IPPROTO_IP, socket.IP_TTL), (socket.IPPROTO_IPV6, IPV6_HOPLIMIT)):
            return int(struct.unpack("i", data[:4])[0]) if len(data) >= 4 else data[0]
    return None


class BfdManager:
    """Runs the BFD sessions of this speaker in its own thread; reports transitions to the caller's loop."""

    def __init__(self, *, on_transition: Callable[[IPAddress, Transition], None] | None = None) -> None:
        self._on_transition = on_transition
        self._entries: dict[IPAddress, _Entry] = {}
        self._by_discr: dict[int, _Entry] = {}
        self._rx: list[socket.socket] = []
        self._wake: asyncio.Event | None = None
        self._halt: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._caller: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: NetworkError | None = None
        self._rng = random.SystemRandom()
        self.dropped: dict[str, int] = {}
        self.silent = False

    async def start(self) -> None:
        """Start the BFD thread: receive sockets (IPv4, and IPv6 when available) and the timers."""
        self._caller = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._thread_main, name="bfd", daemon=True)
        self._thread.start()
        if not await asyncio.to_thread(self._ready.wait, 10.0):
            raise NetworkError("starting BFD: thread not ready within 10s")
        if self._error is not None:
            await asyncio.to_thread(self._thread.join, 5.0)
            raise self._error

    async def stop(self) -> None:
        """Stop the thread and close every socket (sessions are not signalled AdminDown)."""
        if self._loop is not None and self._halt is not None and self._thread is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._halt.set)
            await asyncio.to_thread(self._thread.join, 5.0)

    def set_peers(self, peers: Iterable[BfdPeer]) -> None:
        """Run exactly these sessions; unchanged ones keep their state, changed ones restart."""
        self._call(self._set_peers, list(peers))

    def set_silent(self, silent: bool) -> None:
        """Stop (or resume) sending: the routers then see what a hung speaker looks like."""
        self._call(self._set_silent, silent)

    def _call(self, fn: Callable[..., None], *args: object) -> None:
        if self._loop is None:
            raise NetworkError("BFD is not started")
        self._loop.call_soon_threadsafe(fn, *args)

    # ---- BFD thread ---------------------------------------------------------------------------

    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._main(loop))
        finally:
            loop.close()

    async def _main(self, loop: asyncio.AbstractEventLoop) -> None:
        self._wake, self._halt = asyncio.Event(), asyncio.Event()
        try:
            self._open_rx(loop)
        except NetworkError as exc:
            self._error = exc
            self._close_all(loop)
            self._ready.set()
            return
        self._loop = loop
        self._ready.set()
        timers = asyncio.create_task(self._run(), name="bfd-timers")
        await self._halt.wait()
        timers.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await timers
        self._close_all(loop)

    def _open_rx(self, loop: asyncio.AbstractEventLoop) -> None:
        for family, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
            s = socket.socket(family, socket.SOCK_DGRAM)
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET:
                    s.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
                else:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
                s.setblocking(False)
                s.bind((addr, CONTROL_PORT))
            except OSError as exc:
                s.close()
                if family == socket.AF_INET6 and exc.errno in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
                    continue
                raise NetworkError(f"opening BFD socket: {addr}:{CONTROL_PORT}: {exc}") from exc
            loop.add_reader(s.fileno(), self._on_readable, s)
            self._rx.append(s)

    def _close_all(self, loop: asyncio.AbstractEventLoop) -> None:
        for s in self._rx:
            loop.remove_reader(s.fileno())
            s.close()
        self._rx = []
        for e in self._entries.values():
            e.sock.close()
        self._entries, self._by_discr = {}, {}

    def _set_peers(self, peers: list[BfdPeer]) -> None:
        wanted = {p.peer: p for p in peers}
        for addr in list(self._entries):
            if addr not in wanted or wanted[addr] != self._entries[addr].spec:
                e = self._entries.pop(addr)
                self._by_discr.pop(e.session.local_discr, None)
                e.sock.close()
        for addr, spec in wanted.items():
            if addr not in self._entries:
                try:
                    self._entries[addr] = self._open(spec)
                except NetworkError as exc:
                    log.warning("bfd.session_failed peer=%s error=%s", addr, exc)
        self._kick()

    def _set_silent(self, silent: bool) -> None:
        if silent != self.silent:
            log.warning("bfd.silent silent=%s", silent)
        self.silent = silent
        self._kick()

    def _kick(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def state(self, peer: IPAddress) -> State | None:
        """The session state toward a peer, None when no session runs."""
        e = self._entries.get(peer)
        return e.session.state if e else None

    def session(self, peer: IPAddress) -> Session | None:
        """The state machine of one session (for metrics: packets, transitions, timers)."""
        e = self._entries.get(peer)
        return e.session if e else None

    # ---- internals ----------------------------------------------------------------------------

    def _open(self, spec: BfdPeer) -> _Entry:
        family = socket.AF_INET if spec.peer.version == 4 else socket.AF_INET6
        s = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if family == socket.AF_INET:
                s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, TTL)
            else:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, TTL)
            s.setblocking(False)
            for port in self._rng.sample(SOURCE_PORTS, 64):
                try:
                    s.bind((str(spec.local), port))
                    break
                except OSError as exc:
                    if exc.errno != errno.EADDRINUSE:
                        raise
            else:
                raise OSError(errno.EADDRINUSE, "no free source port")
        except OSError as exc:
            s.close()
            raise NetworkError(f"opening BFD session socket: {spec.local} -> {spec.peer}: {exc}") from exc
        discr = 0
        while discr == 0 or discr in self._by_discr:
            discr = self._rng.getrandbits(32)
        p = spec.profile
        session = Session(
            local_discr=discr,
            desired_min_tx_us=p.transmit_interval_ms * 1000,
            required_min_rx_us=p.receive_interval_ms * 1000,
            detect_mult=p.detect_multiplier,
            passive=p.passive_mode,
            rng=random.Random(discr),
        )
        entry = _Entry(spec, session, s)
        self._by_discr[discr] = entry
        log.info("bfd.session_added peer=%s local=%s discr=%d", spec.peer, spec.local, discr)
        return entry

    def _drop(self, why: Drop | str) -> None:
        key = why.name if isinstance(why, Drop) else why
        self.dropped[key] = self.dropped.get(key, 0) + 1

    def _on_readable(self, s: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(64):
            try:
                data, anc, _flags, src = s.recvmsg(128, socket.CMSG_SPACE(4))
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("bfd.recv_failed error=%s", exc)
                return
            self._receive(data, anc, src[0], loop.time())

    def _receive(self, data: bytes, anc: list[tuple[int, int, bytes]], src: str, now: float) -> None:
        if _ttl_of(anc) != TTL:
            self._drop("TTL")
            return
        pkt = decode(data)
        if isinstance(pkt, Drop):
            self._drop(pkt)
            return
        entry = self._match(pkt, src)
        if entry is None:
            self._drop(Drop.NOT_OURS)
            return
        self._report(entry, entry.session.receive(pkt, now))
        self._kick()

    def _match(self, pkt: ControlPacket, src: str) -> _Entry | None:
        if pkt.your_discr:
            entry = self._by_discr.get(pkt.your_discr)
            return entry if entry is not None and str(entry.spec.peer) == src.split("%")[0] else None
        for entry in self._entries.values():
            if str(entry.spec.peer) == src.split("%")[0]:
                return entry
        return None

    def _report(self, entry: _Entry, tr: Transition | None) -> None:
        if tr is None:
            return
        log.info(
            "bfd.transition peer=%s old=%s new=%s diag=%s",
            entry.spec.peer,
            tr.old.name,
            tr.new.name,
            tr.diag.name,
        )
        if self._on_transition is not None and self._caller is not None:
            with contextlib.suppress(RuntimeError):  # the caller's loop is closing
                self._caller.call_soon_threadsafe(self._on_transition, entry.spec.peer, tr)

    def _send(self, entry: _Entry, now: float) -> None:
        try:
            entry.sock.sendto(encode(entry.session.build(now)), (str(entry.spec.peer), CONTROL_PORT))
        except OSError as exc:
            log.debug("bfd.send_failed peer=%s error=%s", entry.spec.peer, exc)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wake is not None
        while True:
            now = loop.time()
            wake = now + 1.0
            for entry in list(self._entries.values()):
                self._report(entry, entry.session.expire(now))
                if entry.session.wants_tx(now):
                    if self.silent:
                        entry.session.build(now)  # keep the schedule, send nothing
                    else:
                        self._send(entry, now)
                wake = min(wake, entry.session.next_wakeup())
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(wake - loop.time(), 0.0005))

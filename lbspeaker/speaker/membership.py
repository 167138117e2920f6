"""UDP transport for speaker membership: heartbeats to every peer, liveness from theirs.

Two threads per speaker. The tick thread signs one heartbeat per ``interval`` and sends it to
every peer, and wakes exactly when a peer's timeout runs out to report it dead. The receiver
thread blocks in ``recv`` (one GIL hand-over per datagram), authenticates each datagram
(``lbspeaker.core.membership``) and reports a peer that comes back at once. The socket is
bound in the network namespace current when ``start`` runs; one dual-stack socket serves IPv4
and IPv6 peers (IPv4-only when the kernel has no IPv6).

Defaults: ``DEFAULT_INTERVAL`` 25 ms, ``DEFAULT_TIMEOUT`` 125 ms (5 intervals). A dead peer is
reported 100-125 ms after it died (``bench/membership.py``, 2 cores: p50 112-119 ms, max 125 ms,
also with every core busy), leaving room under the 250 ms client failover target for the
takeover GARP, while a live peer must miss 4-5 heartbeats in a row to be declared dead. Fastest
supported tuning: 5 ms / 30 ms (reported after 27-30 ms).

Scheduling: on a busy node a sleeping thread of normal priority was measured waking up to
0.5 s late, so both threads ask for ``SCHED_RR`` (``RT_PRIORITY``, needs CAP_SYS_NICE; falls
back to nice -20, then to nothing, with a warning): no spurious death in 30 s idle or with every
core busy. Threads of the same process that keep the GIL busy still delay heartbeats (measured:
dozens of spurious deaths per 30 s with two spinning threads); ``MembershipProcess`` in
``membership_proc`` runs this class in a child process for that case. The receiver handles at
most a budget of datagrams per interval, so a flood cannot make a realtime thread spin.

Before it declares anyone dead the tick thread drains the socket itself, so a receiver that was
descheduled does not make live peers look dead. Heartbeats are dated when processed: a backlog
delays detection, it never causes a false death.

Invariants: ``alive()`` always contains the local node; ``on_change`` calls are serialised and
never made under the internal lock, and an exception in it is logged, never fatal; every loop
ends on ``stop()``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping

from lbspeaker.core.errors import NetworkError
from lbspeaker.core.membership import (
    MAX_DATAGRAM,
    Codec,
    Heartbeat,
    Liveness,
    Receiver,
    ReplayWindow,
    Verdict,
)
from lbspeaker.core.service import IPAddress

log = logging.getLogger(__name__)

DEFAULT_PORT = 7946
DEFAULT_INTERVAL = 0.025
DEFAULT_TIMEOUT = 0.125
RT_PRIORITY = 10  # SCHED_RR priority of the tick thread: above every SCHED_OTHER task, below kernel RT
_DSCP_CS6 = 0xC0  # network control: heartbeats go first on congested links


def check_timings(node: str, interval: float, timeout: float) -> None:
    """Raise ValueError unless 0 < interval < timeout."""
    if not 0 < interval < timeout:
        raise ValueError(f"creating membership of '{node}': interval {interval}: must be in (0, timeout)")


class Membership:
    """Heartbeat membership of one speaker; thread-safe."""

    def __init__(
        self,
        node: str,
        *,
        secret: bytes,
        on_change: Callable[[frozenset[str]], None],
        port: int = DEFAULT_PORT,
        interval: float = DEFAULT_INTERVAL,
        timeout: float = DEFAULT_TIMEOUT,
        previous_secrets: tuple[bytes, ...] = (),
        max_age: float = 30.0,
        realtime: bool = True,
    ) -> None:
        check_timings(node, interval, timeout)
        self.node = node
        self.port = port
        self.interval = interval
        self.timeout = timeout
        self.realtime = realtime
        self._on_change = on_change
        self._codec = Codec(secret, previous=previous_secrets)
        self._receiver = Receiver(node, self._codec, ReplayWindow(max_age_ns=int(max_age * 1e9)))
        self._liveness = Liveness(timeout=timeout)
        self._lock = threading.Lock()
        self._report_lock = threading.Lock()
        self._reported: frozenset[str] | None = None
        self._peers: dict[str, IPAddress] = {}
        self._stats: dict[str, int] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sock: socket.socket | None = None
        self._incarnation = time.time_ns()
        self._seq = 0

    def set_peers(self, peers: Mapping[str, IPAddress]) -> None:
        """Replace the peer set (name -> InternalIP); new peers get one timeout of benefit of the doubt."""
        now = time.monotonic()
        with self._lock:
            for gone in set(self._peers) - set(peers):
                self._liveness.forget(gone)
                self._receiver.window.forget(gone)
            for name in peers:
                if name != self.node and name not in self._peers:
                    self._liveness.expect(name, now)
            self._peers = {n: ip for n, ip in peers.items() if n != self.node}

    def start(self) -> None:
        """Bind the socket in the current network namespace and start both threads."""
        if self._threads:
            raise RuntimeError(f"starting membership of '{self.node}': already started")
        self._sock = _open_socket(self.port)
        self._threads = [
            threading.Thread(target=self._tick_loop, name=f"membership-tick-{self.node}", daemon=True),
            threading.Thread(target=self._recv_loop, name=f"membership-recv-{self.node}", daemon=True),
        ]
        for t in self._threads:
            t.start()
        log.info(
            "membership.started node=%s port=%d interval=%s timeout=%s",
            self.node,
            self.port,
            self.interval,
            self.timeout,
        )

    def alive(self) -> frozenset[str]:
        """The peers heard from within the timeout, plus this node."""
        with self._lock:
            return self._liveness.alive(time.monotonic()) | {self.node}

    def stats(self) -> dict[str, int]:
        """Counts of received datagrams by verdict, plus send errors."""
        with self._lock:
            return dict(self._stats)

    def stop(self) -> None:
        """Stop both threads and close the socket; idempotent."""
        self._stop.set()
        if self._sock is not None:
            with contextlib.suppress(OSError):  # wakes the blocked recv (Linux: even on UDP)
                self._sock.shutdown(socket.SHUT_RD)
        for t in self._threads:
            t.join(timeout=max(1.0, 4 * self.interval))
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    # -- threads ---------------------------------------------------------------------------
    # Per received datagram the receiver costs one GIL hand-over (one blocking recv), which is
    # what bounds its lag when other threads of the speaker keep the GIL busy.

    def _tick_loop(self) -> None:
        """Send on schedule; at each expiry time drain the socket, then report deaths."""
        sock = self._sock
        assert sock is not None
        if self.realtime:
            raise_priority(self.node)
        family = sock.family
        next_send = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_send:
                self._send(sock, family)
                next_send += self.interval
                if next_send <= now:  # we were descheduled: skip the missed beats, never burst
                    next_send = now + self.interval
            with self._lock:
                expiry = self._liveness.next_expiry(now)
            if expiry is not None and expiry <= now:
                self._drain(sock)  # a late receiver must not make live peers look dead
            self._report()  # deaths, and peer-set changes made by set_peers
            if expiry is not None and expiry <= now:
                continue
            wake = next_send if expiry is None else min(next_send, expiry)
            self._stop.wait(max(wake - time.monotonic(), 0.0))

    def _send(self, sock: socket.socket, family: int) -> None:
        self._seq += 1
        data = self._codec.encode(Heartbeat(self.node, self._incarnation, self._seq, time.time_ns()))
        with self._lock:
            targets = list(self._peers.items())
        for name, ip in targets:
            try:
                sock.sendto(data, socket.MSG_DONTWAIT, _sockaddr(ip, self.port, family))
            except OSError as err:
                self._count("send-error", f"peer={name} ip={ip} error={err}")

    def _recv_loop(self) -> None:
        sock = self._sock
        assert sock is not None
        if self.realtime:  # same priority as the tick thread: no GIL priority inversion between them
            raise_priority(self.node)
        self._report()  # the first report already includes the expected peers
        window_end, used = 0.0, 0
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= window_end:
                window_end, used = now + self.interval, 0
            elif used >= self._budget():  # a flood: leave the excess to the socket buffer, yield the CPU
                self._count("receive-budget-exceeded", f"budget={self._budget()} per interval")
                self._stop.wait(window_end - now)
                continue
            try:
                data = sock.recv(MAX_DATAGRAM + 1)
            except OSError as err:
                if self._stop.is_set():
                    return
                self._count("recv-error", f"error={err}")
                self._stop.wait(self.interval)
                continue
            if self._stop.is_set():
                return
            used += 1
            if self._handle(data):
                self._report()

    def _budget(self) -> int:
        """Datagrams handled per interval at most: 4 per peer plus slack (a realtime thread must not spin)."""
        return 4 * len(self._peers) + 64

    def _drain(self, sock: socket.socket) -> None:
        """Handle the queued datagrams without blocking, at most one budget's worth."""
        for _ in range(self._budget()):
            try:
                data = sock.recv(MAX_DATAGRAM + 1, socket.MSG_DONTWAIT)
            except OSError:  # BlockingIOError: queue empty
                return
            self._handle(data)

    def _report(self) -> None:
        """Call on_change if the alive set changed since the last call; serialised, never under _lock."""
        with self._report_lock:
            with self._lock:
                now = time.monotonic()
                change = self._liveness.update(now)
                alive = self._liveness.alive(now) | {self.node}
            if change is not None and change.restarted:
                log.info("membership.peer_restarted node=%s peers=%s", self.node, sorted(change.restarted))
            before = self._reported
            if alive == before:
                return
            self._reported = alive
            log.info(
                "membership.changed node=%s joined=%s left=%s",
                self.node,
                sorted(alive - (before or frozenset())),
                sorted((before or frozenset()) - alive),
            )
            try:
                self._on_change(alive)
            except Exception:  # a failing consumer must not stop failure detection
                log.exception("membership.on_change_failed node=%s", self.node)

    def _handle(self, data: bytes) -> bool:
        """Account for one datagram; True when it brought a peer back (or in) that was not alive."""
        revived = False
        with self._lock:
            dec = self._receiver.receive(data, now_ns=time.time_ns())
            hb = dec.heartbeat
            if dec.verdict is Verdict.ACCEPTED and hb is not None:
                if hb.sender not in self._peers:
                    self._window_undo(hb)
                    verdict = "unknown-peer"
                else:
                    now = time.monotonic()
                    revived = hb.sender not in self._liveness.alive(now)
                    self._liveness.heard(hb.sender, now, incarnation=hb.incarnation)
                    verdict = Verdict.ACCEPTED.value
            else:
                verdict = dec.verdict.value
            n = self._stats[verdict] = self._stats.get(verdict, 0) + 1
        if verdict != Verdict.ACCEPTED.value and n & (n - 1) == 0:  # log the 1st, 2nd, 4th, 8th, ...
            log.warning(
                "membership.rejected node=%s reason=%s count=%d sender=%s",
                self.node,
                verdict,
                n,
                hb.sender if hb else "?",
            )
        return revived

    def _window_undo(self, hb: Heartbeat) -> None:
        """A heartbeat from a node that is not (yet) a peer is not remembered."""
        self._receiver.window.forget(hb.sender)

    def _count(self, what: str, detail: str) -> None:
        with self._lock:
            n = self._stats[what] = self._stats.get(what, 0) + 1
        if n & (n - 1) == 0:
            log.warning("membership.%s node=%s count=%d %s", what, self.node, n, detail)


def raise_priority(node: str) -> None:
    """Best effort: SCHED_RR for the calling thread (Linux: per thread), else nice -20, else nothing."""
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(RT_PRIORITY))
        log.info("membership.priority node=%s policy=SCHED_RR priority=%d", node, RT_PRIORITY)
        return
    except OSError as err:
        rr_err = err
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), -20)
        log.warning("membership.priority node=%s policy=nice-20 sched_rr_error=%s", node, rr_err)
    except OSError as err:
        log.warning(
            "membership.priority node=%s policy=default error=%s: heartbeats may stall on a busy node "
            "(grant CAP_SYS_NICE)",
            node,
            err,
        )


def _open_socket(port: int) -> socket.socket:
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, _DSCP_CS6)
        addr: tuple[str, int] = ("::", port)
    except OSError:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        addr = ("0.0.0.0", port)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, _DSCP_CS6)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    try:
        sock.bind(addr)
    except OSError as err:
        sock.close()
        raise NetworkError(f"binding membership socket: udp port {port}: {err}") from err
    return sock


def _sockaddr(ip: IPAddress, port: int, family: int) -> tuple[str, int]:
    if family == socket.AF_INET6 and ip.version == 4:
        return (f"::ffff:{ip}", port)
    return (str(ip), port)

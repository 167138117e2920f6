"""The L2 responder: answers ARP and NDP for the VIPs this node owns and announces takeovers.

Why a thread and not asyncio: the speaker daemon calls it from a plain thread, and the hot path is a
tight recv/decide/send loop that gains nothing from an event loop.

Invariants:
- Every namespace-bound resource (packet socket, multicast socket, link probe) is opened in
  ``__init__``, in the caller's network namespace; all other methods may run on any thread.
- The owned set is replaced atomically: ``set_owned`` builds new immutable tables and swaps them in;
  the reader thread reads one table per frame. A released IP is never answered after ``set_owned``
  returns (except a frame already being decided at that instant).
- Newly owned IPs are announced (gratuitous ARP in request form / unsolicited NA with Override=1)
  at once and again at the offsets of ``ANNOUNCE_SCHEDULE``; an IP released meanwhile is skipped.
- Only the reader thread sends frames and writes the packet counters (single writer, no lost
  updates); ``set_owned`` wakes it through a pipe.
- NAs (solicited, unsolicited, DAD defence) use the VIP itself as IPv6 source, like the Linux kernel:
  clients such as ndisc6 drop an NA for a global target that comes from a link-local source, and
  the VIP never is tentative (the node's link-local is, for a second after link up).
- ``on_conflict`` runs on the reader thread, at most once per (IP, MAC) per ``CONFLICT_HOLDOFF_S``;
  its exceptions are logged, never propagated. Per-packet logs are DEBUG only.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import ipaddress
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Iterable

from lbspeaker.core.arp import ArpTable, Verdict, build_garp, decide_arp, format_mac, parse_arp
from lbspeaker.core.errors import NetworkError
from lbspeaker.core.ndp import NS_TYPE, NdpTable, decide_ndp, parse_ndp, solicited_node
from lbspeaker.core.service import IPAddress
from lbspeaker.speaker import rawsock
from lbspeaker.speaker.linkstate import LinkProbe

log = logging.getLogger(__name__)

ANNOUNCE_SCHEDULE = (0.0, 0.25, 0.5, 1.0, 2.0)
CONFLICT_HOLDOFF_S = 1.0
RECLAIM_SCHEDULE = (0.5, 1.5)
"""After another MAC claimed an IP we own (at most once per CONFLICT_HOLDOFF_S per MAC), announce it
again at these offsets: a node that claimed it during a membership flap GARPed clients to itself
and then stopped answering, so without a fresh GARP they would keep the wrong MAC until their
cache entry expires (~30 s)."""
_BATCH = 64
_IDLE_POLL_MS = 1000
_ETHERTYPE_ARP = b"\x08\x06"
_DROP_KEYS = {v: f"dropped_{v.value}" for v in Verdict if not v.answered and v is not Verdict.CONFLICT}
_COUNTERS = (
    "frames_received",
    "requests_received",
    "responses_sent",
    "gratuitous_sent",
    "conflicts",
    "send_errors",
    "socket_errors",
    "mcast_errors",
    *_DROP_KEYS.values(),
)

ConflictCallback = Callable[[IPAddress, str], None]

RT_PRIORITY = 5
"""SCHED_RR priority of the reader thread: an idle SCHED_OTHER thread takes ~200 us to wake on a
2-core node, a realtime one ~20 us. Below the membership heartbeats (10), so an ARP flood can
delay replies but never heartbeats; the kernel's RT throttling keeps a flood from starving the node."""


def _raise_priority(interface: str) -> None:
    """Best effort: SCHED_RR for the calling thread (needs CAP_SYS_NICE), else leave it as it is."""
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(RT_PRIORITY))
    except OSError as err:
        log.info("responder.priority interface=%s policy=default error=%s", interface, err)


class Responder:
    """Answers ARP/NDP on one interface for the owned IPs; see the module docstring."""

    def __init__(self, interface: str, *, announce_schedule: tuple[float, ...] = ANNOUNCE_SCHEDULE) -> None:
        self.interface = interface
        self.on_conflict: ConflictCallback | None = None
        self._schedule = announce_schedule
        self._link = LinkProbe(interface)
        try:
            self._sock = rawsock.open_packet_socket(interface)
        except NetworkError:
            self._link.close()
            raise
        self.mac: bytes = self._sock.getsockname()[4]
        self._mcast = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)  # a full pipe already means "wake up"
        self._lock = threading.Lock()
        self._owned: frozenset[IPAddress] = frozenset()
        self._groups: set[ipaddress.IPv6Address] = set()
        self._arp = ArpTable.build(self.mac, ())
        self._ndp = NdpTable.build(self.mac, ())
        self._pending: list[tuple[float, int, IPAddress]] = []
        self._seq = 0
        self._counters: dict[str, int] = dict.fromkeys(_COUNTERS, 0)
        self._mcast_errors = 0
        self._last_conflict: dict[tuple[IPAddress, str], float] = {}
        self._stopping = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"responder-{interface}", daemon=True)
        log.info("responder.open interface=%s mac=%s", interface, format_mac(self.mac))

    # -- public API -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background reader thread."""
        if self._closed:
            raise NetworkError(f"starting responder: interface '{self.interface}': already stopped")
        self._thread.start()

    def set_owned(self, ips: Iterable[IPAddress]) -> None:
        """Atomically replace the owned set; announce newly owned IPs, stop answering released ones."""
        wanted = frozenset(ips)
        with self._lock:
            added = wanted - self._owned
            removed = self._owned - wanted
            self._owned = wanted
            self._rebuild_tables()
            self._sync_groups(wanted)
            self._schedule_burst(added)
        if added or removed:
            log.info(
                "responder.owned interface=%s added=%s removed=%s",
                self.interface,
                ",".join(map(str, sorted(added, key=str))),
                ",".join(map(str, sorted(removed, key=str))),
            )
        self._wake()

    def announce(self) -> None:
        """Send the takeover burst again for every owned IP (e.g. after the link came back up)."""
        with self._lock:
            self._schedule_burst(self._owned)
        self._wake()

    @property
    def ifindex(self) -> int:
        """The index of the interface the sockets were bound to (a re-created link gets a new one)."""
        return self._link.ifindex

    @property
    def owned(self) -> frozenset[IPAddress]:
        """The IPs currently answered."""
        return self._owned

    @property
    def stats(self) -> dict[str, int]:
        """A snapshot of the counters (plus ``owned``, the number of IPs answered).

        ``requests_received`` counts requests for owned IPs (ARP requests and probes, NS and DAD),
        ``responses_sent`` the answers that left, ``gratuitous_sent`` GARPs and unsolicited NAs,
        ``conflicts`` frames claiming an owned IP from another MAC, ``dropped_<reason>`` the rest.
        """
        snap = dict(self._counters)
        snap["mcast_errors"] = self._mcast_errors
        snap["owned"] = len(self._owned)
        return snap

    @property
    def healthy(self) -> bool:
        """True while the socket is open, the reader thread runs and the link is up."""
        return not self._closed and self._thread.is_alive() and self._link.is_up()

    def stop(self) -> None:
        """Stop the thread and close every socket; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stopping.set()
        self._wake()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)
        for sock in (self._sock, self._mcast):
            sock.close()
        self._link.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        log.info("responder.stop interface=%s", self.interface)

    # -- tables and groups (caller holds the lock) --------------------------------------------------

    def _rebuild_tables(self) -> None:
        v4 = sorted(ip for ip in self._owned if isinstance(ip, ipaddress.IPv4Address))
        v6 = sorted(ip for ip in self._owned if isinstance(ip, ipaddress.IPv6Address))
        self._arp = ArpTable.build(self.mac, v4)
        self._ndp = NdpTable.build(self.mac, v6)  # NA source = the target, as the Linux kernel does

    def _schedule_burst(self, ips: Iterable[IPAddress]) -> None:
        now = time.monotonic()
        for ip in sorted(ips, key=lambda a: (a.version, int(a))):
            for offset in self._schedule:
                self._seq += 1
                heapq.heappush(self._pending, (now + offset, self._seq, ip))

    def _sync_groups(self, wanted: frozenset[IPAddress]) -> None:
        groups = {solicited_node(ip) for ip in wanted if isinstance(ip, ipaddress.IPv6Address)}
        for group in sorted(self._groups - groups):
            try:
                rawsock.leave_group(self._mcast, group, self._link.ifindex)
            except OSError as err:
                self._mcast_errors += 1
                log.warning("responder.mcast_leave_failed interface=%s group=%s error=%s", self.interface, group, err)
            self._groups.discard(group)
        for group in sorted(groups - self._groups):
            try:
                rawsock.join_group(self._mcast, group, self._link.ifindex)
            except OSError as err:
                if err.errno != errno.EADDRINUSE:
                    self._mcast_errors += 1
                    log.warning(
                        "responder.mcast_join_failed interface=%s group=%s error=%s",
                        self.interface,
                        group,
                        err,
                    )
                    continue
            self._groups.add(group)

    # -- reader thread ------------------------------------------------------------------------------

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def _run(self) -> None:
        _raise_priority(self.interface)
        poller = select.poll()
        poller.register(self._sock.fileno(), select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        sock_fd = self._sock.fileno()
        try:
            while not self._stopping.is_set():
                for fd, _ in poller.poll(self._poll_timeout_ms()):
                    if fd == self._wake_r:
                        os.read(self._wake_r, 4096)
                    elif fd == sock_fd:
                        self._drain()
                self._announce_due()
        except Exception:
            log.exception("responder.thread_failed interface=%s", self.interface)
            raise

    def _poll_timeout_ms(self) -> int:
        pending = self._pending
        if not pending:
            return _IDLE_POLL_MS
        return max(0, min(_IDLE_POLL_MS, int((pending[0][0] - time.monotonic()) * 1000) + 1))

    def _drain(self) -> None:
        sock = self._sock
        counters = self._counters
        debug = log.isEnabledFor(logging.DEBUG)
        for _ in range(_BATCH):
            try:
                frame = sock.recv(rawsock.SNAPLEN)
            except BlockingIOError:
                return
            except OSError as err:  # e.g. ENETDOWN once when the link goes down
                counters["socket_errors"] += 1
                log.warning("responder.recv_failed interface=%s error=%s", self.interface, err)
                return
            counters["frames_received"] += 1
            if frame[12:14] == _ETHERTYPE_ARP:
                verdict, reply = decide_arp(frame, self._arp)
            else:
                verdict, reply = decide_ndp(frame, self._ndp)
            if reply is not None:
                counters["requests_received"] += 1
                try:
                    sock.send(reply)
                    counters["responses_sent"] += 1
                except OSError as err:
                    counters["send_errors"] += 1
                    log.debug("responder.send_failed interface=%s error=%s", self.interface, err)
            elif verdict is Verdict.CONFLICT:
                counters["conflicts"] += 1
                self._report_conflict(frame)
            else:
                counters[_DROP_KEYS[verdict]] += 1
            if debug:
                log.debug(
                    "responder.frame interface=%s verdict=%s len=%d",
                    self.interface,
                    verdict.value,
                    len(frame),
                )

    def _announce_due(self) -> None:
        now = time.monotonic()
        while self._pending and self._pending[0][0] <= now:
            with self._lock:
                if not self._pending or self._pending[0][0] > now:
                    break
                _, _, ip = heapq.heappop(self._pending)
                if ip not in self._owned:
                    continue
                if isinstance(ip, ipaddress.IPv4Address):
                    frame = build_garp(self.mac, ip)
                else:
                    frame = self._ndp.templates[ip.packed].unsolicited
            try:
                self._sock.send(frame)
                self._counters["gratuitous_sent"] += 1
                log.debug("responder.announce interface=%s ip=%s", self.interface, ip)
            except OSError as err:
                self._counters["send_errors"] += 1
                log.warning("responder.announce_failed interface=%s ip=%s error=%s", self.interface, ip, err)

    def _report_conflict(self, frame: bytes) -> None:
        ip: IPAddress
        if frame[12:14] == _ETHERTYPE_ARP:
            pkt = parse_arp(frame)
            if pkt is None:
                return
            ip, mac = pkt.sender_ip, format_mac(pkt.sender_mac)
        else:
            npkt = parse_ndp(frame)
            if npkt is None:
                return
            ip = npkt.src if npkt.type == NS_TYPE else npkt.target
            mac = format_mac(npkt.lladdr if npkt.lladdr is not None else npkt.eth_src)
        now = time.monotonic()
        key = (ip, mac)
        if now - self._last_conflict.get(key, -CONFLICT_HOLDOFF_S) < CONFLICT_HOLDOFF_S:
            return
        self._last_conflict[key] = now
        if ip in self._owned:  # reclaim: undo a transient claim's GARP in the clients' caches
            with self._lock:
                for offset in RECLAIM_SCHEDULE:
                    self._seq += 1
                    heapq.heappush(self._pending, (now + offset, self._seq, ip))
        log.warning(
            "responder.conflict interface=%s ip=%s other_mac=%s our_mac=%s",
            self.interface,
            ip,
            mac,
            format_mac(self.mac),
        )
        callback = self.on_conflict
        if callback is not None:
            try:
                callback(ip, mac)
            except Exception:
                log.exception("responder.conflict_callback_failed interface=%s ip=%s", self.interface, ip)

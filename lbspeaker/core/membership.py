"""Speaker membership: the authenticated heartbeat codec, its replay window and the liveness table.

Why: failover must not wait for Node leases (40 s) nor stop when the API server is down. Every
speaker sends a small heartbeat to every other speaker every ``interval`` and declares a peer
dead when nothing valid arrived from it for ``timeout``. The API's Node/EndpointSlice state
stays the slow, authoritative input; this is the fast one. The transport lives in
``lbspeaker.speaker.membership``; this module is pure (every time is passed in).

Wire format (network byte order), one UDP datagram, at most 314 bytes::

    magic "LH" | version u8 = 1 | kind u8 = 1 | incarnation u64 | seq u64 | timestamp_ns u64
    | name_len u8 | name (UTF-8, 1..253 bytes) | HMAC-SHA256(secret, all preceding bytes)

Invariants:

- ``Codec.decode`` never raises on input bytes: garbage yields ``Verdict.MALFORMED``,
  ``BAD_VERSION`` or ``BAD_MAC``. The MAC is checked (constant time) before any field is trusted.
- ``ReplayWindow`` accepts a heartbeat only if its timestamp is within ``max_age`` of the
  receiver's clock and it is newer than the last accepted one from that sender: a higher seq
  within the same incarnation, or a higher incarnation (a restart; incarnation = start time in
  ns). A captured packet therefore counts once per receiver, and never after ``max_age``.
  State of a sender silent for longer than ``max_age`` is forgotten, so a sender restarted
  with its clock stepped back is accepted again after at most ``max_age``.
- Nodes' clocks must agree within ``max_age`` (default 30 s; Kubernetes needs synced clocks
  anyway). A node skewed further is rejected as ``TOO_OLD``/``FROM_FUTURE`` and so looks dead:
  the transport logs these rejections by reason so the cause is visible.
- ``Liveness`` answers from the last accepted heartbeat per node: alive while
  ``now < last + timeout``. A peer restarting (new incarnation) is alive again with its first
  heartbeat. ``expect`` gives a newly listed peer one ``timeout`` of benefit of the doubt, so a
  speaker that just started does not see itself alone and grab every IP.

Split brain (documented behaviour, not prevented): heartbeats are one-way and there is no
quorum. If the network partitions, each side sees the other dead and elects among its own
nodes, so an IP can be announced on both sides; each side's clients reach their side's node,
which is the most useful outcome while the link is cut. A node that can send but not receive
believes every peer dead and announces every IP it is eligible for, while its peers keep their
own winners. Both are exposed: duplicate-announcer detection (another MAC answering for an
owned IP) raises a Warning Event and a metric, and the API slow path marks an isolated node
NotReady (its Node lease expires), which removes it from every election on the nodes that
still see the API. GARP fights are bounded: takeover announcements are a fixed short burst
per takeover, never a loop, and ownership changes only when the inputs change. When the
partition heals, heartbeats resume within one interval and every node converges on the same
winners again.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import struct
from collections.abc import Sequence
from dataclasses import dataclass

MAGIC = b"LH"
VERSION = 1
KIND_HEARTBEAT = 1
MAC_LEN = 32
MAX_NAME = 253
_HEAD = struct.Struct("!2sBBQQQB")  # magic, version, kind, incarnation, seq, timestamp_ns, name_len
MAX_DATAGRAM = _HEAD.size + MAX_NAME + MAC_LEN
_U64 = 2**64


class Verdict(enum.Enum):
    """What the receiver made of a datagram."""

    ACCEPTED = "accepted"
    MALFORMED = "malformed"
    BAD_VERSION = "bad-version"
    BAD_MAC = "bad-mac"
    TOO_OLD = "too-old"
    FROM_FUTURE = "from-future"
    REPLAYED = "replayed"
    SELF = "self"


@dataclass(frozen=True)
class Heartbeat:
    """One heartbeat as sent by a speaker."""

    sender: str
    incarnation: int
    seq: int
    timestamp_ns: int


@dataclass(frozen=True)
class Decoded:
    """The result of decoding: a heartbeat when ``verdict`` is ACCEPTED, else None."""

    verdict: Verdict
    heartbeat: Heartbeat | None = None


class Codec:
    """Encodes heartbeats with the current secret; verifies with it or any previous one (rotation)."""

    def __init__(self, secret: bytes, *, previous: Sequence[bytes] = ()) -> None:
        keys = [secret, *previous]
        if not all(isinstance(k, bytes) and k for k in keys):
            raise ValueError("creating heartbeat codec: secret: must be non-empty bytes")
        self._macs = [hmac.new(k, digestmod=hashlib.sha256) for k in keys]

    def encode(self, hb: Heartbeat) -> bytes:
        """The signed datagram for hb."""
        name = hb.sender.encode("utf-8")
        if not 1 <= len(name) <= MAX_NAME:
            raise ValueError(f"encoding heartbeat of '{hb.sender}': sender: must be 1..{MAX_NAME} UTF-8 bytes")
        for field, value in (
            ("incarnation", hb.incarnation),
            ("seq", hb.seq),
            ("timestamp_ns", hb.timestamp_ns),
        ):
            if not 0 <= value < _U64:
                raise ValueError(f"encoding heartbeat of '{hb.sender}': {field}: {value} outside 0..2**64-1")
        body = _HEAD.pack(MAGIC, VERSION, KIND_HEARTBEAT, hb.incarnation, hb.seq, hb.timestamp_ns, len(name)) + name
        mac = self._macs[0].copy()
        mac.update(body)
        return body + mac.digest()

    def decode(self, data: bytes) -> Decoded:
        """Parse and authenticate a datagram; never raises on its content."""
        if len(data) < _HEAD.size + 1 + MAC_LEN or len(data) > MAX_DATAGRAM:
            return Decoded(Verdict.MALFORMED)
        magic, version, kind, inc, seq, ts, name_len = _HEAD.unpack_from(data)
        if magic != MAGIC:
            return Decoded(Verdict.MALFORMED)
        if version != VERSION or kind != KIND_HEARTBEAT:
            return Decoded(Verdict.BAD_VERSION)
        end = _HEAD.size + name_len
        if name_len == 0 or len(data) != end + MAC_LEN:
            return Decoded(Verdict.MALFORMED)
        body, tag = bytes(data[:end]), bytes(data[end:])
        if not any(self._verify(m, body, tag) for m in self._macs):
            return Decoded(Verdict.BAD_MAC)
        try:
            sender = body[_HEAD.size :].decode("utf-8")
        except UnicodeDecodeError:
            return Decoded(Verdict.MALFORMED)
        return Decoded(Verdict.ACCEPTED, Heartbeat(sender, inc, seq, ts))

    @staticmethod
    def _verify(mac: hmac.HMAC, body: bytes, tag: bytes) -> bool:
        m = mac.copy()
        m.update(body)
        return hmac.compare_digest(m.digest(), tag)


@dataclass
class _Seen:
    incarnation: int
    seq: int
    accepted_ns: int


class ReplayWindow:
    """Per-sender freshness and ordering check: each captured heartbeat is accepted at most once."""

    def __init__(self, *, max_age_ns: int = 30_000_000_000) -> None:
        if max_age_ns <= 0:
            raise ValueError(f"creating replay window: max_age_ns: {max_age_ns} must be above 0")
        self.max_age_ns = max_age_ns
        self._seen: dict[str, _Seen] = {}

    def admit(self, hb: Heartbeat, *, now_ns: int) -> Verdict:
        """ACCEPTED (and remembered) or the reason the heartbeat is refused."""
        if hb.timestamp_ns < now_ns - self.max_age_ns:
            return Verdict.TOO_OLD
        if hb.timestamp_ns > now_ns + self.max_age_ns:
            return Verdict.FROM_FUTURE
        seen = self._seen.get(hb.sender)
        fresh = (
            seen is None
            or now_ns - seen.accepted_ns > self.max_age_ns
            or hb.incarnation > seen.incarnation
            or (hb.incarnation == seen.incarnation and hb.seq > seen.seq)
        )
        if not fresh:
            return Verdict.REPLAYED
        self._seen[hb.sender] = _Seen(hb.incarnation, hb.seq, now_ns)
        return Verdict.ACCEPTED

    def forget(self, sender: str) -> None:
        """Drop what is known about sender."""
        self._seen.pop(sender, None)


class Receiver:
    """Codec + replay window for one local node: bytes in, a verdict (and heartbeat) out."""

    def __init__(self, node: str, codec: Codec, window: ReplayWindow) -> None:
        self.node = node
        self.codec = codec
        self.window = window

    def receive(self, data: bytes, *, now_ns: int) -> Decoded:
        """Decode, drop our own heartbeats, then apply the replay window."""
        dec = self.codec.decode(data)
        if dec.heartbeat is None:
            return dec
        if dec.heartbeat.sender == self.node:
            return Decoded(Verdict.SELF, dec.heartbeat)
        verdict = self.window.admit(dec.heartbeat, now_ns=now_ns)
        return Decoded(verdict, dec.heartbeat)


@dataclass(frozen=True)
class Change:
    """A change of the alive set since the last report."""

    alive: frozenset[str]
    joined: frozenset[str]
    left: frozenset[str]
    restarted: frozenset[str]


class Liveness:
    """Last-heard table: who is alive at a given monotonic time, and what changed."""

    def __init__(self, *, timeout: float) -> None:
        if timeout <= 0:
            raise ValueError(f"creating liveness table: timeout: {timeout} must be above 0")
        self.timeout = timeout
        self._last: dict[str, float] = {}
        self._inc: dict[str, int] = {}
        self._reported: frozenset[str] = frozenset()
        self._restarted: set[str] = set()

    def heard(self, node: str, now: float, *, incarnation: int) -> None:
        """Record an accepted heartbeat from node."""
        old = self._inc.get(node)
        if old is not None and old != incarnation:
            self._restarted.add(node)
        self._inc[node] = incarnation
        self._last[node] = max(now, self._last.get(node, now))

    def expect(self, node: str, now: float) -> None:
        """Give a newly listed node one timeout to be heard before it counts as dead."""
        self._last.setdefault(node, now)

    def forget(self, node: str) -> None:
        """Remove node from the table (no longer a peer)."""
        self._last.pop(node, None)
        self._inc.pop(node, None)
        self._restarted.discard(node)

    def alive(self, now: float) -> frozenset[str]:
        """Nodes heard from within the timeout."""
        return frozenset(n for n, t in self._last.items() if now < t + self.timeout)

    def next_expiry(self, now: float) -> float | None:
        """The earliest time at which a currently alive node would turn dead, if any."""
        times = [t + self.timeout for t in self._last.values() if now < t + self.timeout]
        return min(times) if times else None

    def update(self, now: float) -> Change | None:
        """The change since the previous call, or None when nothing changed."""
        alive = self.alive(now)
        restarted = frozenset(self._restarted & alive)
        self._restarted.clear()
        if alive == self._reported and not restarted:
            return None
        change = Change(alive, alive - self._reported, self._reported - alive, restarted)
        self._reported = alive
        return change

"""Address ranges: parsing the pool notations, counting addresses and finding free ones.

Invariant: an ``IPRange`` holds addresses of one family with ``first <= last``. Nothing here
ever iterates over the addresses of a range, so an IPv6 /48 costs the same as a /30.
"""

from __future__ import annotations

import heapq
import ipaddress
from dataclasses import dataclass

from lbspeaker.core.service import IPAddress


@dataclass(frozen=True, order=True)
class IPRange:
    """An inclusive range of addresses of one family."""

    first: IPAddress
    last: IPAddress

    def __contains__(self, ip: object) -> bool:
        return (
            isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address)
            and ip.version == self.first.version
            and int(self.first) <= int(ip) <= int(self.last)
        )

    @property
    def size(self) -> int:
        """How many addresses the range holds."""
        return int(self.last) - int(self.first) + 1

    @property
    def version(self) -> int:
        """4 or 6."""
        return self.first.version

    def overlaps(self, other: IPRange) -> bool:
        """True when the two ranges share at least one address."""
        return (
            self.version == other.version and int(self.first) <= int(other.last) and int(other.first) <= int(self.last)
        )

    def __str__(self) -> str:
        if self.first == self.last:
            return str(self.first)
        return f"{self.first}-{self.last}"


class RangeSyntaxError(ValueError):
    """One address entry could not be parsed; the message is the cause only."""


def parse_range(text: str) -> IPRange:
    """Parse ``CIDR``, ``a-b`` or a single address; raises RangeSyntaxError with the cause."""
    s = text.strip()
    if not s:
        raise RangeSyntaxError("empty address")
    if "/" in s:
        try:
            net = ipaddress.ip_network(s, strict=True)
        except ValueError as err:
            loose = _loose_network(s)
            if loose is not None:
                raise RangeSyntaxError(f"host bits set, did you mean '{loose}'?") from err
            raise RangeSyntaxError(f"not a CIDR: {err}") from err
        return IPRange(net.network_address, net.broadcast_address)
    if "-" in s:
        a, _, b = s.partition("-")
        first, last = _addr(a.strip()), _addr(b.strip())
        if first.version != last.version:
            raise RangeSyntaxError("start and end are of different IP families")
        if int(first) > int(last):
            raise RangeSyntaxError("start after end")
        return IPRange(first, last)
    ip = _addr(s)
    return IPRange(ip, ip)


def _addr(s: str) -> IPAddress:
    try:
        return ipaddress.ip_address(s)
    except ValueError as err:
        raise RangeSyntaxError(f"'{s}' is not an IP address") from err


def _loose_network(s: str) -> str | None:
    try:
        return str(ipaddress.ip_network(s, strict=False))
    except ValueError:
        return None


def is_buggy(value: int, version: int) -> bool:
    """True for IPv4 addresses ending in .0 or .255 (avoidBuggyIPs skips them)."""
    return version == 4 and (value & 0xFF) in (0, 255)


def count_buggy(first: int, last: int, version: int) -> int:
    """How many .0/.255 addresses lie in [first, last], computed, not enumerated."""
    if version != 4 or first > last:
        return 0

    def upto(n: int) -> int:  # count of x in [0, n] with x % 256 in (0, 255)
        if n < 0:
            return 0
        full, rest = divmod(n + 1, 256)
        return 2 * full + (1 if rest >= 1 else 0)

    return upto(last) - upto(first - 1)


def next_good(value: int, version: int, avoid_buggy: bool) -> int:
    """The smallest value >= value that avoidBuggyIPs allows."""
    if avoid_buggy and version == 4:
        low = value & 0xFF
        if low == 0:
            return value + 1
        if low == 255:
            return value + 2
    return value


@dataclass(frozen=True)
class PoolUsage:
    """Counts of one range, or of one pool and family (IPv6 totals can exceed int64; callers cap)."""

    assigned: int
    available: int
    total: int


class RangeCursor:
    """Used offsets of one range and the cursor that finds the next free one.

    A forward-only frontier (every address below it is used or queued in ``holes``) and a heap of
    released addresses make finding the lowest free address O(log n) amortised.
    """

    __slots__ = ("avoid", "frontier", "hi", "holes", "lo", "rng", "used", "version")

    def __init__(self, rng: IPRange, *, avoid_buggy: bool) -> None:
        self.rng = rng
        self.lo, self.hi, self.version = int(rng.first), int(rng.last), rng.version
        self.avoid = avoid_buggy
        self.used: set[int] = set()
        self.frontier = self.lo
        self.holes: list[int] = []

    def peek(self) -> int | None:
        """The lowest known free address (not taken until ``used`` gets it)."""
        while self.holes:
            h = self.holes[0]
            if h in self.used or (self.avoid and is_buggy(h, self.version)):
                heapq.heappop(self.holes)
                continue
            return h
        f = next_good(self.frontier, self.version, self.avoid)
        while f <= self.hi and f in self.used:
            f = next_good(f + 1, self.version, self.avoid)
        self.frontier = f
        return f if f <= self.hi else None

    def free(self, value: int) -> None:
        """Forget that value is used."""
        self.used.discard(value)
        if value < self.frontier:
            heapq.heappush(self.holes, value)

    def usage(self) -> PoolUsage:
        """Assigned, available and total counts of this range."""
        buggy = count_buggy(self.lo, self.hi, self.version) if self.avoid else 0
        total = self.rng.size - buggy
        assigned = len(self.used)
        used_good = assigned - (sum(1 for v in self.used if is_buggy(v, self.version)) if self.avoid else 0)
        return PoolUsage(assigned=assigned, available=total - used_good, total=total)

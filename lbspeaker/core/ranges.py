"""Address ranges: parsing the pool notations and counting addresses without enumerating them.

Invariant: an ``IPRange`` holds addresses of one family with ``first <= last``. Nothing here
ever iterates over the addresses of a range, so an IPv6 /48 costs the same as a /30.
"""

from __future__ import annotations

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

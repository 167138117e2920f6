"""Small value parsers shared by the BGP config objects: durations, ASNs, communities.

Invariant: every parser either returns a valid value or raises ``ValueError`` whose text is the
*cause* part of a ``ConfigError`` message; callers add the object and field path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}

MAX_ASN = 2**32 - 1


@dataclass(frozen=True, order=True)
class StandardCommunity:
    """An RFC 1997 community ``asn:value`` (16 bits each)."""

    high: int
    low: int

    def __str__(self) -> str:
        return f"{self.high}:{self.low}"


@dataclass(frozen=True, order=True)
class LargeCommunity:
    """An RFC 8092 large community ``global:local1:local2`` (32 bits each)."""

    global_admin: int
    local1: int
    local2: int

    def __str__(self) -> str:
        return f"{self.global_admin}:{self.local1}:{self.local2}"


CommunityValue = StandardCommunity | LargeCommunity


def parse_duration_ms(raw: Any) -> int:
    """Parse a Go-style duration ("90s", "1m30s", "300ms") or a whole number of seconds into ms."""
    if isinstance(raw, bool):
        raise ValueError(f"'{raw}' is not a duration")
    if isinstance(raw, int):
        if raw < 0:
            raise ValueError(f"'{raw}' is negative")
        return raw * 1000
    if not isinstance(raw, str) or not raw:
        raise ValueError(f"'{raw}' is not a duration (like '90s' or '300ms')")
    if raw == "0":
        return 0
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(raw):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_MS[m.group(2)]
        pos = m.end()
    if pos != len(raw):
        raise ValueError(f"'{raw}' is not a duration (like '90s' or '300ms')")
    return round(total)


def parse_asn(raw: Any) -> int:
    """Parse a 4-byte ASN (1..4294967295)."""
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ValueError(f"'{raw}' is not an integer")
    if not 1 <= raw <= MAX_ASN:
        raise ValueError(f"'{raw}' is outside 1-{MAX_ASN}")
    return raw


def _uint(text: str, bits: int, whole: str) -> int:
    if not text.isdigit():
        raise ValueError(f"'{whole}': '{text}' is not a number")
    value = int(text)
    if value >= 2**bits:
        raise ValueError(f"'{whole}': '{text}' does not fit in {bits} bits")
    return value


def parse_community(raw: Any) -> CommunityValue:
    """Parse ``65000:100`` (standard) or ``large:1:2:3`` (large); names are resolved by the caller."""
    if not isinstance(raw, str):
        raise ValueError(f"'{raw}' is not a string")
    parts = raw.split(":")
    if parts[0] == "large":
        if len(parts) != 4:
            raise ValueError(f"'{raw}': a large community is 'large:global:local1:local2'")
        return LargeCommunity(*(_uint(p, 32, raw) for p in parts[1:]))
    if len(parts) != 2:
        raise ValueError(f"'{raw}' is neither 'asn:value' nor 'large:global:local1:local2'")
    return StandardCommunity(_uint(parts[0], 16, raw), _uint(parts[1], 16, raw))


def looks_like_community(raw: str) -> bool:
    """True when raw is written as a community value rather than as a Community name."""
    return raw.startswith("large:") or bool(re.fullmatch(r"[^:]*:[^:]*", raw))


def community_key(c: CommunityValue) -> tuple[int, ...]:
    """Sort key: standard communities first, then large, each in numeric order."""
    if isinstance(c, StandardCommunity):
        return (0, c.high, c.low)
    return (1, c.global_admin, c.local1, c.local2)

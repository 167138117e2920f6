"""The validated configuration model, built by one parser from the raw config objects.

Invariant: a ``Config`` is internally consistent (no overlapping pools, every reference
resolved). An invalid object is reported as a ``ConfigError`` and left out; consumers keep
running on the last good config.

TYPES ONLY FOR NOW: the parser (``parse_config``) is being written; fields may be added with
defaults, never removed or renamed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

from lbspeaker.core.errors import ConfigError
from lbspeaker.core.labels import LabelSelector
from lbspeaker.core.service import IPAddress

GROUP = "lbspeaker.io"
VERSION = "v1beta1"


@dataclass(frozen=True)
class IPRange:
    """An inclusive range of addresses of one family."""

    first: IPAddress
    last: IPAddress

    def __contains__(self, ip: object) -> bool:
        return (
            isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address)
            and ip.version == self.first.version
            and self.first <= ip <= self.last
        )

    @property
    def size(self) -> int:
        """How many addresses the range holds."""
        return int(self.last) - int(self.first) + 1


@dataclass(frozen=True)
class Pool:
    """One IPAddressPool."""

    name: str
    ranges: tuple[IPRange, ...]
    auto_assign: bool = True
    avoid_buggy_ips: bool = False
    labels: tuple[tuple[str, str], ...] = ()

    def contains(self, ip: IPAddress) -> bool:
        """True when ip lies in one of the pool's ranges."""
        return any(ip in r for r in self.ranges)


@dataclass(frozen=True)
class L2Advertisement:
    """One L2Advertisement, with its pool references resolved to pool names."""

    name: str
    pools: frozenset[str]
    node_selectors: tuple[LabelSelector, ...] = ()
    interfaces: tuple[str, ...] = ()
    service_selectors: tuple[LabelSelector, ...] = ()


@dataclass(frozen=True)
class Config:
    """Everything the controller and the speakers act on."""

    pools: Mapping[str, Pool] = field(default_factory=dict)
    l2_advertisements: tuple[L2Advertisement, ...] = ()

    def pool_of(self, ip: IPAddress) -> Pool | None:
        """The pool that holds ip, if any."""
        for p in self.pools.values():
            if p.contains(ip):
                return p
        return None


@dataclass(frozen=True)
class ParseResult:
    """A config plus the errors of the objects that were left out."""

    config: Config
    errors: tuple[ConfigError, ...] = ()

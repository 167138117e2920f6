"""The validated BGP objects: frozen values the parser produces and every consumer reads.

Invariant: values here are already checked (timers, families, references); nothing downstream
re-validates or reads the raw dicts.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from lbspeaker.core.bgp.values import CommunityValue
from lbspeaker.core.config import Pool
from lbspeaker.core.labels import LabelSelector
from lbspeaker.core.service import IPAddress


@dataclass(frozen=True)
class SecretRef:
    """A reference to the Kubernetes Secret holding a TCP-MD5 password (key ``password``)."""

    namespace: str
    name: str


@dataclass(frozen=True)
class BFDProfile:
    """One BFDProfile: RFC 5880 intervals in milliseconds."""

    name: str
    receive_interval_ms: int = 300
    transmit_interval_ms: int = 300
    detect_multiplier: int = 3
    passive_mode: bool = False
    minimum_ttl: int = 254


@dataclass(frozen=True)
class BGPPeer:
    """One BGPPeer: a router that speakers on matching nodes open a session to."""

    name: str
    my_asn: int
    peer_asn: int
    peer_address: IPAddress
    source_address: IPAddress | None = None
    peer_port: int = 179
    hold_time_s: int = 90
    keepalive_time_s: int = 30
    connect_time_s: int = 120
    router_id: ipaddress.IPv4Address | None = None
    password: str = ""
    password_secret: SecretRef | None = None
    ebgp_multihop: bool = False
    node_selectors: tuple[LabelSelector, ...] = ()
    bfd_profile: str = ""
    enable_graceful_restart: bool = False

    @property
    def ibgp(self) -> bool:
        """True when both ends share one ASN."""
        return self.my_asn == self.peer_asn

    def selects_node(self, labels: Mapping[str, str]) -> bool:
        """True when this node should peer (no selector = every node)."""
        return not self.node_selectors or any(s.matches(labels) for s in self.node_selectors)


@dataclass(frozen=True)
class BGPAdvertisement:
    """One BGPAdvertisement: which pools are announced, how, to whom and from where."""

    name: str
    pools: frozenset[str] = frozenset()
    pool_selectors: tuple[LabelSelector, ...] = ()
    aggregation_length: int = 32
    aggregation_length_v6: int = 128
    local_pref: int | None = None
    communities: tuple[CommunityValue, ...] = ()
    peers: frozenset[str] = frozenset()
    node_selectors: tuple[LabelSelector, ...] = ()

    def selects_pool(self, pool: Pool) -> bool:
        """True when the pool is named or matched by a selector (neither given = every pool)."""
        if not self.pools and not self.pool_selectors:
            return True
        labels = dict(pool.labels)
        return pool.name in self.pools or any(s.matches(labels) for s in self.pool_selectors)

    def selects_node(self, labels: Mapping[str, str]) -> bool:
        """True when nodes with these labels announce (no selector = every node)."""
        return not self.node_selectors or any(s.matches(labels) for s in self.node_selectors)

    def selects_peer(self, name: str) -> bool:
        """True when routes go to this peer (no list = every peer)."""
        return not self.peers or name in self.peers

    def prefix_length(self, ip: IPAddress) -> int:
        """The aggregation length that applies to ip's family."""
        return self.aggregation_length if ip.version == 4 else self.aggregation_length_v6

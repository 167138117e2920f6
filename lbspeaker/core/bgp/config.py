"""Parse BGPPeer, BGPAdvertisement, BFDProfile and Community objects into one validated BGP model.

Invariants of a ``BGPConfig``: every peer's BFD profile exists, every advertisement's peer and
community names resolve, aggregation lengths never cover addresses outside the pools they serve.
An invalid object is left out and reported as a ``ConfigError`` naming the object and the field
path; the rest of the config stays usable (consumers keep the last good state for the bad one).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lbspeaker.core.bgp.bgpobjects import (
    BFDProfile,
    BGPAdvertisement,
    BGPPeer,
    SecretRef,
)
from lbspeaker.core.bgp.values import (
    CommunityValue,
    community_key,
    looks_like_community,
    parse_asn,
    parse_community,
    parse_duration_ms,
)
from lbspeaker.core.config import Pool
from lbspeaker.core.errors import ConfigError
from lbspeaker.core.labels import LabelSelector, parse_selector
from lbspeaker.core.service import IPAddress

__all__ = [
    "BFDProfile",
    "BGPAdvertisement",
    "BGPConfig",
    "BGPParseResult",
    "BGPPeer",
    "SecretRef",
    "parse_bgp",
]

MAX_MD5_PASSWORD = 80
DEFAULT_HOLD_S = 90


@dataclass(frozen=True)
class BGPConfig:
    """The validated BGP part of the configuration."""

    peers: Mapping[str, BGPPeer] = field(default_factory=dict)
    advertisements: tuple[BGPAdvertisement, ...] = ()
    bfd_profiles: Mapping[str, BFDProfile] = field(default_factory=dict)
    communities: Mapping[str, CommunityValue] = field(default_factory=dict)


@dataclass(frozen=True)
class BGPParseResult:
    """A BGP config plus the errors of the objects that were left out."""

    config: BGPConfig
    errors: tuple[ConfigError, ...] = ()


class _Obj:
    """One raw object being parsed: its kind, key and spec, and an error factory."""

    def __init__(self, kind: str, raw: Mapping[str, Any]) -> None:
        meta = raw.get("metadata") or {}
        self.kind = kind
        self.name = str(meta.get("name") or "")
        self.namespace = str(meta.get("namespace") or "")
        self.key = f"{self.namespace}/{self.name}" if self.namespace else self.name
        spec = raw.get("spec")
        self.spec: Mapping[str, Any] = spec if isinstance(spec, Mapping) else {}
        if not self.name:
            raise self.err("metadata.name", "missing")
        if spec is not None and not isinstance(spec, Mapping):
            raise self.err("spec", "must be an object")

    def err(self, path: str, cause: str) -> ConfigError:
        return ConfigError(self.kind, self.key, path, cause)

    def get(self, key: str, default: Any = None) -> Any:
        value = self.spec.get(key)
        return default if value is None else value

    def int_in(self, key: str, lo: int, hi: int, default: int) -> int:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise self.err(f"spec.{key}", f"'{value}' must be an integer in {lo}-{hi}")
        return value

    def boolean(self, key: str) -> bool:
        value = self.get(key, False)
        if not isinstance(value, bool):
            raise self.err(f"spec.{key}", f"'{value}' must be true or false")
        return value

    def string(self, key: str) -> str:
        value = self.get(key, "")
        if not isinstance(value, str):
            raise self.err(f"spec.{key}", f"'{value}' must be a string")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.err(f"spec.{key}", "must be a list of non-empty strings")
        return tuple(value)

    def ip(self, key: str) -> IPAddress | None:
        value = self.get(key)
        if value is None or value == "":
            return None
        try:
            return ipaddress.ip_address(str(value))
        except ValueError:
            raise self.err(f"spec.{key}", f"'{value}' is not an IP address") from None

    def duration_ms(self, key: str) -> int | None:
        value = self.get(key)
        if value is None:
            return None
        try:
            return parse_duration_ms(value)
        except ValueError as exc:
            raise self.err(f"spec.{key}", str(exc)) from None

    def selectors(self, key: str) -> tuple[LabelSelector, ...]:
        value = self.get(key, [])
        if not isinstance(value, list):
            raise self.err(f"spec.{key}", "must be a list of label selectors")
        return tuple(
            parse_selector(s, kind=self.kind, name=self.key, field=f"spec.{key}[{i}]") for i, s in enumerate(value)
        )


def _parse_communities(raws: Iterable[Mapping[str, Any]], errors: list[ConfigError]) -> dict[str, CommunityValue]:
    out: dict[str, CommunityValue] = {}
    for raw in raws:
        try:
            o = _Obj("Community", raw)
            entries = o.get("communities", [])
            if not isinstance(entries, list):
                raise o.err("spec.communities", "must be a list")
            mine: dict[str, CommunityValue] = {}
            for i, e in enumerate(entries):
                path = f"spec.communities[{i}]"
                if not isinstance(e, Mapping) or not isinstance(e.get("name"), str) or not e["name"]:
                    raise o.err(f"{path}.name", "must be a non-empty string")
                name = e["name"]
                if looks_like_community(name):
                    raise o.err(f"{path}.name", f"'{name}' looks like a community value, not a name")
                if name in out or name in mine:
                    raise o.err(f"{path}.name", f"'{name}' is defined twice")
                try:
                    mine[name] = parse_community(e.get("value"))
                except ValueError as exc:
                    raise o.err(f"{path}.value", str(exc)) from None
            out.update(mine)
        except ConfigError as exc:
            errors.append(exc)
    return out


def parse_bfd_profile(raw: Mapping[str, Any]) -> BFDProfile:
    """Parse one BFDProfile."""
    o = _Obj("BFDProfile", raw)
    return BFDProfile(
        name=o.name,
        receive_interval_ms=o.int_in("receiveInterval", 10, 60_000, 300),
        transmit_interval_ms=o.int_in("transmitInterval", 10, 60_000, 300),
        detect_multiplier=o.int_in("detectMultiplier", 2, 255, 3),
        passive_mode=o.boolean("passiveMode"),
        minimum_ttl=o.int_in("minimumTtl", 1, 254, 254),
    )


def _hold_keepalive(o: _Obj) -> tuple[int, int]:
    hold_ms = o.duration_ms("holdTime")
    hold_ms = DEFAULT_HOLD_S * 1000 if hold_ms is None else hold_ms
    if hold_ms % 1000:
        raise o.err("spec.holdTime", f"'{o.get('holdTime')}' must be a whole number of seconds")
    hold = hold_ms // 1000
    if hold != 0 and not 3 <= hold <= 65535:
        raise o.err("spec.holdTime", f"'{o.get('holdTime')}' must be 0 or between 3s and 65535s")
    ka_ms = o.duration_ms("keepaliveTime")
    if ka_ms is None:
        return hold, hold // 3
    if ka_ms % 1000:
        raise o.err("spec.keepaliveTime", f"'{o.get('keepaliveTime')}' must be a whole number of seconds")
    keepalive = ka_ms // 1000
    if keepalive > hold:
        raise o.err("spec.keepaliveTime", f"'{o.get('keepaliveTime')}' must not exceed holdTime ({hold}s)")
    if hold and not keepalive:
        raise o.err("spec.keepaliveTime", "must be above 0 when holdTime is not 0")
    return hold, keepalive


def _password(o: _Obj) -> tuple[str, SecretRef | None]:
    password = o.string("password")
    raw_ref = o.get("passwordSecret")
    if password and raw_ref is not None:
        raise o.err("spec.passwordSecret", "password and passwordSecret are mutually exclusive")
    if len(password) > MAX_MD5_PASSWORD:
        raise o.err("spec.password", f"longer than {MAX_MD5_PASSWORD} characters (TCP MD5 limit)")
    if raw_ref is None:
        return password, None
    if not isinstance(raw_ref, Mapping) or not isinstance(raw_ref.get("name"), str) or not raw_ref["name"]:
        raise o.err("spec.passwordSecret.name", "must be a non-empty string")
    ns = raw_ref.get("namespace") or o.namespace
    if not isinstance(ns, str):
        raise o.err("spec.passwordSecret.namespace", "must be a string")
    return "", SecretRef(namespace=ns, name=raw_ref["name"])


def parse_peer(raw: Mapping[str, Any], *, bfd_profiles: Mapping[str, BFDProfile]) -> BGPPeer:
    """Parse one BGPPeer; bfd_profiles are the valid profiles its bfdProfile may name."""
    o = _Obj("BGPPeer", raw)
    asns: dict[str, int] = {}
    for key in ("myASN", "peerASN"):
        if o.get(key) is None:
            raise o.err(f"spec.{key}", "missing")
        try:
            asns[key] = parse_asn(o.get(key))
        except ValueError as exc:
            raise o.err(f"spec.{key}", str(exc)) from None
    peer_address = o.ip("peerAddress")
    if peer_address is None:
        raise o.err("spec.peerAddress", "missing")
    source = o.ip("sourceAddress")
    if source is not None and source.version != peer_address.version:
        raise o.err("spec.sourceAddress", f"'{source}' is not of the family of peerAddress '{peer_address}'")
    router_id = o.ip("routerID")
    if router_id is not None and not isinstance(router_id, ipaddress.IPv4Address):
        raise o.err("spec.routerID", f"'{router_id}' must be an IPv4 address")
    hold, keepalive = _hold_keepalive(o)
    connect_ms = o.duration_ms("connectTime")
    if connect_ms is not None and not 1000 <= connect_ms <= 65535 * 1000:
        raise o.err("spec.connectTime", f"'{o.get('connectTime')}' must be between 1s and 65535s")
    multihop = o.boolean("ebgpMultiHop")
    if multihop and asns["myASN"] == asns["peerASN"]:
        raise o.err("spec.ebgpMultiHop", f"only for eBGP, but myASN and peerASN are both {asns['myASN']}")
    bfd = o.string("bfdProfile")
    if bfd and bfd not in bfd_profiles:
        raise o.err("spec.bfdProfile", f"BFDProfile '{bfd}' does not exist or is invalid")
    password, secret = _password(o)
    return BGPPeer(
        name=o.name,
        my_asn=asns["myASN"],
        peer_asn=asns["peerASN"],
        peer_address=peer_address,
        source_address=source,
        peer_port=o.int_in("peerPort", 1, 65535, 179),
        hold_time_s=hold,
        keepalive_time_s=keepalive,
        connect_time_s=(connect_ms or 120_000) // 1000,
        router_id=router_id,
        password=password,
        password_secret=secret,
        ebgp_multihop=multihop,
        node_selectors=o.selectors("nodeSelectors"),
        bfd_profile=bfd,
        enable_graceful_restart=o.boolean("enableGracefulRestart"),
    )


def _check_aggregation(o: _Obj, pools: Iterable[Pool], v4: int, v6: int) -> None:
    for pool in pools:
        for r in pool.ranges:
            length, key = (v4, "aggregationLength") if r.first.version == 4 else (v6, "aggregationLengthV6")
            for net in ipaddress.summarize_address_range(r.first, r.last):
                if length < net.prefixlen:
                    raise o.err(
                        f"spec.{key}",
                        f"{length} would cover addresses outside IPAddressPool '{pool.name}' ('{net}')",
                    )


def parse_advertisement(
    raw: Mapping[str, Any],
    *,
    communities: Mapping[str, CommunityValue],
    peers: Mapping[str, BGPPeer],
    pools: Mapping[str, Pool] | None = None,
) -> BGPAdvertisement:
    """Parse one BGPAdvertisement; names resolve against the valid communities, peers and pools."""
    o = _Obj("BGPAdvertisement", raw)
    v4 = o.int_in("aggregationLength", 0, 32, 32)
    v6 = o.int_in("aggregationLengthV6", 0, 128, 128)
    local_pref: int | None = None
    if o.get("localPref") is not None:
        local_pref = o.int_in("localPref", 0, 2**32 - 1, 0)
    values: list[CommunityValue] = []
    for i, c in enumerate(o.strings("communities")):
        try:
            values.append(parse_community(c) if looks_like_community(c) else communities[c])
        except ValueError as exc:
            raise o.err(f"spec.communities[{i}]", str(exc)) from None
        except KeyError:
            raise o.err(f"spec.communities[{i}]", f"no Community defines '{c}'") from None
    peer_names = o.strings("peers")
    for i, p in enumerate(peer_names):
        if p not in peers:
            raise o.err(f"spec.peers[{i}]", f"BGPPeer '{p}' does not exist or is invalid")
    pool_names = o.strings("ipAddressPools")
    pool_selectors = o.selectors("ipAddressPoolSelectors")
    adv = BGPAdvertisement(
        name=o.name,
        pools=frozenset(pool_names),
        pool_selectors=pool_selectors,
        aggregation_length=v4,
        aggregation_length_v6=v6,
        local_pref=local_pref,
        communities=tuple(sorted(set(values), key=community_key)),
        peers=frozenset(peer_names),
        node_selectors=o.selectors("nodeSelectors"),
    )
    if pools is not None:
        for i, p in enumerate(pool_names):
            if p not in pools:
                raise o.err(f"spec.ipAddressPools[{i}]", f"IPAddressPool '{p}' does not exist or is invalid")
        _check_aggregation(o, (p for p in pools.values() if adv.selects_pool(p)), v4, v6)
    return adv


def parse_bgp(
    *,
    peers: Iterable[Mapping[str, Any]] = (),
    advertisements: Iterable[Mapping[str, Any]] = (),
    bfd_profiles: Iterable[Mapping[str, Any]] = (),
    communities: Iterable[Mapping[str, Any]] = (),
    pools: Mapping[str, Pool] | None = None,
) -> BGPParseResult:
    """Parse every BGP object; invalid ones are left out and reported, references checked."""
    errors: list[ConfigError] = []
    comms = _parse_communities(communities, errors)
    profiles: dict[str, BFDProfile] = {}
    for raw in bfd_profiles:
        try:
            prof = parse_bfd_profile(raw)
            profiles[prof.name] = prof
        except ConfigError as exc:
            errors.append(exc)
    parsed_peers: dict[str, BGPPeer] = {}
    for raw in peers:
        try:
            peer = parse_peer(raw, bfd_profiles=profiles)
            parsed_peers[peer.name] = peer
        except ConfigError as exc:
            errors.append(exc)
    advs: list[BGPAdvertisement] = []
    for raw in advertisements:
        try:
            advs.append(parse_advertisement(raw, communities=comms, peers=parsed_peers, pools=pools))
        except ConfigError as exc:
            errors.append(exc)
    config = BGPConfig(
        peers=parsed_peers,
        advertisements=tuple(sorted(advs, key=lambda a: a.name)),
        bfd_profiles=profiles,
        communities=comms,
    )
    return BGPParseResult(config, tuple(errors))

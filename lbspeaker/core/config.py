"""The validated configuration model, built by one parser from the raw config objects.

Invariant: a ``Config`` is internally consistent (no overlapping ranges inside or across pools,
every pool reference resolved). An invalid object is reported as a ``ConfigError`` and left out;
consumers keep running on the last good config.

Decisions (documented for users in the CRD descriptions):
- Overlap across pools: the older pool (``metadata.creationTimestamp``, then name) is kept, the
  newer one is rejected with an error naming both, so an edit never steals addresses in use.
- An L2Advertisement naming a pool that does not exist (or was rejected) stays valid, as in
  MetalLB; the missing name is ignored and reported as a warning.
- An L2Advertisement with neither ``ipAddressPools`` nor ``ipAddressPoolSelectors`` covers all pools.
- Pool order, as in MetalLB's ``Allocate``: pools scoped by ``serviceAllocation`` (namespaces,
  selectors or a priority) that allow the Service come first, by priority, 0 or absent last; the
  unscoped pools after them. Ties go by name (MetalLB leaves them to map order).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lbspeaker.core.errors import ConfigError
from lbspeaker.core.labels import LabelSelector, parse_selector
from lbspeaker.core.ranges import IPRange, RangeSyntaxError, is_buggy, parse_range
from lbspeaker.core.service import IPAddress

__all__ = ["GROUP", "VERSION", "Config", "IPRange", "L2Advertisement", "ParseResult", "Pool", "parse_config"]

GROUP = "lbspeaker.io"
VERSION = "v1beta1"
POOL_KIND = "IPAddressPool"
L2_KIND = "L2Advertisement"


@dataclass(frozen=True)
class Pool:
    """One IPAddressPool."""

    name: str
    ranges: tuple[IPRange, ...]
    auto_assign: bool = True
    avoid_buggy_ips: bool = False
    labels: tuple[tuple[str, str], ...] = ()
    priority: int | None = None
    """serviceAllocation.priority; lower is tried first, None after all others."""
    namespaces: frozenset[str] = frozenset()
    """serviceAllocation.namespaces; empty means no restriction by name."""
    namespace_selectors: tuple[LabelSelector, ...] = ()
    """serviceAllocation.namespaceSelectors; empty means no restriction by namespace labels."""
    service_selectors: tuple[LabelSelector, ...] = ()
    """serviceAllocation.serviceSelectors; empty means no restriction by service labels."""

    def contains(self, ip: IPAddress) -> bool:
        """True when ip lies in one of the pool's ranges."""
        return any(ip in r for r in self.ranges)

    @property
    def families(self) -> frozenset[int]:
        """The IP versions (4, 6) the pool has addresses for."""
        return frozenset(r.version for r in self.ranges)

    @property
    def label_map(self) -> dict[str, str]:
        """Labels as a dict (for ipAddressPoolSelectors)."""
        return dict(self.labels)

    def allows(self, namespace: str, *, namespace_labels: Mapping[str, str], service_labels: Mapping[str, str]) -> bool:
        """True when serviceAllocation lets a Service of that namespace and labels use the pool."""
        if self.namespaces or self.namespace_selectors:
            by_name = namespace in self.namespaces
            by_sel = any(s.matches(namespace_labels) for s in self.namespace_selectors)
            if not (by_name or by_sel):
                return False
        return not self.service_selectors or any(s.matches(service_labels) for s in self.service_selectors)

    def forbids(self, ip: IPAddress) -> bool:
        """True when avoidBuggyIPs rules ip out (an IPv4 address ending in .0 or .255)."""
        return self.avoid_buggy_ips and is_buggy(int(ip), ip.version)

    @property
    def scoped(self) -> bool:
        """True when serviceAllocation restricts or ranks the pool (MetalLB's "pinned" pools)."""
        return bool(self.namespaces or self.namespace_selectors or self.service_selectors) or self.priority is not None

    @property
    def sort_key(self) -> tuple[bool, bool, int, str]:
        """Order in which pools are tried: scoped ones by priority (none last), then unscoped, by name."""
        return (not self.scoped, self.priority is None, self.priority or 0, self.name)


@dataclass(frozen=True)
class L2Advertisement:
    """One L2Advertisement, with its pool references resolved to pool names."""

    name: str
    pools: frozenset[str]
    node_selectors: tuple[LabelSelector, ...] = ()
    interfaces: tuple[str, ...] = ()
    service_selectors: tuple[LabelSelector, ...] = ()
    pool_selectors: tuple[LabelSelector, ...] = ()
    """ipAddressPoolSelectors as written (already folded into ``pools``)."""
    preferred_nodes: tuple[tuple[LabelSelector, float], ...] = ()
    """preferredNodes (lbspeaker extension): election weight for nodes matching each selector."""


@dataclass(frozen=True)
class Config:
    """Everything the controller and the speakers act on."""

    pools: Mapping[str, Pool] = field(default_factory=dict)
    l2_advertisements: tuple[L2Advertisement, ...] = ()
    namespace_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Labels per namespace name, for serviceAllocation.namespaceSelectors."""

    def pool_of(self, ip: IPAddress) -> Pool | None:
        """The pool that holds ip, if any."""
        for p in self.pools.values():
            if p.contains(ip):
                return p
        return None

    def ordered_pools(self) -> list[Pool]:
        """Pools in the order allocation tries them."""
        return sorted(self.pools.values(), key=lambda p: p.sort_key)


@dataclass(frozen=True)
class ParseResult:
    """A config plus the errors of the objects that were left out."""

    config: Config
    errors: tuple[ConfigError, ...] = ()
    warnings: tuple[ConfigError, ...] = ()
    """Problems that did not invalidate an object (e.g. a reference to a missing pool)."""

    @property
    def ok(self) -> bool:
        """True when every object was valid."""
        return not self.errors


def _meta(obj: Mapping[str, Any]) -> tuple[str, str, Mapping[str, Any]]:
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    return str(meta.get("name") or ""), str(meta.get("creationTimestamp") or ""), meta


def _labels(meta: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    raw = meta.get("labels")
    return tuple(sorted((str(k), str(v)) for k, v in raw.items())) if isinstance(raw, dict) else ()


def _str_list(spec: Mapping[str, Any], key: str, *, kind: str, name: str) -> tuple[str, ...]:
    raw = spec.get(key)
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(x, str) and x for x in raw):
        raise ConfigError(kind, name, f"spec.{key}", "must be a list of non-empty strings")
    return tuple(raw)


def _selectors(
    spec: Mapping[str, Any], key: str, *, kind: str, name: str, prefix: str = "spec"
) -> tuple[LabelSelector, ...]:
    raw = spec.get(key)
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(kind, name, f"{prefix}.{key}", "must be a list of label selectors")
    return tuple(parse_selector(s, kind=kind, name=name, field=f"{prefix}.{key}[{i}]") for i, s in enumerate(raw))


def _bool(spec: Mapping[str, Any], key: str, default: bool, *, kind: str, name: str) -> bool:
    v = spec.get(key, default)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise ConfigError(kind, name, f"spec.{key}", f"must be true or false, got '{v}'")
    return v


def _spec(obj: Mapping[str, Any], *, kind: str, name: str) -> Mapping[str, Any]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        raise ConfigError(kind, name, "spec", "must be an object")
    return spec


def _parse_pool(obj: Mapping[str, Any], name: str) -> Pool:
    kind = POOL_KIND
    spec = _spec(obj, kind=kind, name=name)
    raw = spec.get("addresses")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(kind, name, "spec.addresses", "must be a non-empty list of CIDRs, ranges or addresses")
    ranges: list[tuple[IPRange, int]] = []
    for i, text in enumerate(raw):
        if not isinstance(text, str):
            raise ConfigError(kind, name, f"spec.addresses[{i}]", f"must be a string, got '{text}'")
        try:
            ranges.append((parse_range(text), i))
        except RangeSyntaxError as err:
            raise ConfigError(kind, name, f"spec.addresses[{i}]", f"'{text}': {err}") from err
    ordered = sorted(ranges, key=lambda t: (t[0].version, int(t[0].first)))
    for (a, ia), (b, ib) in itertools.pairwise(ordered):
        if a.overlaps(b):
            lo, hi = sorted((ia, ib))
            raise ConfigError(
                kind,
                name,
                f"spec.addresses[{hi}]",
                f"'{raw[hi]}' overlaps '{raw[lo]}' (spec.addresses[{lo}])",
            )
    alloc = spec.get("serviceAllocation") or {}
    if not isinstance(alloc, dict):
        raise ConfigError(kind, name, "spec.serviceAllocation", "must be an object")
    prio = alloc.get("priority")
    if prio is not None and (isinstance(prio, bool) or not isinstance(prio, int) or prio < 0):
        raise ConfigError(kind, name, "spec.serviceAllocation.priority", f"must be an integer >= 0, got '{prio}'")
    sa = "spec.serviceAllocation"
    namespaces = alloc.get("namespaces") or []
    if not isinstance(namespaces, list) or not all(isinstance(n, str) and n for n in namespaces):
        raise ConfigError(kind, name, f"{sa}.namespaces", "must be a list of namespace names")
    return Pool(
        name=name,
        ranges=tuple(r for r, _ in ranges),
        auto_assign=_bool(spec, "autoAssign", True, kind=kind, name=name),
        avoid_buggy_ips=_bool(spec, "avoidBuggyIPs", False, kind=kind, name=name),
        labels=_labels(_meta(obj)[2]),
        priority=prio or None,
        namespaces=frozenset(namespaces),
        namespace_selectors=_selectors(alloc, "namespaceSelectors", kind=kind, name=name, prefix=sa),
        service_selectors=_selectors(alloc, "serviceSelectors", kind=kind, name=name, prefix=sa),
    )


class _Claims:
    """Accepted ranges across pools, sorted, for O(log n) overlap checks."""

    def __init__(self) -> None:
        self._keys: list[tuple[int, int]] = []
        self._items: list[tuple[IPRange, str, str]] = []

    def find_overlap(self, r: IPRange) -> tuple[IPRange, str, str] | None:
        i = bisect.bisect_right(self._keys, (r.version, int(r.last)))
        if i > 0:
            prev = self._items[i - 1]
            if prev[0].overlaps(r):
                return prev
        return None

    def add(self, r: IPRange, pool: str, text: str) -> None:
        k = (r.version, int(r.first))
        i = bisect.bisect_left(self._keys, k)
        self._keys.insert(i, k)
        self._items.insert(i, (r, pool, text))


def _parse_pools(raw_pools: Sequence[Mapping[str, Any]], errors: list[ConfigError]) -> dict[str, Pool]:
    candidates: list[tuple[str, str, Pool, list[str]]] = []
    seen: set[str] = set()
    for obj in raw_pools:
        name, created, _ = _meta(obj)
        if not name:
            errors.append(ConfigError(POOL_KIND, "?", "metadata.name", "missing"))
            continue
        if name in seen:
            errors.append(ConfigError(POOL_KIND, name, "metadata.name", "duplicate name"))
            continue
        seen.add(name)
        try:
            pool = _parse_pool(obj, name)
        except ConfigError as err:
            errors.append(err)
            continue
        spec = obj.get("spec") or {}
        candidates.append((created, name, pool, [str(a) for a in spec.get("addresses") or []]))
    claims = _Claims()
    pools: dict[str, Pool] = {}
    for _, name, pool, texts in sorted(candidates, key=lambda c: (c[0], c[1])):
        texts_by_range = dict(zip(pool.ranges, texts, strict=False))
        clash = None
        for i, r in enumerate(pool.ranges):
            other = claims.find_overlap(r)
            if other is not None:
                clash = ConfigError(
                    POOL_KIND,
                    name,
                    f"spec.addresses[{i}]",
                    f"'{texts_by_range[r]}' overlaps '{other[2]}' of IPAddressPool '{other[1]}'",
                )
                break
        if clash is not None:
            errors.append(clash)
            continue
        for r in pool.ranges:
            claims.add(r, name, texts_by_range[r])
        pools[name] = pool
    return dict(sorted(pools.items()))


def _parse_l2(
    obj: Mapping[str, Any], name: str, pools: Mapping[str, Pool], warnings: list[ConfigError]
) -> L2Advertisement:
    kind = L2_KIND
    spec = obj.get("spec")
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        raise ConfigError(kind, name, "spec", "must be an object")
    names = _str_list(spec, "ipAddressPools", kind=kind, name=name)
    pool_sels = _selectors(spec, "ipAddressPoolSelectors", kind=kind, name=name)
    node_sels = _selectors(spec, "nodeSelectors", kind=kind, name=name)
    ifaces = _str_list(spec, "interfaces", kind=kind, name=name)
    svc_sels = _selectors(spec, "serviceSelectors", kind=kind, name=name)
    preferred = _preferred(spec.get("preferredNodes"), name=name)
    if not names and not pool_sels:
        resolved = set(pools)
    else:
        resolved = set()
        for i, n in enumerate(names):
            if n in pools:
                resolved.add(n)
            else:
                warnings.append(
                    ConfigError(
                        kind,
                        name,
                        f"spec.ipAddressPools[{i}]",
                        f"IPAddressPool '{n}' does not exist or is invalid; ignored",
                    )
                )
        for p in pools.values():
            if any(s.matches(p.label_map) for s in pool_sels):
                resolved.add(p.name)
    return L2Advertisement(
        name=name,
        pools=frozenset(resolved),
        node_selectors=node_sels,
        interfaces=ifaces,
        service_selectors=svc_sels,
        pool_selectors=pool_sels,
        preferred_nodes=preferred,
    )


def _preferred(raw: Any, *, name: str) -> tuple[tuple[LabelSelector, float], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(L2_KIND, name, "spec.preferredNodes", "must be a list")
    out = []
    for i, entry in enumerate(raw):
        path = f"spec.preferredNodes[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(L2_KIND, name, path, "must be an object with nodeSelector and weight")
        weight = entry.get("weight")
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0.01 <= weight <= 100:
            raise ConfigError(L2_KIND, name, f"{path}.weight", f"'{weight}' must be a number from 0.01 to 100")
        sel = parse_selector(entry.get("nodeSelector"), kind=L2_KIND, name=name, field=f"{path}.nodeSelector")
        out.append((sel, float(weight)))
    return tuple(out)


def parse_config(
    *,
    pools: Sequence[Mapping[str, Any]],
    l2_advertisements: Sequence[Mapping[str, Any]],
    namespaces: Sequence[Mapping[str, Any]] = (),
) -> ParseResult:
    """Turn raw IPAddressPool, L2Advertisement and Namespace objects into a validated Config."""
    errors: list[ConfigError] = []
    warnings: list[ConfigError] = []
    valid_pools = _parse_pools(pools, errors)
    l2s: list[L2Advertisement] = []
    seen: set[str] = set()
    for obj in l2_advertisements:
        name = _meta(obj)[0]
        if not name:
            errors.append(ConfigError(L2_KIND, "?", "metadata.name", "missing"))
            continue
        if name in seen:
            errors.append(ConfigError(L2_KIND, name, "metadata.name", "duplicate name"))
            continue
        seen.add(name)
        try:
            l2s.append(_parse_l2(obj, name, valid_pools, warnings))
        except ConfigError as err:
            errors.append(err)
    ns_labels = {n: dict(_labels(meta)) for n, _, meta in (_meta(o) for o in namespaces) if n}
    cfg = Config(
        pools=valid_pools,
        l2_advertisements=tuple(sorted(l2s, key=lambda a: a.name)),
        namespace_labels=ns_labels,
    )
    return ParseResult(cfg, tuple(errors), tuple(warnings))

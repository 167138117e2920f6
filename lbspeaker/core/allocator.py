"""The IP allocator: which Service holds which address, and the next free one in each pool.

Invariants:
- An address is held either by one Service or by several mutually compatible ones (sharing.py).
- A Service keeps the addresses it holds as long as they lie in a pool it may use, that pool's
  ``avoidBuggyIPs`` allows them and they still satisfy its request; otherwise pool edits and
  restarts move nothing (``adopt`` rebuilds from status).
- Allocation follows MetalLB's ``Allocate``: scoped pools (``Pool.scoped``) that allow the Service
  are tried before unscoped ones, each pool's ranges in the order ``spec.addresses`` lists them.
- No pool is ever enumerated: each range has a ``ranges.RangeCursor``, so an allocation costs
  O(log n) amortised whatever the pool size (an IPv6 /48 included).
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from lbspeaker.core.config import Config, Pool
from lbspeaker.core.ranges import IPRange, PoolUsage, RangeCursor
from lbspeaker.core.request import FAMILY_NAMES, Reason, Refusal, Request, parse_request
from lbspeaker.core.service import IPAddress, ServiceRef
from lbspeaker.core.sharing import Holder, holder_of, incompatibility

__all__ = ["Allocator", "Assignment", "Outcome", "PoolUsage", "Reason"]


@dataclass(frozen=True)
class Assignment:
    """The addresses one Service holds."""

    key: str
    ips: tuple[IPAddress, ...]
    holder: Holder


@dataclass(frozen=True)
class Outcome:
    """The result of ``Allocator.assign``."""

    reason: Reason
    ips: tuple[IPAddress, ...] = ()
    pool: str | None = None
    message: str = ""
    replaced: tuple[IPAddress, ...] = ()
    """Addresses taken away because they left every pool the Service may use or its pool forbids them."""
    partial: bool = False
    """True when the Service got fewer families than it takes (PreferDualStack): worth a retry."""

    @property
    def ok(self) -> bool:
        """True when the Service holds addresses that satisfy it."""
        return self.reason in (Reason.ALLOCATED, Reason.KEPT)


class _RangeIndex(RangeCursor):
    """A range's cursor, with the pool it belongs to and its place in that pool's list."""

    __slots__ = ("pool", "pos")

    def __init__(self, pool: Pool, rng: IPRange, pos: int) -> None:
        super().__init__(rng, avoid_buggy=pool.avoid_buggy_ips)
        self.pool = pool
        self.pos = pos
        """Index of the range in the pool's spec.addresses (allocation order)."""


class Allocator:
    """Assigns pool addresses to Services; all state is in memory and rebuilt with ``adopt``."""

    def __init__(self, config: Config | None = None) -> None:
        self._config = Config()
        self._by_key: dict[str, Assignment] = {}
        self._by_ip: dict[IPAddress, dict[str, Holder]] = {}
        self._by_sharing_key: dict[str, set[IPAddress]] = {}
        self._starts: list[tuple[int, int]] = []
        self._ranges: list[_RangeIndex] = []
        self._pool_ranges: dict[str, list[_RangeIndex]] = {}
        self.set_config(config or Config())

    # -- configuration --------------------------------------------------------------------

    @property
    def config(self) -> Config:
        """The config allocations are made from."""
        return self._config

    def set_config(self, config: Config) -> None:
        """Switch to a new config; held addresses stay held until ``assign`` re-checks them."""
        self._config = config
        # per pool in spec.addresses order (MetalLB walks Pool.CIDR in that order); sorted for lookups
        self._pool_ranges = {
            p.name: [_RangeIndex(p, r, i) for i, r in enumerate(p.ranges)] for p in config.pools.values()
        }
        self._ranges = sorted(
            (ri for ris in self._pool_ranges.values() for ri in ris), key=lambda ri: (ri.version, ri.lo)
        )
        self._starts = [(ri.version, ri.lo) for ri in self._ranges]
        for ip in self._by_ip:
            found = self._locate(ip)
            if found is not None:
                found.used.add(int(ip))

    def _locate(self, ip: IPAddress) -> _RangeIndex | None:
        i = bisect.bisect_right(self._starts, (ip.version, int(ip))) - 1
        if i >= 0:
            ri = self._ranges[i]
            if ri.version == ip.version and int(ip) <= ri.hi:
                return ri
        return None

    def pool_of(self, ip: IPAddress) -> Pool | None:
        """The pool holding ip, in O(log ranges)."""
        ri = self._locate(ip)
        return ri.pool if ri else None

    def _forbidden(self, ip: IPAddress) -> bool:
        ri = self._locate(ip)
        return ri is not None and ri.pool.forbids(ip)

    # -- queries --------------------------------------------------------------------------

    def assignment(self, key: str) -> Assignment | None:
        """What the Service with that key holds."""
        return self._by_key.get(key)

    def holders(self, ip: IPAddress) -> list[str]:
        """Keys of the Services holding ip."""
        return sorted(self._by_ip.get(ip, {}))

    def assignments(self) -> list[Assignment]:
        """Every assignment."""
        return list(self._by_key.values())

    def usage(self) -> dict[str, dict[int, PoolUsage]]:
        """Per pool and IP version: assigned / available / total counts."""
        out: dict[str, dict[int, PoolUsage]] = {}
        for name, ris in self._pool_ranges.items():
            fams: dict[int, PoolUsage] = {}
            for ri in ris:
                u, prev = ri.usage(), fams.get(ri.version, PoolUsage(0, 0, 0))
                fams[ri.version] = PoolUsage(
                    prev.assigned + u.assigned, prev.available + u.available, prev.total + u.total
                )
            out[name] = fams
        return out

    # -- bookkeeping ----------------------------------------------------------------------

    def _conflict(self, ip: IPAddress, holder: Holder) -> str | None:
        for key, other in self._by_ip.get(ip, {}).items():
            if key != holder.key:
                why = incompatibility(holder, other)
                if why is not None:
                    return why
        return None

    def _hold(self, holder: Holder, ips: Iterable[IPAddress]) -> None:
        ips = tuple(ips)
        self._by_key[holder.key] = Assignment(holder.key, ips, holder)
        for ip in ips:
            self._by_ip.setdefault(ip, {})[holder.key] = holder
            ri = self._locate(ip)
            if ri is not None:
                ri.used.add(int(ip))
            if holder.sharing_key:
                self._by_sharing_key.setdefault(holder.sharing_key, set()).add(ip)

    def release(self, key: str) -> tuple[IPAddress, ...]:
        """Forget what the Service holds; returns the addresses it held."""
        a = self._by_key.pop(key, None)
        if a is None:
            return ()
        for ip in a.ips:
            holders = self._by_ip.get(ip, {})
            holders.pop(key, None)
            sk = a.holder.sharing_key
            if sk and not any(h.sharing_key == sk for h in holders.values()):
                keyed = self._by_sharing_key.get(sk)
                if keyed is not None:
                    keyed.discard(ip)
                    if not keyed:
                        del self._by_sharing_key[sk]
            if not holders:
                self._by_ip.pop(ip, None)
                ri = self._locate(ip)
                if ri is not None:
                    ri.free(int(ip))
        return a.ips

    def adopt(self, svc: ServiceRef) -> bool:
        """Record the addresses in the Service's status as held (restart rebuild); False on conflict."""
        if not svc.ingress_ips:
            return False
        holder = holder_of(svc)
        if any(self._conflict(ip, holder) for ip in svc.ingress_ips):
            return False
        self.release(svc.key)
        self._hold(holder, svc.ingress_ips)
        return True

    # -- allocation -----------------------------------------------------------------------

    def _allows(self, pool: Pool, svc: ServiceRef) -> bool:
        return pool.allows(
            svc.namespace,
            namespace_labels=self._config.namespace_labels.get(svc.namespace, {}),
            service_labels=svc.label_map,
        )

    def _find_free(self, pool: Pool, version: int, holder: Holder) -> IPAddress | None:
        if holder.sharing_key:
            shared: list[tuple[int, int, IPAddress]] = []
            for ip in self._by_sharing_key.get(holder.sharing_key, ()):
                ri = self._locate(ip)
                if (
                    ip.version == version
                    and ri is not None
                    and ri.pool.name == pool.name
                    and not pool.forbids(ip)
                    and self._conflict(ip, holder) is None
                ):
                    shared.append((ri.pos, int(ip), ip))
            if shared:
                return min(shared)[2]
        for ri in self._pool_ranges.get(pool.name, ()):
            if ri.version == version:
                v = ri.peek()
                if v is not None:
                    return ipaddress.ip_address(v)
        return None

    def assign(self, svc: ServiceRef, *, may_replace: bool = True) -> Outcome:
        """Give the Service addresses (keeping the ones it holds when still valid).

        With ``may_replace`` False (the config is known to be incomplete), addresses that left
        every pool are kept instead of replaced.
        """
        req = parse_request(svc)
        if isinstance(req, Refusal):
            self.release(svc.key)
            return Outcome(req.reason, message=req.message)
        out = self._assign(svc, req, may_replace=may_replace)
        return replace(out, partial=True) if out.ok and len(out.ips) < req.want else out

    def _assign(self, svc: ServiceRef, req: Request, *, may_replace: bool) -> Outcome:
        cur = self._by_key.get(svc.key)
        cur_ips = cur.ips if cur is not None else svc.ingress_ips
        # MetalLB's convergeBalancer re-Assigns the current IPs on every sync; Assign -> poolFor
        # skips addresses the pool's avoidBuggyIPs forbids, so they are cleared and replaced.
        forbidden = tuple(ip for ip in cur_ips if self._forbidden(ip))
        outside = tuple(ip for ip in cur_ips if self._locate(ip) is None)
        if (
            outside
            and not forbidden
            and not may_replace
            and not req.requested
            and not any(self._conflict(ip, req.holder) for ip in cur_ips)
        ):
            self.release(svc.key)
            self._hold(req.holder, cur_ips)
            return Outcome(
                Reason.KEPT,
                cur_ips,
                None,
                f"{', '.join(map(str, outside))} in no pool; kept while the config has errors",
            )
        invalid = tuple(ip for ip in cur_ips if ip in outside or ip in forbidden)
        inside = tuple(ip for ip in cur_ips if ip not in invalid)
        if inside:
            kept = self._try_keep(svc, req, inside)
            if kept is not None and not invalid:
                return kept
            if kept is not None:  # the invalid family was re-allocated in the kept pool
                return Outcome(Reason.ALLOCATED, kept.ips, kept.pool, replaced=invalid)
        self.release(svc.key)
        out = self._allocate_requested(svc, req) if req.requested else self._allocate_auto(svc, req)
        return replace(out, replaced=invalid) if invalid else out

    def _try_keep(self, svc: ServiceRef, req: Request, ips: tuple[IPAddress, ...]) -> Outcome | None:
        ris = [self._locate(ip) for ip in ips]
        pools = {ri.pool.name for ri in ris if ri is not None}
        if len(pools) != 1:
            return None
        pool = self._config.pools[pools.pop()]
        if req.requested and set(req.requested) != set(ips):
            return None
        if req.pool is not None and req.pool != pool.name:
            return None
        if not self._allows(pool, svc) or any(ip.version not in req.families for ip in ips):
            return None
        if len({ip.version for ip in ips}) != len(ips) or len(ips) > max(req.want, len(req.requested)):
            return None
        if any(self._conflict(ip, req.holder) for ip in ips):
            return None
        self.release(svc.key)
        picks = list(ips)
        if not req.requested:
            for fam in req.families:
                if len(picks) >= req.want:
                    break
                if all(ip.version != fam for ip in picks):
                    extra = self._find_free(pool, fam, req.holder)
                    if extra is not None:
                        picks.append(extra)
        if len(picks) < req.need:
            return None
        self._hold(req.holder, picks)
        reason = Reason.KEPT if len(picks) == len(ips) else Reason.ALLOCATED
        return Outcome(reason, tuple(picks), pool.name)

    def _allocate_requested(self, svc: ServiceRef, req: Request) -> Outcome:
        pools: set[str] = set()
        for ip in req.requested:
            ri = self._locate(ip)
            if ri is None:
                return Outcome(Reason.REQUESTED_IP_IN_NO_POOL, message=f"requested IP {ip} belongs to no pool")
            if ri.pool.forbids(ip):  # MetalLB: Assign -> poolFor skips it -> "not allowed in config"
                return Outcome(
                    Reason.NOT_ALLOWED,
                    message=f"requested IP {ip} ends in .0 or .255: avoidBuggyIPs of pool '{ri.pool.name}' forbids it",
                )
            pools.add(ri.pool.name)
        if len(pools) > 1:
            return Outcome(
                Reason.DIFFERENT_POOLS,
                message=f"requested IPs are in different pools {', '.join(repr(p) for p in sorted(pools))}",
            )
        pool = self._config.pools[pools.pop()]
        if req.pool is not None and req.pool != pool.name:
            return Outcome(
                Reason.NOT_ALLOWED,
                message=f"requested IP {req.requested[0]} is in pool '{pool.name}', "
                f"not in the annotated pool '{req.pool}'",
            )
        if not self._allows(pool, svc):
            return Outcome(Reason.NOT_ALLOWED, message=f"pool '{pool.name}' does not allow service '{svc.key}'")
        for ip in req.requested:
            why = self._conflict(ip, req.holder)
            if why is not None:
                return Outcome(Reason.IP_IN_USE, message=f"requested IP {ip} is in use: {why}")
        self._hold(req.holder, req.requested)
        return Outcome(Reason.ALLOCATED, req.requested, pool.name)

    def _allocate_auto(self, svc: ServiceRef, req: Request) -> Outcome:
        if req.pool is not None:
            pool = self._config.pools.get(req.pool)
            if pool is None:
                return Outcome(Reason.POOL_NOT_FOUND, message=f"pool '{req.pool}' does not exist")
            if not self._allows(pool, svc):
                return Outcome(Reason.NOT_ALLOWED, message=f"pool '{pool.name}' does not allow service '{svc.key}'")
            candidates = [pool]
        else:
            candidates = [p for p in self._config.ordered_pools() if p.auto_assign and self._allows(p, svc)]
        if not candidates:
            return Outcome(Reason.NO_POOL, message=f"no pool with autoAssign allows service '{svc.key}'")
        # MetalLB's Allocate: the pinned (scoped) pools first; the others only when none of those serves
        for scoped in (True, False):
            best = self._best_pool([p for p in candidates if p.scoped is scoped], req)
            if best is not None:
                self._hold(req.holder, best[1])
                return Outcome(Reason.ALLOCATED, tuple(best[1]), best[0].name)
        return self._exhausted(candidates, req)

    def _best_pool(self, pools: Sequence[Pool], req: Request) -> tuple[Pool, list[IPAddress]] | None:
        """MetalLB's findBestPoolForService: the first pool giving every family wanted, else the
        first giving the primary family (``spec.ipFamilies[0]``), else the first giving any."""
        fallback: tuple[bool, Pool, list[IPAddress]] | None = None
        for pool in pools:
            picks: list[IPAddress] = []
            for fam in req.families:
                if len(picks) >= req.want:
                    break
                ip = self._find_free(pool, fam, req.holder)
                if ip is not None:
                    picks.append(ip)
            if len(picks) >= req.want:
                return pool, picks
            if len(picks) >= req.need:
                secondary = picks[0].version != req.families[0]
                if fallback is None or (fallback[0] and not secondary):
                    fallback = (secondary, pool, picks)
        return (fallback[1], fallback[2]) if fallback is not None else None

    def _exhausted(self, candidates: list[Pool], req: Request) -> Outcome:
        wanted = set(req.families)
        fams = "/".join(FAMILY_NAMES[f] for f in req.families)
        having = [p for p in candidates if len(p.families & wanted) >= req.need]
        if not having:
            names = ", ".join(f"'{p.name}'" for p in candidates)
            need = "both IPv4 and IPv6" if req.need == 2 else fams
            return Outcome(Reason.NO_POOL, message=f"no pool the service may use has {need} addresses (tried {names})")
        names = ", ".join(f"'{p.name}'" for p in having)
        fams = "/".join(FAMILY_NAMES[f] for f in req.families if any(f in p.families for p in having))
        word = "pool" if len(having) == 1 else "pools"
        return Outcome(Reason.POOL_EXHAUSTED, message=f"{word} {names} exhausted ({fams})")

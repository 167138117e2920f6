"""What a Service asks of the allocator: requested IPs, a pool, the IP families it wants.

Invariant: a ``Request`` is self-consistent (at most one requested IP per family, requested
families allowed by the family policy); anything else is a ``Refusal`` with a user-facing reason.

Family rules: SingleStack takes ``spec.ipFamilies[0]`` (either family when the list is empty);
RequireDualStack needs both families from one pool; PreferDualStack takes as many families as
``spec.ipFamilies`` lists (both when empty), at least one: a pool that gives all of them beats a
higher-priority pool of the same tier (scoped pools before unscoped ones) that gives fewer, and
among pools giving one, the first with ``spec.ipFamilies[0]`` wins. A missing family is added
later, without moving the existing address, once its pool has one.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass

from lbspeaker.core.service import ANN_LB_IPS, ANN_POOL, IPAddress, ServiceRef
from lbspeaker.core.sharing import Holder, holder_of


class Reason(enum.Enum):
    """Why an allocation succeeded or failed (the value is the machine-readable reason)."""

    ALLOCATED = "Allocated"
    KEPT = "Kept"
    POOL_EXHAUSTED = "PoolExhausted"
    NO_POOL = "NoPool"
    POOL_NOT_FOUND = "PoolNotFound"
    NOT_ALLOWED = "NotAllowed"
    REQUESTED_IP_IN_NO_POOL = "RequestedIPInNoPool"
    IP_IN_USE = "IPInUse"
    CONFLICTING_REQUEST = "ConflictingRequest"
    INVALID_REQUEST = "InvalidRequest"
    FAMILY_MISMATCH = "FamilyMismatch"
    DIFFERENT_POOLS = "DifferentPools"


FAMILY_NAMES = {4: "IPv4", 6: "IPv6"}


@dataclass(frozen=True)
class Request:
    """A validated allocation request."""

    holder: Holder
    requested: tuple[IPAddress, ...] = ()
    pool: str | None = None
    families: tuple[int, ...] = (4, 6)
    """IP versions in order of preference."""
    need: int = 1
    """Fewest families that satisfy the Service."""
    want: int = 1
    """Most families the Service takes."""


@dataclass(frozen=True)
class Refusal:
    """A request that cannot be served as written."""

    reason: Reason
    message: str


def _families(svc: ServiceRef) -> tuple[tuple[int, ...], int, int]:
    given: list[int] = []
    for f in svc.ip_families:
        v = 4 if f == "IPv4" else 6 if f == "IPv6" else 0
        if v and v not in given:
            given.append(v)
    order = tuple(given) + tuple(v for v in (4, 6) if v not in given)
    policy = svc.ip_family_policy
    if policy == "RequireDualStack":
        return order, 2, 2
    if policy == "PreferDualStack":
        return order, 1, (len(given) if given else 2)
    return ((given[0],) if given else order), 1, 1


def parse_request(svc: ServiceRef) -> Request | Refusal:
    """Read the Service's annotations and spec into a Request, or explain why not."""
    families, need, want = _families(svc)
    pool = (svc.annotation(ANN_POOL) or "").strip() or None
    ann = (svc.annotation(ANN_LB_IPS) or "").strip()
    spec_ip = svc.spec_load_balancer_ip.strip()
    if ann and spec_ip:
        return Refusal(
            Reason.CONFLICTING_REQUEST,
            f"both annotation {ANN_LB_IPS} and spec.loadBalancerIP are set; use only the annotation",
        )
    texts = [t.strip() for t in ann.split(",") if t.strip()] if ann else ([spec_ip] if spec_ip else [])
    where = ANN_LB_IPS if ann else "spec.loadBalancerIP"
    requested: list[IPAddress] = []
    for t in texts:
        try:
            ip = ipaddress.ip_address(t)
        except ValueError:
            return Refusal(Reason.INVALID_REQUEST, f"{where}: '{t}' is not an IP address")
        if any(r.version == ip.version for r in requested):
            return Refusal(Reason.INVALID_REQUEST, f"{where}: more than one {FAMILY_NAMES[ip.version]} address")
        requested.append(ip)
    holder = holder_of(svc)
    if not requested:
        return Request(holder=holder, pool=pool, families=families, need=need, want=want)
    for ip in requested:
        if ip.version not in families:
            return Refusal(
                Reason.FAMILY_MISMATCH,
                f"{where}: {ip} is {FAMILY_NAMES[ip.version]} but the service is "
                f"{'/'.join(FAMILY_NAMES[f] for f in families)} only",
            )
    if len(requested) < need:
        return Refusal(Reason.FAMILY_MISMATCH, f"{where}: RequireDualStack needs one address per family")
    if len(requested) > 1 and svc.ip_family_policy not in ("PreferDualStack", "RequireDualStack"):
        return Refusal(Reason.FAMILY_MISMATCH, f"{where}: a {svc.ip_family_policy} service takes one address")
    return Request(
        holder=holder,
        requested=tuple(requested),
        pool=pool,
        families=tuple(ip.version for ip in requested),
        need=len(requested),
        want=len(requested),
    )

"""What a Service's status, annotation and events should be, given the config and the allocator.

Pure apart from updating the in-memory allocator: no API calls here, so every rule is testable
with tables. The controller turns a ``Decision`` into patches and Events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lbspeaker.core.allocator import Allocator, Outcome, Reason
from lbspeaker.core.service import ANN_ALLOCATED_FROM, IPAddress, ServiceRef

NORMAL = "Normal"
WARNING = "Warning"
CONDITION_TYPE = "lbspeaker.io/IPAllocated"


@dataclass(frozen=True)
class Condition:
    """Our condition on the Service status: is the IP request satisfied, and why not."""

    status: str
    reason: str
    message: str


@dataclass(frozen=True)
class EventSpec:
    """One Kubernetes Event to record on the Service."""

    type: str
    reason: str
    message: str


@dataclass(frozen=True)
class Decision:
    """The state a Service should have; ``None`` ingress means: leave status alone."""

    key: str
    ingress: tuple[IPAddress, ...] | None = None
    pool: str | None = None
    """Desired value of the ip-allocated-from-pool annotation (None: absent)."""
    touch_annotation: bool = False
    events: tuple[EventSpec, ...] = ()
    outcome: Outcome | None = None
    condition: Condition | None = None
    """Desired condition (None: ours absent); only applied when ``touch_annotation``."""

    def status_patch(
        self, svc: ServiceRef, conditions: Sequence[dict[str, Any]] | None = None, *, now: str = ""
    ) -> dict[str, object] | None:
        """The merge patch for the status subresource, or None when status already matches.

        With ``conditions`` (the Service's current status.conditions) our condition is kept
        up to date too; ``now`` is its lastTransitionTime when it changes.
        """
        status: dict[str, object] = {}
        if self.ingress is not None and tuple(svc.ingress_ips) != self.ingress:
            ingress = [{"ip": str(ip), "ipMode": "VIP"} for ip in self.ingress]
            status["loadBalancer"] = {"ingress": ingress or None}
        if conditions is not None and self.touch_annotation:
            merged = merge_condition(conditions, self.condition, now=now)
            if merged is not None:
                status["conditions"] = merged or None
        return {"status": status} if status else None

    def annotation_patch(self, svc: ServiceRef) -> dict[str, object] | None:
        """The merge patch for metadata.annotations, or None when it already matches."""
        if not self.touch_annotation or svc.annotation(ANN_ALLOCATED_FROM) == self.pool:
            return None
        return {"metadata": {"annotations": {ANN_ALLOCATED_FROM: self.pool}}}


def merge_condition(
    existing: Sequence[dict[str, Any]], cond: Condition | None, *, now: str
) -> list[dict[str, Any]] | None:
    """The new conditions list with ours set (or removed), or None when nothing changes."""
    ours = [c for c in existing if c.get("type") == CONDITION_TYPE]
    others = [dict(c) for c in existing if c.get("type") != CONDITION_TYPE]
    if cond is None:
        return others if ours else None
    cur = ours[0] if ours else None
    if cur is not None and (cur.get("status"), cur.get("reason"), cur.get("message")) == (
        cond.status,
        cond.reason,
        cond.message,
    ):
        return None
    since = now
    if cur is not None and cur.get("status") == cond.status and cur.get("lastTransitionTime"):
        since = str(cur["lastTransitionTime"])
    mine = {
        "type": CONDITION_TYPE,
        "status": cond.status,
        "reason": cond.reason,
        "message": cond.message,
        "lastTransitionTime": since,
    }
    return [*others, mine]


def is_ours(svc: ServiceRef, lb_class: str | None) -> bool:
    """True when this controller handles the Service's loadBalancerClass."""
    return svc.load_balancer_class == lb_class


def _ips(ips: tuple[IPAddress, ...]) -> str:
    return ", ".join(str(ip) for ip in ips)


def _cleared(out: Outcome, alloc: Allocator) -> str:
    why = []
    buggy = tuple(ip for ip in out.replaced if (p := alloc.pool_of(ip)) is not None and p.forbids(ip))
    if buggy:
        why.append(f"IP {_ips(buggy)} is forbidden by avoidBuggyIPs of its pool")
    gone = tuple(ip for ip in out.replaced if ip not in buggy)
    if gone:
        why.append(f"IP {_ips(gone)} is in no pool the service may use")
    return "; ".join(why) + "; " + (f"replaced by {_ips(out.ips)}" if out.ok else "released")


def decide(
    svc: ServiceRef | None,
    key: str,
    alloc: Allocator,
    *,
    lb_class: str | None = None,
    may_replace: bool = True,
) -> Decision:
    """Update the allocator for one Service and say what its API state should be."""
    if svc is None:
        alloc.release(key)
        return Decision(key)
    if not is_ours(svc, lb_class):
        alloc.release(key)
        return Decision(key)
    if not svc.is_load_balancer:
        alloc.release(key)
        return Decision(key, ingress=(), pool=None, touch_annotation=True)
    out = alloc.assign(svc, may_replace=may_replace)
    events: list[EventSpec] = []
    if out.replaced:
        events.append(EventSpec(WARNING, "ClearAssignment", _cleared(out, alloc)))
    if not out.ok:
        events.append(EventSpec(WARNING, "AllocationFailed", f"failed to allocate an IP: {out.message}"))
        cond = Condition("False", out.reason.value, out.message)
        return Decision(
            key, ingress=(), pool=None, touch_annotation=True, events=tuple(events), outcome=out, condition=cond
        )
    if out.reason is Reason.KEPT and out.message:
        events.append(EventSpec(WARNING, "AddressOutsidePools", out.message))
    if tuple(svc.ingress_ips) != out.ips:
        events.append(
            EventSpec(
                NORMAL,
                "IPAllocated",
                f"assigned IP {_ips(out.ips)} from pool '{out.pool}'" if out.pool else f"kept IP {_ips(out.ips)}",
            )
        )
    return Decision(
        key,
        ingress=out.ips,
        pool=out.pool,
        touch_annotation=out.pool is not None,
        events=tuple(events),
        outcome=out,
        condition=Condition("True", "IPAllocated", f"IP {_ips(out.ips)} from pool '{out.pool}'"),
    )

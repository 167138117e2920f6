"""When two Services may share one IP (MetalLB's rules, ``lbspeaker.io/allow-shared-ip``).

Two holders are compatible when both carry the same non-empty sharing key, their
(protocol, port) sets do not overlap, and their backend keys are equal. The backend key is the
pod selector for ``externalTrafficPolicy: Local`` (the announcing node must host the pods of
every sharer) and empty otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from lbspeaker.core.service import ANN_SHARED, ServiceRef


@dataclass(frozen=True)
class Holder:
    """What the sharing rules need to know about one Service holding an IP."""

    key: str
    sharing_key: str = ""
    ports: frozenset[tuple[str, int]] = frozenset()
    backend_key: str = ""


def backend_key(svc: ServiceRef) -> str:
    """The selector for externalTrafficPolicy Local, else empty."""
    if svc.external_traffic_policy != "Local":
        return ""
    return ",".join(f"{k}={v}" for k, v in sorted(svc.selector))


def holder_of(svc: ServiceRef) -> Holder:
    """The sharing identity of a Service."""
    return Holder(
        key=svc.key,
        sharing_key=(svc.annotation(ANN_SHARED) or "").strip(),
        ports=frozenset((p.protocol.upper(), p.port) for p in svc.ports),
        backend_key=backend_key(svc),
    )


def incompatibility(a: Holder, b: Holder) -> str | None:
    """Why a and b may not share an IP, or None when they may."""
    if not a.sharing_key or not b.sharing_key:
        return (
            f"service '{b.key}' holds it without allowing sharing"
            if not b.sharing_key
            else f"service '{a.key}' does not set {ANN_SHARED}"
        )
    if a.sharing_key != b.sharing_key:
        return f"service '{b.key}' shares it under another key '{b.sharing_key}'"
    clash = sorted(a.ports & b.ports)
    if clash:
        proto, port = clash[0]
        return f"service '{b.key}' uses port {proto}/{port} too"
    if a.backend_key != b.backend_key:
        return f"service '{b.key}' has other backends (externalTrafficPolicy Local needs the same selector)"
    return None

"""A Service as lbspeaker sees it: a small frozen value parsed from the raw API object.

Invariant: nothing downstream of ``parse_service`` reads the raw dict again.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ANNOTATION_PREFIX = "lbspeaker.io/"
ANN_LB_IPS = ANNOTATION_PREFIX + "loadBalancerIPs"
ANN_POOL = ANNOTATION_PREFIX + "address-pool"
ANN_SHARED = ANNOTATION_PREFIX + "allow-shared-ip"
ANN_ALLOCATED_FROM = ANNOTATION_PREFIX + "ip-allocated-from-pool"


@dataclass(frozen=True)
class Port:
    """One (protocol, port) of a Service."""

    protocol: str
    port: int


@dataclass(frozen=True)
class ServiceRef:
    """The fields of a Service that allocation and announcement depend on."""

    namespace: str
    name: str
    type: str = "ClusterIP"
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    load_balancer_class: str | None = None
    ports: tuple[Port, ...] = ()
    external_traffic_policy: str = "Cluster"
    selector: tuple[tuple[str, str], ...] = ()
    ip_families: tuple[str, ...] = ()
    ip_family_policy: str = "SingleStack"
    spec_load_balancer_ip: str = ""
    ingress_ips: tuple[IPAddress, ...] = ()
    resource_version: str = ""
    uid: str = ""

    @property
    def key(self) -> str:
        """The ``namespace/name`` key."""
        return f"{self.namespace}/{self.name}"

    @property
    def is_load_balancer(self) -> bool:
        """True for ``type: LoadBalancer``."""
        return self.type == "LoadBalancer"

    def annotation(self, name: str) -> str | None:
        """The value of one annotation, or None."""
        for k, v in self.annotations:
            if k == name:
                return v
        return None

    @property
    def label_map(self) -> dict[str, str]:
        """Labels as a dict (for selector matching)."""
        return dict(self.labels)


def _str_pairs(raw: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, dict):
        return ()
    return tuple(sorted((str(k), str(v)) for k, v in raw.items()))


def _ingress_ips(status: Any) -> tuple[IPAddress, ...]:
    out: list[IPAddress] = []
    lb = status.get("loadBalancer") if isinstance(status, dict) else None
    ingress = lb.get("ingress") if isinstance(lb, dict) else None
    for entry in ingress if isinstance(ingress, list) else []:
        ip = entry.get("ip") if isinstance(entry, dict) else None
        if isinstance(ip, str):
            try:
                out.append(ipaddress.ip_address(ip))
            except ValueError:
                continue
    return tuple(out)


def parse_service(obj: dict[str, Any]) -> ServiceRef:
    """Turn a raw core/v1 Service into a ServiceRef; never raises on odd shapes."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    ports: list[Port] = []
    for p in spec.get("ports") or []:
        if isinstance(p, dict) and isinstance(p.get("port"), int):
            ports.append(Port(str(p.get("protocol") or "TCP"), int(p["port"])))
    lbc = spec.get("loadBalancerClass")
    return ServiceRef(
        namespace=str(meta.get("namespace") or "default"),
        name=str(meta.get("name") or ""),
        type=str(spec.get("type") or "ClusterIP"),
        labels=_str_pairs(meta.get("labels")),
        annotations=_str_pairs(meta.get("annotations")),
        load_balancer_class=lbc if isinstance(lbc, str) and lbc else None,
        ports=tuple(ports),
        external_traffic_policy=str(spec.get("externalTrafficPolicy") or "Cluster"),
        selector=_str_pairs(spec.get("selector")),
        ip_families=tuple(str(f) for f in spec.get("ipFamilies") or [] if isinstance(f, str)),
        ip_family_policy=str(spec.get("ipFamilyPolicy") or "SingleStack"),
        spec_load_balancer_ip=str(spec.get("loadBalancerIP") or ""),
        ingress_ips=_ingress_ips(obj.get("status")),
        resource_version=str(meta.get("resourceVersion") or ""),
        uid=str(meta.get("uid") or ""),
    )

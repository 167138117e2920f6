"""Nodes and EndpointSlices as the speaker sees them: frozen values parsed from raw API objects."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from lbspeaker.core.service import IPAddress

EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"


@dataclass(frozen=True)
class NodeInfo:
    """The fields of a Node that the election depends on."""

    name: str
    labels: tuple[tuple[str, str], ...] = ()
    ready: bool = True
    network_unavailable: bool = False
    addresses: tuple[IPAddress, ...] = ()

    @property
    def label_map(self) -> dict[str, str]:
        """Labels as a dict."""
        return dict(self.labels)

    @property
    def excluded(self) -> bool:
        """True when the node opted out of external load balancers."""
        return any(k == EXCLUDE_LABEL for k, _ in self.labels)


def parse_node(obj: dict[str, Any]) -> NodeInfo:
    """Turn a raw core/v1 Node into a NodeInfo; never raises on odd shapes."""
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    conds = {c.get("type"): c.get("status") for c in status.get("conditions") or [] if isinstance(c, dict)}
    addrs: list[IPAddress] = []
    for a in status.get("addresses") or []:
        if isinstance(a, dict) and a.get("type") == "InternalIP":
            try:
                addrs.append(ipaddress.ip_address(str(a.get("address"))))
            except ValueError:
                continue
    labels = meta.get("labels") or {}
    return NodeInfo(
        name=str(meta.get("name") or ""),
        labels=tuple(sorted((str(k), str(v)) for k, v in labels.items())) if isinstance(labels, dict) else (),
        ready=conds.get("Ready", "True") == "True",
        network_unavailable=conds.get("NetworkUnavailable") == "True",
        addresses=tuple(addrs),
    )


@dataclass(frozen=True)
class ServiceEndpoints:
    """Per Service: the nodes that host at least one ready (serving) endpoint."""

    service_key: str
    ready_nodes: frozenset[str] = field(default_factory=frozenset)

    @property
    def any_ready(self) -> bool:
        """True when any endpoint anywhere is ready."""
        return bool(self.ready_nodes)


def endpoints_from_slices(slices: list[dict[str, Any]]) -> dict[str, ServiceEndpoints]:
    """Fold EndpointSlices into per-Service ready node sets.

    discovery.k8s.io/v1 names the node in ``nodeName``; v1beta1 (Kubernetes 1.20) in
    ``topology["kubernetes.io/hostname"]``, which the EndpointSlice controller sets to the Node name.
    """
    acc: dict[str, set[str]] = {}
    for s in slices:
        meta = s.get("metadata") or {}
        svc = (meta.get("labels") or {}).get("kubernetes.io/service-name")
        if not svc:
            continue
        key = f"{meta.get('namespace') or 'default'}/{svc}"
        nodes = acc.setdefault(key, set())
        for ep in s.get("endpoints") or []:
            if not isinstance(ep, dict):
                continue
            cond = ep.get("conditions") or {}
            ready = cond.get("ready")
            serving = cond.get("serving", ready)
            node = ep.get("nodeName") or (ep.get("topology") or {}).get("kubernetes.io/hostname")
            if (ready is None or ready or serving) and node:
                nodes.add(str(node))
    return {k: ServiceEndpoints(k, frozenset(v)) for k, v in acc.items()}

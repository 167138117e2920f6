"""Shared scenario for the BGP interop tests: config objects in, driver out, routers checked."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from lbspeaker.core.bgp.config import BGPConfig, SecretRef, parse_bgp
from lbspeaker.core.bgp.routes import Route, Session, desired_routes, sessions_for_node
from lbspeaker.core.config import Config, IPRange, Pool
from lbspeaker.core.node import NodeInfo, ServiceEndpoints
from lbspeaker.core.service import ServiceRef
from lbspeaker.speaker.bgp.exabgp_driver import ExabgpDriver

ip = ipaddress.ip_address
NS = "lbspeaker-system"
POOLS = {
    "v4": Pool("v4", (IPRange(ip("203.0.113.0"), ip("203.0.113.255")),)),
    "v4b": Pool("v4b", (IPRange(ip("198.51.100.0"), ip("198.51.100.255")),)),
    "v6": Pool("v6", (IPRange(ip("2001:db8:5::"), ip("2001:db8:5::ffff")),)),
}


def obj(name: str, **spec: Any) -> dict[str, Any]:
    """A raw namespaced object."""
    return {"metadata": {"name": name, "namespace": NS}, "spec": spec}


def bgp_config(**objects: Iterable[dict[str, Any]]) -> BGPConfig:
    """Parse raw objects; the scenario must be valid."""
    res = parse_bgp(pools=POOLS, **objects)  # type: ignore[arg-type]
    assert res.errors == (), res.errors
    return res.config


def services(*ips: str, etp: str = "Cluster") -> list[ServiceRef]:
    """One LoadBalancer Service per IP."""
    return [
        ServiceRef("default", f"s{i}", type="LoadBalancer", external_traffic_policy=etp, ingress_ips=(ip(a),))
        for i, a in enumerate(ips)
    ]


def plan(
    cfg: BGPConfig,
    node: NodeInfo,
    svcs: list[ServiceRef],
    *,
    ready: Mapping[str, set[str]] | None = None,
    passwords: Mapping[SecretRef, str] | None = None,
) -> tuple[tuple[Session, ...], dict[str, frozenset[Route]]]:
    """Sessions and routes of one node, through the same pure functions the speaker uses."""
    sessions, skipped = sessions_for_node(cfg, node, passwords=passwords or {})
    assert skipped == (), skipped
    ready = ready if ready is not None else {s.key: {node.name} for s in svcs}
    eps = {k: ServiceEndpoints(k, frozenset(v)) for k, v in ready.items()}
    routes = desired_routes(Config(pools=POOLS), cfg, node=node, services=svcs, endpoints=eps, sessions=sessions)
    return sessions, routes


def driver(workdir: Path, ns: str, **kw: Any) -> ExabgpDriver:
    """A driver whose exabgp runs inside the speaker namespace."""
    return ExabgpDriver(workdir=workdir, command_prefix=["ip", "netns", "exec", ns], **kw)


async def poll(pred: Any, *, timeout: float, interval: float = 0.05, what: str = "condition") -> Any:
    """Async version of wait_until (the driver runs in this loop)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await asyncio.to_thread(pred)
        if value:
            return value
        if loop.time() >= deadline:
            raise TimeoutError(f"waiting for {what}: not true after {timeout}s (last: {value!r})")
        await asyncio.sleep(interval)

"""BIRD and FRR behind one small interface, configured from the same neighbor list, for parametrized tests."""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass
from typing import Any, Protocol

from tests.netns.bgp.peers import Bird, BirdRoute, Frr, Lab

ROUTER_AS = 64512


@dataclass(frozen=True)
class Nbr:
    """One neighbor of the router (router side addresses first)."""

    local: str
    peer: str
    peer_as: int
    password: str = ""
    multihop: bool = False
    bfd: bool = False
    hold: int = 9

    @property
    def v6(self) -> bool:
        return ":" in self.peer


class Router(Protocol):
    """What the interop tests ask of a router."""

    def table(self, peer: str) -> dict[str, BirdRoute]: ...
    def established(self, peer: str) -> bool: ...
    def pids(self) -> list[int]: ...


class BirdRouter:
    """BIRD 2 with one protocol per neighbor."""

    def __init__(self, lab: Lab, ns: str, nbrs: list[Nbr], *, extra: str = "") -> None:
        self.protos = {n.peer: f"p{i}" for i, n in enumerate(nbrs)}
        lines = ["router id 192.0.2.1;", "protocol device {}", "protocol direct { ipv4; ipv6; }"]
        if any(n.bfd for n in nbrs):
            lines.append('protocol bfd { interface "*" { min rx interval 100 ms; min tx interval 100 ms; }; }')
        for n in nbrs:
            fam = "ipv6" if n.v6 else "ipv4"
            opts = [
                f"local {n.local} as {ROUTER_AS};",
                f"neighbor {n.peer} as {n.peer_as};",
                f"hold time {n.hold};",
            ]
            opts += ["error wait time 1, 10;", "connect retry time 1;", "graceful restart aware;"]
            if n.password:
                opts.append(f'password "{n.password}";')
            if n.multihop:
                opts.append("multihop;")
            elif n.peer_as == ROUTER_AS:
                opts.append("direct;")
            if n.bfd:
                opts.append("bfd on;")
            gw = " gateway direct;" if n.peer_as == ROUTER_AS else ""
            if n.multihop:
                gw = " gateway recursive; igp table master4;" if not n.v6 else " gateway recursive;"
            channel = f"{fam} {{ import all; export none;{gw} }};"
            lines.append(f"protocol bgp {self.protos[n.peer]} {{ {' '.join(opts)} {channel} }}")
        self.bird = Bird(lab, ns, "\n".join(lines) + "\n" + extra)

    def table(self, peer: str) -> dict[str, BirdRoute]:
        return self.bird.routes(self.protos[peer])

    def established(self, peer: str) -> bool:
        return self.bird.state(self.protos[peer]) == "Established"

    def pids(self) -> list[int]:
        return [int((self.bird.dir / "bird.pid").read_text())]


class FrrRouter:
    """FRR 8.4 (zebra, bfdd, bgpd) with one BGP instance."""

    def __init__(self, lab: Lab, ns: str, nbrs: list[Nbr], *, extra: str = "") -> None:
        lines = ["frr defaults traditional", "hostname r", "!"]
        if any(n.bfd for n in nbrs):
            lines += ["bfd", " profile fast", "  receive-interval 100", "  transmit-interval 100", " !", "!"]
        lines += [
            f"router bgp {ROUTER_AS}",
            " bgp router-id 192.0.2.1",
            " no bgp ebgp-requires-policy",
            " no bgp default ipv4-unicast",
            " no bgp network import-check",
            " bgp graceful-restart",
        ]
        for n in nbrs:
            lines.append(f" neighbor {n.peer} remote-as {n.peer_as}")
            lines.append(f" neighbor {n.peer} timers {max(n.hold // 3, 1)} {n.hold}")
            lines.append(f" neighbor {n.peer} timers connect 1")
            if n.password:
                lines.append(f" neighbor {n.peer} password {n.password}")
            if n.multihop:
                lines.append(f" neighbor {n.peer} ebgp-multihop 255")
            if n.bfd:
                lines.append(f" neighbor {n.peer} bfd profile fast")
        for fam, v6 in (("ipv4", False), ("ipv6", True)):
            lines.append(f" address-family {fam} unicast")
            lines += [f"  neighbor {n.peer} activate" for n in nbrs if n.v6 == v6]
            lines.append(" exit-address-family")
        self.frr = Frr(lab, ns, "\n".join(lines) + "\n!\n" + extra)

    def table(self, peer: str) -> dict[str, BirdRoute]:
        fam = "ipv6" if ":" in peer else "ipv4"
        out: dict[str, BirdRoute] = {}
        data: dict[str, Any] = self.frr.json(f"show bgp {fam} unicast").get("routes") or {}
        for prefix, paths in data.items():
            for p in paths:
                if p.get("peerId") != peer:
                    continue
                r = BirdRoute(prefix, next_hop=p["nexthops"][0]["ip"], local_pref=p.get("locPrf"))
                r.stale = bool(p.get("stale"))
                out[prefix] = r
        return out

    def detail(self, peer: str, prefix: str) -> BirdRoute:
        """One route with communities (FRR lists them only in the per-prefix view)."""
        fam = "ipv6" if ":" in peer else "ipv4"
        for p in self.frr.json(f"show bgp {fam} unicast {prefix}").get("paths", []):
            if p.get("peer", {}).get("peerId") == peer:
                return BirdRoute(
                    prefix,
                    next_hop=p["nexthops"][0]["ip"],
                    local_pref=p.get("locPrf", p.get("localpref")),
                    communities=tuple(p.get("community", {}).get("list", [])),
                    large_communities=tuple(p.get("largeCommunity", {}).get("list", [])),
                    stale=bool(p.get("stale")),
                )
        raise KeyError(prefix)

    def established(self, peer: str) -> bool:
        return self.frr.state(peer) == "Established"

    def pids(self) -> list[int]:
        out = []
        for d in self.frr.DAEMONS:
            with contextlib.suppress(OSError, ValueError):
                out.append(int((self.frr.dir / f"{d}.pid").read_text()))
        return out


def make_router(kind: str, lab: Lab, ns: str, nbrs: list[Nbr]) -> BirdRouter | FrrRouter:
    """A BIRD or FRR router with these neighbors."""
    return BirdRouter(lab, ns, nbrs) if kind == "bird" else FrrRouter(lab, ns, nbrs)


def route(router: BirdRouter | FrrRouter, peer: str, prefix: str) -> BirdRoute:
    """One route with all attributes, from either router."""
    if isinstance(router, FrrRouter):
        return router.detail(peer, prefix)
    return router.table(peer)[prefix]


def freeze(pids: list[int], sig: int = signal.SIGSTOP) -> None:
    """Signal router processes (SIGSTOP/SIGCONT)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)

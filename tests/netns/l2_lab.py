"""An L2 test topology (client + nodes on a bridge) and a raw-socket ARP/NDP prober.

Each node is a kube-proxy-like host: its VIPs sit on a port-less bridge ``kube-ipvs0`` with the
strictARP sysctls (DESIGN.md traps 1, 2), so only the Responder answers for them on ``eth0``.
Addresses: client 192.0.2.1 / 2001:db8::1, node i 192.0.2.(10+i) / 2001:db8::(10+i).
"""

from __future__ import annotations

import contextlib
import ipaddress
import select
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from lbspeaker.core.arp import OP_REPLY, build_request, parse_arp
from lbspeaker.core.ndp import NA_TYPE, UNSPECIFIED, build_ns, parse_ndp
from lbspeaker.speaker.responder import Responder
from tests.netns.netns_util import NetnsLab, NetnsThread, netns_lab

VIP4 = ipaddress.IPv4Address("192.0.2.100")
VIP6 = ipaddress.IPv6Address("2001:db8::100")
CLIENT4 = ipaddress.IPv4Address("192.0.2.1")
CLIENT6 = ipaddress.IPv6Address("2001:db8::1")
PORT = 8080
T = TypeVar("T")


@dataclass
class Node:
    """One node namespace with its responder."""

    ns: str
    thread: NetnsThread
    responder: Responder
    mac: str
    port: str  # its bridge port in the switch namespace
    listeners: list[socket.socket] = field(default_factory=list)


@dataclass
class L2Lab:
    """Client + nodes on one bridge."""

    lab: NetnsLab
    sw: str
    client: str
    client_thread: NetnsThread
    client_mac: str
    nodes: list[Node]

    def listen(self, node: Node, vip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
        """A TCP listener on ``vip``:PORT inside ``node`` (the kernel completes handshakes)."""

        def make() -> socket.socket:
            fam = socket.AF_INET if vip.version == 4 else socket.AF_INET6
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((str(vip), PORT))
            s.listen(16)
            return s

        node.listeners.append(node.thread.call(make))

    def connect(self, vip: ipaddress.IPv4Address | ipaddress.IPv6Address, timeout: float = 5.0) -> None:
        """TCP-connect from the client to ``vip``:PORT (raises when unreachable)."""

        def run() -> None:
            with socket.create_connection((str(vip), PORT), timeout=timeout):
                pass

        self.client_thread.call(run)

    def wait_neigh(self, addr: object, mac: str, timeout: float = 2.0) -> tuple[str | None, list[str]]:
        """Poll the client's neighbour entry until it has ``mac`` or ``timeout`` passes; returns the last."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.lab.neigh(self.client, str(addr))
            if got[0] == mac or time.monotonic() > deadline:
                return got
            time.sleep(0.01)


def _node(lab: NetnsLab, sw: str, index: int) -> Node:
    ns = lab.ns(f"n{index}")
    port = f"pn{index}"
    lab.sysctl(
        ns,
        net__ipv6__conf__default__accept_dad=0,
        net__ipv6__conf__all__accept_dad=0,
        net__ipv4__conf__all__arp_ignore=1,
        net__ipv4__conf__all__arp_announce=2,
    )
    lab.veth(ns, "eth0", sw, port)
    lab.ip(ns, "addr", "add", f"192.0.2.{10 + index}/24", "dev", "eth0")
    lab.ip(ns, "addr", "add", f"2001:db8::{10 + index}/64", "dev", "eth0", "nodad")
    lab.ip(ns, "link", "add", "kube-ipvs0", "type", "bridge")
    lab.ip(ns, "link", "set", "kube-ipvs0", "up")
    lab.ip(ns, "addr", "add", f"{VIP4}/32", "dev", "kube-ipvs0")
    lab.ip(ns, "addr", "add", f"{VIP6}/128", "dev", "kube-ipvs0", "nodad")
    thread = lab.thread(ns)
    responder = thread.call(Responder, "eth0")
    lab.defer(responder.stop)
    responder.start()
    node = Node(ns=ns, thread=thread, responder=responder, mac=lab.link_mac(ns, "eth0"), port=port)

    def close_listeners() -> None:
        for s in node.listeners:
            s.close()

    lab.defer(close_listeners)
    return node


@contextlib.contextmanager
def l2_lab(tag: str, *, nodes: int = 1, snooping: bool = False) -> Iterator[L2Lab]:
    """Build the topology; everything is removed on exit, also on failure."""
    with netns_lab(tag) as lab:
        sw = lab.ns("sw")
        client = lab.ns("c")
        lab.veth(client, "eth0", sw, "pc")
        made = [_node(lab, sw, i) for i in range(1, nodes + 1)]
        lab.bridge(sw, "br0", "pc", *(n.port for n in made), snooping=snooping, querier=snooping)
        lab.ip(client, "addr", "add", f"{CLIENT4}/24", "dev", "eth0")
        lab.ip(client, "addr", "add", f"{CLIENT6}/64", "dev", "eth0", "nodad")
        yield L2Lab(
            lab=lab,
            sw=sw,
            client=client,
            client_thread=lab.thread(client),
            client_mac=lab.link_mac(client, "eth0"),
            nodes=made,
        )


class Prober:
    """A raw-socket ARP/NDP client; create it through the client's NetnsThread."""

    def __init__(self, interface: str = "eth0") -> None:
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        self.sock.bind((interface, 0))
        self.mac: bytes = self.sock.getsockname()[4]

    def send(self, frame: bytes) -> None:
        """Send one raw frame; errors for frames the kernel refuses are ignored."""
        with contextlib.suppress(OSError):
            self.sock.send(frame)

    def _collect(self, match: Callable[[bytes], T | None], timeout: float) -> list[T]:
        found: list[T] = []
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([self.sock], [], [], left)[0]:
                break
            got = match(self.sock.recv(4096))
            if got is not None:
                found.append(got)
        return found

    def arp(
        self,
        target: ipaddress.IPv4Address,
        *,
        sender: ipaddress.IPv4Address = CLIENT4,
        eth_dst: bytes = b"\xff" * 6,
        timeout: float = 1.0,
    ) -> list[str]:
        """Send one who-has; return the MACs of the replies seen within ``timeout``."""
        self.send(build_request(self.mac, sender, target=target, eth_dst=eth_dst))

        def match(frame: bytes) -> str | None:
            pkt = parse_arp(frame)
            if pkt and pkt.op == OP_REPLY and pkt.sender_ip == target and pkt.target_ip == sender:
                return pkt.sender_mac.hex(":")
            return None

        return self._collect(match, timeout)

    def ns(
        self, target: ipaddress.IPv6Address, *, src: ipaddress.IPv6Address = CLIENT6, timeout: float = 1.0
    ) -> list[tuple[str, str, int]]:
        """Send one NS (DAD when ``src`` is ``::``); return (lladdr, IPv6 dst, flags) of the answers."""
        self.send(build_ns(self.mac, src, target=target))

        def match(frame: bytes) -> tuple[str, str, int] | None:
            pkt = parse_ndp(frame)
            if (
                pkt
                and pkt.type == NA_TYPE
                and pkt.target == target
                and pkt.lladdr is not None
                and (src == UNSPECIFIED or pkt.dst == src)
            ):  # skip takeover NAs unless DAD
                return pkt.lladdr.hex(":"), str(pkt.dst), pkt.flags
            return None

        return self._collect(match, timeout)

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()


__all__ = ["CLIENT4", "CLIENT6", "PORT", "UNSPECIFIED", "VIP4", "VIP6", "L2Lab", "Node", "Prober", "l2_lab"]

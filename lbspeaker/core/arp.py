"""ARP over Ethernet: frame codec and the answer decision of the L2 responder.

Why pure: the responder's behaviour (what it answers, what it drops and why) is decided here on
plain bytes, so it is tested with tables and golden frames, without sockets or root.

Invariants:
- ``decide_arp`` never raises, whatever the bytes; garbage is ``Verdict.MALFORMED``.
- A frame is answered only when it is an ARP request (op 1) for an IPv4 address in the owned table,
  sent by another station (not our MAC, not a multicast sender MAC), and is not a gratuitous ARP
  (sender IP == target IP: another node announcing itself; never answered).
- RFC 5227 probes (sender IP 0.0.0.0) for an owned address ARE answered (``Verdict.PROBE``), like the
  Linux kernel does: the prober must see the address is taken, or it would configure a duplicate.
- Replies go to the requester's ARP sender MAC (unicast), also for unicast requests: after a
  gratuitous ARP a client re-checks the new MAC with unicast requests and must get an answer.
- A frame whose ARP sender IP is an owned address but whose sender MAC is not ours (a reply, a
  GARP, or a request made with our address) is ``Verdict.CONFLICT`` and is not answered.
- Replies are precomputed per owned address (``ArpTable``); the hot path only concatenates bytes.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from collections.abc import Iterable
from dataclasses import dataclass

ETH_P_ARP = 0x0806
ETH_HLEN = 14
ARP_LEN = 28
ARP_FRAME_LEN = ETH_HLEN + ARP_LEN
OP_REQUEST = 1
OP_REPLY = 2
BROADCAST_MAC = b"\xff" * 6
ZERO_MAC = b"\x00" * 6

_ETHERTYPE_ARP = b"\x08\x06"
_ARP_FIXED = b"\x00\x01\x08\x00\x06\x04"  # htype Ethernet, ptype IPv4, hlen 6, plen 4
_OP_REQUEST = b"\x00\x01"
_OP_REPLY = b"\x00\x02"
_ZERO_IP = b"\x00\x00\x00\x00"


class Verdict(enum.Enum):
    """What the responder does with one received frame (ARP or NDP) and why."""

    REPLY = "reply"
    PROBE = "probe"
    DAD = "dad"
    NOT_ARP = "not_arp"
    NOT_NDP = "not_ndp"
    NOT_REQUEST = "not_request"
    NOT_OWNED = "not_owned"
    GRATUITOUS = "gratuitous"
    OWN_FRAME = "own_frame"
    CONFLICT = "conflict"
    MALFORMED = "malformed"

    @property
    def answered(self) -> bool:
        """True when the decision comes with a frame to send."""
        return self in _ANSWERED


_ANSWERED = frozenset({Verdict.REPLY, Verdict.PROBE, Verdict.DAD})


def parse_mac(text: str) -> bytes:
    """Parse ``aa:bb:cc:dd:ee:ff`` (or ``-`` separated) into 6 bytes; ValueError when invalid."""
    parts = text.replace("-", ":").split(":")
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        raise ValueError(f"parsing MAC address '{text}': want 6 colon-separated hex octets")
    return bytes(int(p, 16) for p in parts)


def format_mac(mac: bytes) -> str:
    """Format 6 bytes as ``aa:bb:cc:dd:ee:ff``."""
    return ":".join(f"{b:02x}" for b in mac)


@dataclass(frozen=True)
class ArpPacket:
    """One decoded Ethernet+ARP frame (IPv4 over Ethernet only)."""

    eth_dst: bytes
    eth_src: bytes
    op: int
    sender_mac: bytes
    sender_ip: ipaddress.IPv4Address
    target_mac: bytes
    target_ip: ipaddress.IPv4Address

    @property
    def gratuitous(self) -> bool:
        """True when sender IP equals target IP (an announcement, not a question)."""
        return self.sender_ip == self.target_ip

    @property
    def probe(self) -> bool:
        """True for an RFC 5227 probe (request with sender IP 0.0.0.0)."""
        return self.op == OP_REQUEST and int(self.sender_ip) == 0


def parse_arp(frame: bytes) -> ArpPacket | None:
    """Decode an Ethernet+ARP frame; None when it is not a well-formed IPv4-over-Ethernet ARP."""
    if len(frame) < ARP_FRAME_LEN or frame[12:14] != _ETHERTYPE_ARP or frame[14:20] != _ARP_FIXED:
        return None
    return ArpPacket(
        eth_dst=bytes(frame[0:6]),
        eth_src=bytes(frame[6:12]),
        op=int.from_bytes(frame[20:22], "big"),
        sender_mac=bytes(frame[22:28]),
        sender_ip=ipaddress.IPv4Address(bytes(frame[28:32])),
        target_mac=bytes(frame[32:38]),
        target_ip=ipaddress.IPv4Address(bytes(frame[38:42])),
    )


def build_arp(
    op: int,
    *,
    eth_src: bytes,
    eth_dst: bytes,
    sender_mac: bytes,
    sender_ip: ipaddress.IPv4Address,
    target_mac: bytes,
    target_ip: ipaddress.IPv4Address,
) -> bytes:
    """Encode one Ethernet+ARP frame (42 bytes; the NIC pads to the Ethernet minimum)."""
    for name, mac in (
        ("eth_src", eth_src),
        ("eth_dst", eth_dst),
        ("sender_mac", sender_mac),
        ("target_mac", target_mac),
    ):
        if len(mac) != 6:
            raise ValueError(f"building ARP frame: {name}: want 6 bytes, got {len(mac)}")
    return (
        eth_dst
        + eth_src
        + _ETHERTYPE_ARP
        + _ARP_FIXED
        + struct.pack("!H", op)
        + sender_mac
        + sender_ip.packed
        + target_mac
        + target_ip.packed
    )


def build_request(
    mac: bytes, ip: ipaddress.IPv4Address, *, target: ipaddress.IPv4Address, eth_dst: bytes = BROADCAST_MAC
) -> bytes:
    """A who-has request for ``target`` from (``mac``, ``ip``); broadcast unless ``eth_dst`` is given."""
    return build_arp(
        OP_REQUEST,
        eth_src=mac,
        eth_dst=eth_dst,
        sender_mac=mac,
        sender_ip=ip,
        target_mac=ZERO_MAC,
        target_ip=target,
    )


def build_garp(mac: bytes, ip: ipaddress.IPv4Address) -> bytes:
    """A gratuitous ARP in request form (moves an existing client entry at once, unlike a reply)."""
    return build_arp(
        OP_REQUEST,
        eth_src=mac,
        eth_dst=BROADCAST_MAC,
        sender_mac=mac,
        sender_ip=ip,
        target_mac=ZERO_MAC,
        target_ip=ip,
    )


def build_reply(request: ArpPacket, *, mac: bytes) -> bytes:
    """The reply to ``request`` claiming its target IP for ``mac`` (slow path; tests, tools)."""
    return build_arp(
        OP_REPLY,
        eth_src=mac,
        eth_dst=request.sender_mac,
        sender_mac=mac,
        sender_ip=request.target_ip,
        target_mac=request.sender_mac,
        target_ip=request.sender_ip,
    )


@dataclass(frozen=True)
class ArpTable:
    """The owned IPv4 addresses with their precomputed reply middles; immutable, swapped atomically."""

    mac: bytes
    templates: dict[bytes, bytes]

    @classmethod
    def build(cls, mac: bytes, ips: Iterable[ipaddress.IPv4Address]) -> ArpTable:
        """Precompute, per owned IP, the reply bytes between the requester's MAC and its fields."""
        if len(mac) != 6:
            raise ValueError(f"building ARP table: mac: want 6 bytes, got {len(mac)}")
        head = mac + _ETHERTYPE_ARP + _ARP_FIXED + _OP_REPLY + mac
        return cls(mac=mac, templates={ip.packed: head + ip.packed for ip in ips})

    def owns(self, ip: ipaddress.IPv4Address) -> bool:
        """True when ``ip`` is answered."""
        return ip.packed in self.templates


def decide_arp(frame: bytes, table: ArpTable) -> tuple[Verdict, bytes | None]:
    """Decide what to do with one received frame; the reply frame when the verdict is answered."""
    if len(frame) < ETH_HLEN:
        return Verdict.MALFORMED, None
    if frame[12:14] != _ETHERTYPE_ARP:
        return Verdict.NOT_ARP, None
    if len(frame) < ARP_FRAME_LEN or frame[14:20] != _ARP_FIXED:
        return Verdict.MALFORMED, None
    op = frame[20:22]
    sha = frame[22:28]
    spa = frame[28:32]
    tpa = frame[38:42]
    templates = table.templates
    if op != _OP_REQUEST:
        if op == _OP_REPLY and spa in templates and sha != table.mac:
            return Verdict.CONFLICT, None
        return Verdict.NOT_REQUEST, None
    if spa == tpa:
        if spa in templates and sha != table.mac:
            return Verdict.CONFLICT, None
        return Verdict.GRATUITOUS, None
    if spa in templates and sha != table.mac:
        return Verdict.CONFLICT, None  # someone else uses our address as its own
    middle = templates.get(tpa)
    if middle is None:
        return Verdict.NOT_OWNED, None
    if sha[0] & 1:
        return Verdict.MALFORMED, None  # a multicast/broadcast sender MAC cannot be answered
    if sha == table.mac:
        return Verdict.OWN_FRAME, None
    reply = sha + middle + sha + spa
    return (Verdict.PROBE if spa == _ZERO_IP else Verdict.REPLY), reply

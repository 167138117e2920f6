"""IPv6 Neighbor Discovery over Ethernet: NS/NA codec, checksum, and the responder's decision.

Why pure: what the NDP responder answers, drops or flags as a conflict is decided here on bytes,
so it is checked with golden frames and an independent decoder (scapy) in unit tests.

Invariants:
- ``decide_ndp`` never raises, whatever the bytes; invalid frames are ``Verdict.MALFORMED``. The
  RFC 4861 §7.1.1 validity checks apply: hop limit 255, code 0, ICMPv6 length >= 24, valid
  checksum, non-multicast target, no zero-length option, and a DAD probe (source ``::``) must go to
  the target's solicited-node group without a source link-layer option.
- A Neighbor Solicitation for an owned target is answered with a Neighbor Advertisement with
  Solicited=1, Override=1, Router=0 and a target link-layer option, unicast to the solicitor.
- A DAD probe for an owned target (another node about to configure our VIP) is answered the RFC 4861
  §7.2.4 way: NA to all-nodes ff02::1 with Solicited=0, Override=1 — the prober sees the conflict.
- An NA from another MAC for an owned target, or an NS from another MAC whose source address is
  owned, is ``Verdict.CONFLICT`` (duplicate announcer) and is not answered.
- NA source address: the interface's link-local address when known, else the target itself (both
  are addresses of the sending node; clients do not check the source beyond that).
- Only frames with ICMPv6 directly after the IPv6 header are inspected (no extension headers).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from lbspeaker.core.arp import Verdict

ETH_P_IPV6 = 0x86DD
NS_TYPE = 135
NA_TYPE = 136
OPT_SOURCE_LL = 1
OPT_TARGET_LL = 2
NA_ROUTER = 0x80
NA_SOLICITED = 0x40
NA_OVERRIDE = 0x20
ALL_NODES = ipaddress.IPv6Address("ff02::1")
UNSPECIFIED = ipaddress.IPv6Address("::")

_ETHERTYPE_IPV6 = b"\x86\xdd"
_IPV6_HLEN = 40
_ICMP_OFF = 14 + _IPV6_HLEN
_NH_ICMPV6 = 58
_ZERO16 = b"\x00" * 16
_SOLICITED_PREFIX = bytes.fromhex("ff02" + "00" * 9 + "01ff")  # ff02::1:ff00:0/104
_NA_LEN = 32  # 24 bytes of NA + one 8-byte target link-layer option


def solicited_node(addr: ipaddress.IPv6Address) -> ipaddress.IPv6Address:
    """The solicited-node multicast group ff02::1:ffXX:XXXX of ``addr``."""
    return ipaddress.IPv6Address(_SOLICITED_PREFIX + addr.packed[13:])


def multicast_mac(group: ipaddress.IPv6Address) -> bytes:
    """The Ethernet multicast MAC 33:33:XX:XX:XX:XX of an IPv6 multicast group."""
    return b"\x33\x33" + group.packed[12:]


def _ones_sum(value: int) -> int:
    """Fold a word-aligned big integer to its 16-bit ones' complement sum (nonzero data)."""
    return value % 0xFFFF or 0xFFFF


def icmpv6_checksum(src: ipaddress.IPv6Address, dst: ipaddress.IPv6Address, message: bytes) -> int:
    """The ICMPv6 checksum of ``message`` (its checksum field must be zero) over the pseudo-header."""
    data = message + b"\x00" if len(message) % 2 else message
    total = int.from_bytes(src.packed + dst.packed, "big") + len(message) + _NH_ICMPV6
    return 0xFFFF - _ones_sum(total + int.from_bytes(data, "big"))


@dataclass(frozen=True)
class NdpPacket:
    """One decoded and validated Ethernet+IPv6+ICMPv6 NS or NA."""

    eth_dst: bytes
    eth_src: bytes
    src: ipaddress.IPv6Address
    dst: ipaddress.IPv6Address
    type: int
    flags: int
    target: ipaddress.IPv6Address
    lladdr: bytes | None  # source link-layer option of an NS, target link-layer option of an NA

    @property
    def dad(self) -> bool:
        """True for a duplicate address detection probe (NS from ``::``)."""
        return self.type == NS_TYPE and self.src == UNSPECIFIED


def _validate(frame: bytes) -> tuple[Verdict, int, bytes | None]:
    """Common RFC 4861 checks; returns (verdict or REPLY for valid, ICMPv6 type, link-layer option)."""
    n = len(frame)
    if n < 14:
        return Verdict.MALFORMED, 0, None
    if frame[12:14] != _ETHERTYPE_IPV6:
        return Verdict.NOT_NDP, 0, None
    if n < _ICMP_OFF + 4 or frame[14] >> 4 != 6:
        return Verdict.MALFORMED, 0, None
    typ = frame[_ICMP_OFF]
    if frame[20] != _NH_ICMPV6 or typ not in (NS_TYPE, NA_TYPE):
        return Verdict.NOT_NDP, 0, None
    plen = (frame[18] << 8) | frame[19]
    if plen < 24 or n < _ICMP_OFF + plen or frame[21] != 255 or frame[_ICMP_OFF + 1] != 0:
        return Verdict.MALFORMED, typ, None
    icmp = frame[_ICMP_OFF : _ICMP_OFF + plen]
    total = int.from_bytes(frame[22:54], "big") + plen + _NH_ICMPV6
    total += int.from_bytes(icmp + b"\x00" if plen % 2 else icmp, "big")
    if total % 0xFFFF or icmp[8] == 0xFF:
        return Verdict.MALFORMED, typ, None  # bad checksum or multicast target
    lladdr = None
    want = OPT_SOURCE_LL if typ == NS_TYPE else OPT_TARGET_LL
    i = 24
    while i < plen:
        if i + 2 > plen:
            return Verdict.MALFORMED, typ, None
        olen = icmp[i + 1] * 8
        if olen == 0 or i + olen > plen:
            return Verdict.MALFORMED, typ, None
        if icmp[i] == want and olen >= 8:
            lladdr = bytes(icmp[i + 2 : i + 8])
        i += olen
    return Verdict.REPLY, typ, lladdr


def parse_ndp(frame: bytes) -> NdpPacket | None:
    """Decode and validate an NS or NA frame; None when it is not a valid one."""
    verdict, typ, lladdr = _validate(frame)
    if verdict is not Verdict.REPLY:
        return None
    return NdpPacket(
        eth_dst=bytes(frame[0:6]),
        eth_src=bytes(frame[6:12]),
        src=ipaddress.IPv6Address(bytes(frame[22:38])),
        dst=ipaddress.IPv6Address(bytes(frame[38:54])),
        type=typ,
        flags=frame[_ICMP_OFF + 4],
        target=ipaddress.IPv6Address(bytes(frame[_ICMP_OFF + 8 : _ICMP_OFF + 24])),
        lladdr=lladdr,
    )


def _frame(
    eth_dst: bytes,
    eth_src: bytes,
    *,
    src: ipaddress.IPv6Address,
    dst: ipaddress.IPv6Address,
    message: bytes,
    hop_limit: int = 255,
) -> bytes:
    """Wrap an ICMPv6 message (checksum field zero) into Ethernet+IPv6 and fill its checksum."""
    ck = icmpv6_checksum(src, dst, message).to_bytes(2, "big")
    ip = b"\x60\x00\x00\x00" + len(message).to_bytes(2, "big") + bytes([_NH_ICMPV6, hop_limit])
    return eth_dst + eth_src + _ETHERTYPE_IPV6 + ip + src.packed + dst.packed + message[:2] + ck + message[4:]


def build_ns(
    mac: bytes,
    src: ipaddress.IPv6Address,
    *,
    target: ipaddress.IPv6Address,
    dst: ipaddress.IPv6Address | None = None,
    eth_dst: bytes | None = None,
    hop_limit: int = 255,
) -> bytes:
    """A Neighbor Solicitation; multicast to the solicited-node group unless ``dst`` is given.

    From ``::`` it is a DAD probe and carries no source link-layer option.
    """
    dst = dst if dst is not None else solicited_node(target)
    if eth_dst is None:
        eth_dst = multicast_mac(dst) if dst.is_multicast else b"\xff" * 6
    opt = b"" if src == UNSPECIFIED else bytes([OPT_SOURCE_LL, 1]) + mac
    message = bytes([NS_TYPE, 0, 0, 0]) + _ZERO16[:4] + target.packed + opt
    return _frame(eth_dst, mac, src=src, dst=dst, message=message, hop_limit=hop_limit)


def build_na(
    mac: bytes,
    src: ipaddress.IPv6Address,
    *,
    target: ipaddress.IPv6Address,
    dst: ipaddress.IPv6Address,
    eth_dst: bytes,
    flags: int,
) -> bytes:
    """A Neighbor Advertisement with a target link-layer option for ``mac``."""
    message = bytes([NA_TYPE, 0, 0, 0, flags, 0, 0, 0]) + target.packed + bytes([OPT_TARGET_LL, 1]) + mac
    return _frame(eth_dst, mac, src=src, dst=dst, message=message)


def build_unsolicited_na(mac: bytes, src: ipaddress.IPv6Address, *, target: ipaddress.IPv6Address) -> bytes:
    """An unsolicited NA to all-nodes with Override=1 (takeover announcement and DAD defence)."""
    return build_na(mac, src, target=target, dst=ALL_NODES, eth_dst=multicast_mac(ALL_NODES), flags=NA_OVERRIDE)


@dataclass(frozen=True, slots=True)
class NaTemplate:
    """Precomputed pieces of the solicited NA for one owned target, plus its unsolicited NA."""

    head: bytes  # eth src .. IPv6 source address (the destination MAC goes before it)
    tail: bytes  # NA flags .. target link-layer option (after type, code, checksum)
    fixed_sum: int  # checksum contribution of everything but the destination address
    unsolicited: bytes


@dataclass(frozen=True)
class NdpTable:
    """The owned IPv6 addresses with their precomputed answers; immutable, swapped atomically."""

    mac: bytes
    source: ipaddress.IPv6Address | None
    templates: dict[bytes, NaTemplate]

    @classmethod
    def build(
        cls, mac: bytes, ips: Iterable[ipaddress.IPv6Address], *, source: ipaddress.IPv6Address | None = None
    ) -> NdpTable:
        """Precompute answers; ``source`` is the link-local NA source (None: the target itself)."""
        if len(mac) != 6:
            raise ValueError(f"building NDP table: mac: want 6 bytes, got {len(mac)}")
        templates: dict[bytes, NaTemplate] = {}
        for ip in ips:
            src = source if source is not None else ip
            ip6 = b"\x60\x00\x00\x00" + bytes([0, _NA_LEN, _NH_ICMPV6, 255])
            head = mac + _ETHERTYPE_IPV6 + ip6 + src.packed
            tail = bytes([NA_SOLICITED | NA_OVERRIDE, 0, 0, 0]) + ip.packed + bytes([OPT_TARGET_LL, 1]) + mac
            fixed = int.from_bytes(src.packed, "big") + _NA_LEN + _NH_ICMPV6
            fixed += int.from_bytes(bytes([NA_TYPE, 0, 0, 0]) + tail, "big")
            templates[ip.packed] = NaTemplate(
                head=head,
                tail=tail,
                fixed_sum=fixed % 0xFFFF,
                unsolicited=build_unsolicited_na(mac, src, target=ip),
            )
        return cls(mac=mac, source=source, templates=templates)

    def owns(self, ip: ipaddress.IPv6Address) -> bool:
        """True when ``ip`` is answered."""
        return ip.packed in self.templates


_NA_TYPE_CODE = bytes([NA_TYPE, 0])


def decide_ndp(frame: bytes, table: NdpTable) -> tuple[Verdict, bytes | None]:
    """Decide what to do with one received frame; the NA to send when the verdict is answered."""
    verdict, typ, lladdr = _validate(frame)
    if verdict is not Verdict.REPLY:
        return verdict, None
    target = frame[_ICMP_OFF + 8 : _ICMP_OFF + 24]
    entry = table.templates.get(target)
    if typ == NA_TYPE:
        mac = lladdr if lladdr is not None else frame[6:12]
        if entry is not None and mac != table.mac:
            return Verdict.CONFLICT, None
        return Verdict.NOT_REQUEST, None
    src = frame[22:38]
    if src == _ZERO16:
        if lladdr is not None or frame[38:54] != _SOLICITED_PREFIX + target[13:]:
            return Verdict.MALFORMED, None
        if entry is None:
            return Verdict.NOT_OWNED, None
        if frame[6:12] == table.mac:
            return Verdict.OWN_FRAME, None
        return Verdict.DAD, entry.unsolicited
    if src[0] == 0xFF:
        return Verdict.MALFORMED, None
    mac = lladdr if lladdr is not None else frame[6:12]
    if src in table.templates and mac != table.mac:
        return Verdict.CONFLICT, None  # someone else uses our address as its own
    if entry is None:
        return Verdict.NOT_OWNED, None
    if mac[0] & 1:
        return Verdict.MALFORMED, None
    if mac == table.mac:
        return Verdict.OWN_FRAME, None
    cksum = (0xFFFF - ((entry.fixed_sum + int.from_bytes(src, "big")) % 0xFFFF or 0xFFFF)).to_bytes(2, "big")
    return Verdict.REPLY, mac + entry.head + src + _NA_TYPE_CODE + cksum + entry.tail

"""The responder's classic BPF program, run by a tiny interpreter (jump offsets are easy to get wrong)."""

from __future__ import annotations

import ipaddress

import pytest

from lbspeaker.core.arp import build_garp, build_request, parse_mac
from lbspeaker.core.errors import NetworkError
from lbspeaker.core.ndp import build_na, build_ns, multicast_mac
from lbspeaker.speaker.rawsock import FILTER, PACKET_OTHERHOST, SNAPLEN, ipv6_mreq
from lbspeaker.speaker.responder import Responder

MAC = parse_mac("02:00:00:00:00:01")
V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address
PACKET_HOST, PACKET_BROADCAST, PACKET_MULTICAST = 0, 1, 2


def run_bpf(program: list[tuple[int, int, int, int]], frame: bytes, pkttype: int) -> int:
    """Interpret the subset of classic BPF the filter uses; returns the accepted length."""
    acc = 0
    pc = 0
    for _ in range(len(program) + 1):
        code, jt, jf, k = program[pc]
        pc += 1
        if code == 0x20 and k == 0xFFFFF004:
            acc = pkttype
        elif code in (0x20, 0x28, 0x30):
            size = {0x20: 4, 0x28: 2, 0x30: 1}[code]
            if k + size > len(frame):
                return 0  # out-of-bounds load aborts the filter: drop
            acc = int.from_bytes(frame[k : k + size], "big")
        elif code == 0x15:
            pc += jt if acc == k else jf
        elif code == 0x06:
            return k
        else:
            raise AssertionError(f"opcode {code:#x} not interpreted")
    raise AssertionError("program did not return")


ARP_REQ = build_request(MAC, V4("192.0.2.1"), target=V4("192.0.2.100"))
NS = build_ns(MAC, V6("2001:db8::1"), target=V6("2001:db8::100"))
NA = build_na(
    MAC,
    V6("fe80::1"),
    target=V6("2001:db8::100"),
    dst=V6("ff02::1"),
    eth_dst=multicast_mac(V6("ff02::1")),
    flags=0x20,
)
ECHO = NS[:54] + b"\x80" + NS[55:]
UDP6 = NS[:20] + b"\x11" + NS[21:]
IPV4 = ARP_REQ[:12] + b"\x08\x00" + ARP_REQ[14:]


@pytest.mark.parametrize(
    ("frame", "pkttype", "accepted"),
    [
        (ARP_REQ, PACKET_BROADCAST, True),
        (build_garp(MAC, V4("192.0.2.100")), PACKET_BROADCAST, True),
        (ARP_REQ, PACKET_HOST, True),
        (ARP_REQ, PACKET_OTHERHOST, False),
        (NS, PACKET_MULTICAST, True),
        (NA, PACKET_MULTICAST, True),
        (NS, PACKET_OTHERHOST, False),
        (ECHO, PACKET_HOST, False),
        (UDP6, PACKET_HOST, False),
        (IPV4, PACKET_HOST, False),
        (NS[:40], PACKET_HOST, False),
        (ARP_REQ[:13], PACKET_BROADCAST, False),
        (ARP_REQ[:20], PACKET_BROADCAST, True),  # truncated ARP reaches the decoder, which says MALFORMED
    ],
)
def test_filter(frame: bytes, pkttype: int, accepted: bool) -> None:
    assert run_bpf(FILTER, frame, pkttype) == (SNAPLEN if accepted else 0)


def test_mreq_layout() -> None:
    mreq = ipv6_mreq(V6("ff02::1:ff00:100"), 7)
    assert len(mreq) == 20 and mreq[:16] == V6("ff02::1:ff00:100").packed
    assert int.from_bytes(mreq[16:], "little") == 7


def test_responder_on_missing_interface_is_a_network_error() -> None:
    with pytest.raises(NetworkError, match="opening interface 'lbt-nosuch0'"):
        Responder("lbt-nosuch0")

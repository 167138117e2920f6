"""NDP codec and decision: golden bytes, scapy as independent encoder/decoder, RFC 4861 checks."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
    in6_chksum,
)
from scapy.layers.l2 import Ether

from lbspeaker.core.arp import Verdict, parse_mac
from lbspeaker.core.ndp import (
    ALL_NODES,
    NA_OVERRIDE,
    NA_SOLICITED,
    NS_TYPE,
    UNSPECIFIED,
    NdpTable,
    build_na,
    build_ns,
    build_unsolicited_na,
    decide_ndp,
    icmpv6_checksum,
    multicast_mac,
    parse_ndp,
    solicited_node,
)

V6 = ipaddress.IPv6Address
CLIENT_MAC = parse_mac("02:00:00:00:00:01")
NODE_MAC = parse_mac("02:00:00:00:00:02")
OTHER_MAC = parse_mac("02:00:00:00:00:03")
CLIENT_IP = V6("2001:db8::1")
VIP = V6("2001:db8::100")
LL = V6("fe80::2")
TABLE = NdpTable.build(NODE_MAC, [VIP, V6("2001:db8::101")], source=LL)

GOLDEN_NS = bytes.fromhex(
    "3333ff000100"
    "020000000001"
    "86dd"
    "60000000"
    "0020"
    "3a"
    "ff"
    "20010db8000000000000000000000001"
    "ff0200000000000000000001ff000100"
    "87"
    "00"
    "1a2b"
    "00000000"
    "20010db8000000000000000000000100"
    "01"
    "01"
    "020000000001"
)
GOLDEN_NA = bytes.fromhex(
    "020000000001"
    "020000000002"
    "86dd"
    "60000000"
    "0020"
    "3a"
    "ff"
    "fe800000000000000000000000000002"
    "20010db8000000000000000000000001"
    "88"
    "00"
    "b8ab"
    "60000000"
    "20010db8000000000000000000000100"
    "02"
    "01"
    "020000000002"
)
GOLDEN_UNSOLICITED = bytes.fromhex(
    "333300000001"
    "020000000002"
    "86dd"
    "60000000"
    "0020"
    "3a"
    "ff"
    "fe800000000000000000000000000002"
    "ff020000000000000000000000000001"
    "88"
    "00"
    "2762"
    "20000000"
    "20010db8000000000000000000000100"
    "02"
    "01"
    "020000000002"
)


def _scapy_ns(
    src: str = "2001:db8::1",
    dst: str | None = None,
    *,
    target: str = "2001:db8::100",
    sll: bool = True,
    hlim: int = 255,
) -> bytes:
    dst = dst or str(solicited_node(V6(target)))
    pkt = (
        Ether(src="02:00:00:00:00:01", dst=multicast_mac(V6(dst)).hex(":"))
        / IPv6(src=src, dst=dst, hlim=hlim)
        / ICMPv6ND_NS(tgt=target)
    )
    if sll:
        pkt = pkt / ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:01")
    return bytes(pkt)


def _scapy_checksum_ok(frame: bytes) -> bool:
    pkt = Ether(frame)
    icmp = pkt[IPv6].payload
    sent = icmp.cksum
    raw = bytearray(bytes(icmp))
    raw[2:4] = b"\x00\x00"
    return bool(sent == in6_chksum(58, pkt[IPv6], bytes(raw)))  # type: ignore[no-untyped-call]


def test_golden_frames() -> None:
    assert build_ns(CLIENT_MAC, CLIENT_IP, target=VIP) == GOLDEN_NS
    assert decide_ndp(GOLDEN_NS, TABLE) == (Verdict.REPLY, GOLDEN_NA)
    assert TABLE.templates[VIP.packed].unsolicited == GOLDEN_UNSOLICITED
    assert build_unsolicited_na(NODE_MAC, LL, target=VIP) == GOLDEN_UNSOLICITED


def test_scapy_ns_answered_and_na_decoded_by_scapy() -> None:
    verdict, reply = decide_ndp(_scapy_ns(), TABLE)
    assert verdict is Verdict.REPLY and reply is not None
    pkt = Ether(reply)
    assert (pkt.dst, pkt.src) == ("02:00:00:00:00:01", "02:00:00:00:00:02")
    assert (pkt[IPv6].src, pkt[IPv6].dst, pkt[IPv6].hlim) == ("fe80::2", "2001:db8::1", 255)
    na = pkt[ICMPv6ND_NA]
    assert (na.R, na.S, na.O, na.tgt) == (0, 1, 1, "2001:db8::100")
    assert pkt[ICMPv6NDOptDstLLAddr].lladdr == "02:00:00:00:00:02"
    assert _scapy_checksum_ok(reply)


@pytest.mark.parametrize("client", ["2001:db8::1", "2001:db8:ffff:ffff:ffff:ffff:ffff:fffe", "fe80::1"])
def test_incremental_checksum_matches_scapy(client: str) -> None:
    _, reply = decide_ndp(_scapy_ns(src=client), TABLE)
    assert reply is not None and _scapy_checksum_ok(reply)


def test_unicast_ns_without_sll_replies_to_ethernet_source() -> None:
    ns = build_ns(CLIENT_MAC, CLIENT_IP, target=VIP, dst=VIP, eth_dst=NODE_MAC)
    ns_no_opt = _scapy_ns(dst=str(VIP), sll=False)
    for frame in (ns, ns_no_opt):
        verdict, reply = decide_ndp(frame, TABLE)
        assert verdict is Verdict.REPLY and reply is not None and reply[:6] == CLIENT_MAC


def test_dad_probe_answered_to_all_nodes() -> None:
    verdict, reply = decide_ndp(_scapy_ns(src="::", sll=False), TABLE)
    assert verdict is Verdict.DAD and reply is not None
    pkt = Ether(reply)
    assert (pkt.dst, pkt[IPv6].dst) == ("33:33:00:00:00:01", "ff02::1")
    na = pkt[ICMPv6ND_NA]
    assert (na.R, na.S, na.O) == (0, 0, 1)
    assert _scapy_checksum_ok(reply)


def test_no_link_local_uses_target_as_source() -> None:
    table = NdpTable.build(NODE_MAC, [VIP])
    _, reply = decide_ndp(GOLDEN_NS, table)
    assert reply is not None and Ether(reply)[IPv6].src == str(VIP) and _scapy_checksum_ok(reply)


def _with_icmp(frame: bytes, offset: int, value: bytes, *, fix: bool = True) -> bytes:
    """Patch ICMPv6 bytes at ``offset`` and recompute the checksum when ``fix``."""
    icmp = bytearray(frame[54:])
    icmp[offset : offset + len(value)] = value
    if fix:
        icmp[2:4] = b"\x00\x00"
        ck = icmpv6_checksum(V6(frame[22:38]), V6(frame[38:54]), bytes(icmp))
        icmp[2:4] = ck.to_bytes(2, "big")
    return frame[:54] + bytes(icmp)


NA_FROM_OTHER = build_na(
    OTHER_MAC, V6("fe80::3"), target=VIP, dst=ALL_NODES, eth_dst=multicast_mac(ALL_NODES), flags=NA_OVERRIDE
)


@pytest.mark.parametrize(
    ("frame", "verdict"),
    [
        (_scapy_ns(target="2001:db8::7"), Verdict.NOT_OWNED),
        (_scapy_ns(hlim=64), Verdict.MALFORMED),
        (_scapy_ns(src="::"), Verdict.MALFORMED),  # DAD with a source link-layer option
        (_scapy_ns(src="::", dst="ff02::1", sll=False), Verdict.MALFORMED),  # DAD not to solicited-node
        (_scapy_ns(src="ff02::5"), Verdict.MALFORMED),
        (_with_icmp(GOLDEN_NS, 2, b"\x00\x00", fix=False), Verdict.MALFORMED),  # bad checksum
        (_with_icmp(GOLDEN_NS, 1, b"\x01"), Verdict.MALFORMED),  # code 1
        (_with_icmp(GOLDEN_NS, 25, b"\x00"), Verdict.MALFORMED),  # zero-length option
        (_with_icmp(GOLDEN_NS, 25, b"\x02"), Verdict.MALFORMED),  # option past the end
        (_with_icmp(GOLDEN_NS, 8, b"\xff\x02"), Verdict.MALFORMED),  # multicast target
        (build_ns(NODE_MAC, CLIENT_IP, target=VIP), Verdict.OWN_FRAME),
        (NA_FROM_OTHER, Verdict.CONFLICT),
        (build_ns(OTHER_MAC, VIP, target=CLIENT_IP), Verdict.CONFLICT),  # someone asks using our VIP
        (build_ns(NODE_MAC, VIP, target=CLIENT_IP), Verdict.NOT_OWNED),  # the node itself asking (looped)
        (
            build_na(NODE_MAC, LL, target=VIP, dst=ALL_NODES, eth_dst=multicast_mac(ALL_NODES), flags=NA_OVERRIDE),
            Verdict.NOT_REQUEST,
        ),
        (
            build_na(
                OTHER_MAC,
                V6("fe80::3"),
                target=V6("2001:db8::7"),
                dst=CLIENT_IP,
                eth_dst=CLIENT_MAC,
                flags=NA_SOLICITED,
            ),
            Verdict.NOT_REQUEST,
        ),
        (
            bytes(Ether() / IPv6(src="2001:db8::1", dst="2001:db8::100") / ICMPv6EchoRequest()),
            Verdict.NOT_NDP,
        ),
        (GOLDEN_NS[:12] + b"\x08\x06" + GOLDEN_NS[14:], Verdict.NOT_NDP),
        (GOLDEN_NS[:20] + b"\x11" + GOLDEN_NS[21:], Verdict.NOT_NDP),
        (GOLDEN_NS[:14] + b"\x40" + GOLDEN_NS[15:], Verdict.MALFORMED),  # IP version 4 in an IPv6 frame
        (GOLDEN_NS[:18] + b"\x00\x10" + GOLDEN_NS[20:], Verdict.MALFORMED),  # payload length 16 < 24
        (GOLDEN_NS[:18] + b"\x01\x00" + GOLDEN_NS[20:], Verdict.MALFORMED),  # payload longer than frame
    ],
    ids=lambda v: v.value if isinstance(v, Verdict) else "",
)
def test_verdicts(frame: bytes, verdict: Verdict) -> None:
    got, reply = decide_ndp(frame, TABLE)
    assert got is verdict
    assert reply is None


def test_ethernet_padding_ignored() -> None:
    assert decide_ndp(GOLDEN_NS + bytes(10), TABLE) == (Verdict.REPLY, GOLDEN_NA)


@pytest.mark.parametrize("cut", range(0, len(GOLDEN_NS)))
def test_truncated_ns_never_answered(cut: int) -> None:
    got, reply = decide_ndp(GOLDEN_NS[:cut], TABLE)
    assert reply is None
    assert got in (Verdict.MALFORMED, Verdict.NOT_NDP)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_raise(data: bytes) -> None:
    verdict, reply = decide_ndp(data, TABLE)
    assert (reply is not None) == verdict.answered


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=120), st.sampled_from([135, 136]))
def test_random_icmp_payload_never_raises(payload: bytes, typ: int) -> None:
    frame = GOLDEN_NS[:18] + len(payload).to_bytes(2, "big") + GOLDEN_NS[20:54] + bytes([typ]) + payload[1:]
    verdict, reply = decide_ndp(frame, TABLE)
    assert (reply is not None) == verdict.answered


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=4, max_size=64))
def test_checksum_matches_scapy(message: bytes) -> None:
    message = message[:2] + b"\x00\x00" + message[4:]
    ip = IPv6(src="2001:db8::1", dst="fe80::abcd")
    assert icmpv6_checksum(CLIENT_IP, V6("fe80::abcd"), message) == in6_chksum(58, ip, message)  # type: ignore[no-untyped-call]


@pytest.mark.parametrize(
    ("addr", "group", "mac"),
    [
        ("2001:db8::100", "ff02::1:ff00:100", "33:33:ff:00:01:00"),
        ("2001:db8::abcd:1234:5678", "ff02::1:ff34:5678", "33:33:ff:34:56:78"),
        ("fe80::1", "ff02::1:ff00:1", "33:33:ff:00:00:01"),
    ],
)
def test_solicited_node(addr: str, group: str, mac: str) -> None:
    assert solicited_node(V6(addr)) == V6(group)
    assert multicast_mac(V6(group)).hex(":") == mac


def test_parse_ndp() -> None:
    ns = parse_ndp(GOLDEN_NS)
    assert ns is not None and ns.type == NS_TYPE and ns.target == VIP and ns.lladdr == CLIENT_MAC
    assert not ns.dad
    dad = parse_ndp(build_ns(CLIENT_MAC, UNSPECIFIED, target=VIP))
    assert dad is not None and dad.dad and dad.lladdr is None
    na = parse_ndp(NA_FROM_OTHER)
    assert na is not None and na.lladdr == OTHER_MAC and na.flags == NA_OVERRIDE
    assert parse_ndp(GOLDEN_NS[:60]) is None


def test_table_errors() -> None:
    with pytest.raises(ValueError, match="mac: want 6 bytes"):
        NdpTable.build(b"", [VIP])
    assert TABLE.owns(VIP) and not TABLE.owns(V6("2001:db8::7"))


def test_jumbo_frames() -> None:
    from lbspeaker.speaker.rawsock import SNAPLEN

    huge_ns = GOLDEN_NS[:18] + (9000 - 54).to_bytes(2, "big") + GOLDEN_NS[20:] + bytes(9000 - len(GOLDEN_NS))
    assert decide_ndp(huge_ns[:SNAPLEN], TABLE) == (Verdict.MALFORMED, None)  # cut at the snap length
    assert decide_ndp(huge_ns, TABLE) == (Verdict.MALFORMED, None)  # checksum no longer matches

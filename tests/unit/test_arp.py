"""ARP codec and decision: golden bytes, scapy as an independent decoder/encoder, garbage never raises."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.l2 import ARP, Ether

from lbspeaker.core.arp import (
    BROADCAST_MAC,
    OP_REPLY,
    OP_REQUEST,
    ZERO_MAC,
    ArpTable,
    Verdict,
    build_arp,
    build_garp,
    build_reply,
    build_request,
    decide_arp,
    format_mac,
    parse_arp,
    parse_mac,
)

V4 = ipaddress.IPv4Address
CLIENT_MAC = parse_mac("02:00:00:00:00:01")
NODE_MAC = parse_mac("02:00:00:00:00:02")
OTHER_MAC = parse_mac("02:00:00:00:00:03")
CLIENT_IP = V4("192.0.2.1")
VIP = V4("192.0.2.100")
TABLE = ArpTable.build(NODE_MAC, [VIP, V4("192.0.2.101")])

GOLDEN_REQUEST = bytes.fromhex("ffffffffffff02000000000108060001080006040001020000000001c0000201000000000000c0000264")
GOLDEN_REPLY = bytes.fromhex("02000000000102000000000208060001080006040002020000000002c0000264020000000001c0000201")
GOLDEN_GARP = bytes.fromhex("ffffffffffff02000000000208060001080006040001020000000002c0000264000000000000c0000264")


def test_golden_request_reply_garp() -> None:
    assert build_request(CLIENT_MAC, CLIENT_IP, target=VIP) == GOLDEN_REQUEST
    assert decide_arp(GOLDEN_REQUEST, TABLE) == (Verdict.REPLY, GOLDEN_REPLY)
    assert build_garp(NODE_MAC, VIP) == GOLDEN_GARP


def test_reply_decoded_by_scapy() -> None:
    _, reply = decide_arp(GOLDEN_REQUEST, TABLE)
    assert reply is not None
    pkt = Ether(reply)
    assert (pkt.dst, pkt.src, pkt.type) == ("02:00:00:00:00:01", "02:00:00:00:00:02", 0x0806)
    a = pkt[ARP]
    assert (a.hwtype, a.ptype, a.hwlen, a.plen, a.op) == (1, 0x0800, 6, 4, OP_REPLY)
    assert (a.hwsrc, a.psrc, a.hwdst, a.pdst) == (
        "02:00:00:00:00:02",
        "192.0.2.100",
        "02:00:00:00:00:01",
        "192.0.2.1",
    )


def test_garp_decoded_by_scapy() -> None:
    pkt = Ether(build_garp(NODE_MAC, VIP))
    assert pkt.dst == "ff:ff:ff:ff:ff:ff"
    assert (pkt[ARP].op, pkt[ARP].psrc, pkt[ARP].pdst, pkt[ARP].hwsrc) == (
        OP_REQUEST,
        str(VIP),
        str(VIP),
        "02:00:00:00:00:02",
    )


def test_scapy_request_answered_like_slow_path() -> None:
    req = bytes(
        Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:00:01")
        / ARP(op=1, hwsrc="02:00:00:00:00:01", psrc="192.0.2.1", pdst="192.0.2.101")
    )
    verdict, reply = decide_arp(req, TABLE)
    parsed = parse_arp(req)
    assert verdict is Verdict.REPLY and parsed is not None
    assert reply == build_reply(parsed, mac=NODE_MAC)
    assert len(req) == 42  # scapy adds no padding at L2


def test_padded_and_unicast_requests_answered() -> None:
    padded = GOLDEN_REQUEST + bytes(18)  # minimum Ethernet frame
    assert decide_arp(padded, TABLE) == (Verdict.REPLY, GOLDEN_REPLY)
    unicast = build_request(CLIENT_MAC, CLIENT_IP, target=VIP, eth_dst=NODE_MAC)
    assert decide_arp(unicast, TABLE) == (Verdict.REPLY, GOLDEN_REPLY)


def test_probe_is_answered_with_zero_target_ip() -> None:
    probe = build_request(CLIENT_MAC, V4("0.0.0.0"), target=VIP)
    verdict, reply = decide_arp(probe, TABLE)
    assert verdict is Verdict.PROBE and verdict.answered and reply is not None
    a = Ether(reply)[ARP]
    assert (a.op, a.psrc, a.pdst, a.hwdst) == (OP_REPLY, str(VIP), "0.0.0.0", "02:00:00:00:00:01")


def _arp(op: int, *, smac: bytes = CLIENT_MAC, sip: str = "192.0.2.1", tip: str = "192.0.2.100") -> bytes:
    return build_arp(
        op,
        eth_src=smac,
        eth_dst=BROADCAST_MAC,
        sender_mac=smac,
        sender_ip=V4(sip),
        target_mac=ZERO_MAC,
        target_ip=V4(tip),
    )


@pytest.mark.parametrize(
    ("frame", "verdict"),
    [
        (_arp(OP_REQUEST, tip="192.0.2.7"), Verdict.NOT_OWNED),
        (_arp(OP_REPLY, sip="192.0.2.7"), Verdict.NOT_REQUEST),
        (_arp(3), Verdict.NOT_REQUEST),
        (_arp(OP_REQUEST, smac=OTHER_MAC, sip="192.0.2.7", tip="192.0.2.7"), Verdict.GRATUITOUS),
        (_arp(OP_REQUEST, smac=OTHER_MAC, sip="192.0.2.100", tip="192.0.2.100"), Verdict.CONFLICT),
        (_arp(OP_REPLY, smac=OTHER_MAC, sip="192.0.2.100", tip="192.0.2.1"), Verdict.CONFLICT),
        (_arp(OP_REQUEST, smac=NODE_MAC, sip="192.0.2.100", tip="192.0.2.100"), Verdict.GRATUITOUS),
        (_arp(OP_REPLY, smac=NODE_MAC, sip="192.0.2.100", tip="192.0.2.1"), Verdict.NOT_REQUEST),
        (_arp(OP_REQUEST, smac=NODE_MAC), Verdict.OWN_FRAME),
        (_arp(OP_REQUEST, smac=OTHER_MAC, sip="192.0.2.100", tip="192.0.2.1"), Verdict.CONFLICT),
        (_arp(OP_REQUEST, smac=parse_mac("01:00:5e:00:00:01")), Verdict.MALFORMED),
        (GOLDEN_REQUEST[:14] + b"\x00\x06" + GOLDEN_REQUEST[16:], Verdict.MALFORMED),  # htype IEEE 802
        (GOLDEN_REQUEST[:18] + b"\x10\x04" + GOLDEN_REQUEST[20:], Verdict.MALFORMED),  # hlen 16
        (GOLDEN_REQUEST[:12] + b"\x08\x00" + GOLDEN_REQUEST[14:], Verdict.NOT_ARP),
        (b"", Verdict.MALFORMED),
    ],
    ids=lambda v: v.value if isinstance(v, Verdict) else "",
)
def test_verdicts(frame: bytes, verdict: Verdict) -> None:
    got, reply = decide_arp(frame, TABLE)
    assert got is verdict
    assert reply is None


@pytest.mark.parametrize("cut", range(0, 42))
def test_truncated_request_is_malformed(cut: int) -> None:
    got, reply = decide_arp(GOLDEN_REQUEST[:cut], TABLE)
    assert reply is None
    assert got is Verdict.MALFORMED


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_raise(data: bytes) -> None:
    verdict, reply = decide_arp(data, TABLE)
    assert (reply is not None) == verdict.answered


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=80))
def test_random_arp_payload_never_raises(payload: bytes) -> None:
    frame = BROADCAST_MAC + CLIENT_MAC + b"\x08\x06" + payload
    verdict, reply = decide_arp(frame, TABLE)
    assert (reply is not None) == verdict.answered
    if reply is not None:
        assert len(reply) == 42 and reply[6:12] == NODE_MAC


def test_empty_table_answers_nothing() -> None:
    assert decide_arp(GOLDEN_REQUEST, ArpTable.build(NODE_MAC, ())) == (Verdict.NOT_OWNED, None)
    assert not ArpTable.build(NODE_MAC, ()).owns(VIP) and TABLE.owns(VIP)


def test_mac_helpers_and_errors() -> None:
    assert format_mac(parse_mac("02-AA-00-00-00-0f")) == "02:aa:00:00:00:0f"
    with pytest.raises(ValueError, match="parsing MAC address 'zz'"):
        parse_mac("zz")
    with pytest.raises(ValueError, match="mac: want 6 bytes"):
        ArpTable.build(b"\x00", [VIP])
    with pytest.raises(ValueError, match="eth_dst: want 6 bytes"):
        build_arp(
            1,
            eth_src=NODE_MAC,
            eth_dst=b"",
            sender_mac=NODE_MAC,
            sender_ip=VIP,
            target_mac=ZERO_MAC,
            target_ip=VIP,
        )


def test_parse_arp_fields() -> None:
    pkt = parse_arp(build_request(CLIENT_MAC, V4("0.0.0.0"), target=VIP))
    assert pkt is not None and pkt.probe and not pkt.gratuitous and pkt.target_ip == VIP
    garp = parse_arp(GOLDEN_GARP)
    assert garp is not None and garp.gratuitous and not garp.probe
    assert parse_arp(GOLDEN_REQUEST[:41]) is None


def test_jumbo_arp_frame_answered() -> None:
    assert decide_arp(GOLDEN_REQUEST + bytes(9000), TABLE) == (Verdict.REPLY, GOLDEN_REPLY)

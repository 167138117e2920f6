"""Membership core: heartbeat codec, replay window, liveness table."""

from __future__ import annotations

import hashlib
import hmac
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lbspeaker.core.membership import (
    MAX_DATAGRAM,
    Change,
    Codec,
    Heartbeat,
    Liveness,
    Receiver,
    ReplayWindow,
    Verdict,
)

KEY = b"k"
HB = Heartbeat("node-a", 1_700_000_000_000_000_000, 7, 1_700_000_000_123_456_789)
NOW = HB.timestamp_ns
SEC = 1_000_000_000
# The wire format is a contract between speaker versions (rolling upgrades): pin it.
GOLDEN = bytes.fromhex(
    "4c48010117979cfe362a0000000000000000000717979cfe3d85cd15066e6f64652d61"
    "42321720e40d97ade11a09c30e231a33c60d2bea1238e67280e530706f744fe2"
)


def resign(body: bytes, key: bytes = KEY) -> bytes:
    return body + hmac.new(key, body, hashlib.sha256).digest()


def test_golden_bytes_and_round_trip() -> None:
    assert Codec(KEY).encode(HB) == GOLDEN
    assert Codec(KEY).decode(GOLDEN).heartbeat == HB
    assert Codec(KEY).decode(GOLDEN).verdict is Verdict.ACCEPTED


def _flip(data: bytes, i: int) -> bytes:
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]


BODY = GOLDEN[:-32]


@pytest.mark.parametrize(
    ("data", "verdict"),
    [
        (b"", Verdict.MALFORMED),
        (b"LH", Verdict.MALFORMED),
        (b"\x00" * 400, Verdict.MALFORMED),
        (GOLDEN[:-1], Verdict.MALFORMED),
        (GOLDEN + b"\x00", Verdict.MALFORMED),
        (b"XX" + GOLDEN[2:], Verdict.MALFORMED),
        (resign(BODY[:2] + b"\x02" + BODY[3:]), Verdict.BAD_VERSION),  # version 2
        (resign(BODY[:3] + b"\x09" + BODY[4:]), Verdict.BAD_VERSION),  # unknown kind
        (resign(BODY[:28] + b"\x00"), Verdict.MALFORMED),  # empty name
        (resign(BODY[:28] + b"\x02\xff\xfe"), Verdict.MALFORMED),  # name not UTF-8
        (_flip(GOLDEN, 5), Verdict.BAD_MAC),  # incarnation
        (_flip(GOLDEN, 13), Verdict.BAD_MAC),  # seq
        (_flip(GOLDEN, 21), Verdict.BAD_MAC),  # timestamp
        (_flip(GOLDEN, 30), Verdict.BAD_MAC),  # name
        (_flip(GOLDEN, len(GOLDEN) - 1), Verdict.BAD_MAC),  # tag
        (resign(BODY, b"other"), Verdict.BAD_MAC),
    ],
)
def test_decode_rejects(data: bytes, verdict: Verdict) -> None:
    dec = Codec(KEY).decode(data)
    assert (dec.verdict, dec.heartbeat) == (verdict, None)


@given(st.binary(max_size=MAX_DATAGRAM + 8))
def test_decode_never_raises_on_garbage(data: bytes) -> None:
    assert Codec(KEY).decode(data).verdict is not Verdict.ACCEPTED


@given(st.integers(min_value=0, max_value=len(GOLDEN) - 1), st.integers(min_value=1, max_value=255))
def test_any_corruption_is_rejected(i: int, xor: int) -> None:
    bad = GOLDEN[:i] + bytes([GOLDEN[i] ^ xor]) + GOLDEN[i + 1 :]
    assert Codec(KEY).decode(bad).verdict is not Verdict.ACCEPTED


def test_previous_secret_verifies_during_rotation() -> None:
    rotated = Codec(b"new", previous=(KEY,))
    assert rotated.decode(GOLDEN).heartbeat == HB
    assert Codec(KEY).decode(rotated.encode(HB)).verdict is Verdict.BAD_MAC  # signs with the new one


@pytest.mark.parametrize(
    "hb",
    [
        Heartbeat("", 1, 1, 1),
        Heartbeat("x" * 254, 1, 1, 1),
        Heartbeat("a", -1, 1, 1),
        Heartbeat("a", 1, 2**64, 1),
    ],
)
def test_encode_refuses_unrepresentable(hb: Heartbeat) -> None:
    with pytest.raises(ValueError, match="encoding heartbeat"):
        Codec(KEY).encode(hb)


def test_empty_secret_is_a_fault() -> None:
    with pytest.raises(ValueError, match="secret"):
        Codec(b"")


def _hb(inc: int, seq: int, ts: int = NOW, sender: str = "node-a") -> Heartbeat:
    return Heartbeat(sender, inc, seq, ts)


@pytest.mark.parametrize(
    ("second", "now", "verdict"),
    [
        (_hb(5, 11), NOW, Verdict.ACCEPTED),  # next seq
        (_hb(5, 10), NOW, Verdict.REPLAYED),  # same packet again
        (_hb(5, 9), NOW, Verdict.REPLAYED),  # older seq
        (_hb(6, 1), NOW, Verdict.ACCEPTED),  # restart: newer incarnation, seq starts over
        (_hb(4, 99), NOW, Verdict.REPLAYED),  # older incarnation
        (_hb(5, 11, NOW - 31 * SEC), NOW, Verdict.TOO_OLD),
        (_hb(5, 11, NOW + 31 * SEC), NOW, Verdict.FROM_FUTURE),
        (_hb(4, 1, NOW + 40 * SEC), NOW + 40 * SEC, Verdict.ACCEPTED),  # silent > max_age: forgotten
        (_hb(5, 1, sender="node-b"), NOW, Verdict.ACCEPTED),  # windows are per sender
    ],
)
def test_replay_window(second: Heartbeat, now: int, verdict: Verdict) -> None:
    w = ReplayWindow(max_age_ns=30 * SEC)
    assert w.admit(_hb(5, 10), now_ns=NOW) is Verdict.ACCEPTED
    assert w.admit(second, now_ns=now) is verdict


def test_rejected_heartbeat_does_not_move_the_window() -> None:
    w = ReplayWindow(max_age_ns=30 * SEC)
    assert w.admit(_hb(5, 10, NOW - 31 * SEC), now_ns=NOW) is Verdict.TOO_OLD
    assert w.admit(_hb(5, 3), now_ns=NOW) is Verdict.ACCEPTED


def test_receiver_drops_its_own_heartbeats_and_replays() -> None:
    r = Receiver("node-b", Codec(KEY), ReplayWindow())
    assert r.receive(GOLDEN, now_ns=NOW).verdict is Verdict.ACCEPTED
    assert r.receive(GOLDEN, now_ns=NOW).verdict is Verdict.REPLAYED
    own = Codec(KEY).encode(_hb(1, 1, sender="node-b"))
    assert r.receive(own, now_ns=NOW).verdict is Verdict.SELF
    assert r.receive(b"junk", now_ns=NOW).verdict is Verdict.MALFORMED


def test_liveness_times_out_and_reports_transitions() -> None:
    lv = Liveness(timeout=0.1)
    assert lv.update(0.0) is None
    lv.heard("b", 1.0, incarnation=1)
    lv.heard("c", 1.05, incarnation=1)
    assert lv.update(1.05) == Change(frozenset("bc"), frozenset("bc"), frozenset(), frozenset())
    assert lv.update(1.09) is None
    assert lv.next_expiry(1.09) == pytest.approx(1.1)
    assert lv.alive(1.1) == frozenset("c")  # dead exactly at last + timeout
    assert lv.update(1.1) == Change(frozenset("c"), frozenset(), frozenset("b"), frozenset())
    assert lv.update(1.2) == Change(frozenset(), frozenset(), frozenset("c"), frozenset())
    assert lv.next_expiry(1.2) is None


def test_restarted_peer_is_alive_at_once_and_reported() -> None:
    lv = Liveness(timeout=0.1)
    lv.heard("b", 0.0, incarnation=1)
    lv.update(0.0)
    lv.heard("b", 0.05, incarnation=2)
    assert lv.update(0.05) == Change(frozenset("b"), frozenset(), frozenset(), frozenset("b"))
    lv.update(1.0)  # b died
    lv.heard("b", 1.5, incarnation=3)
    change = lv.update(1.5)
    assert change is not None and change.joined == frozenset("b")


def test_expect_gives_one_timeout_of_benefit_of_the_doubt() -> None:
    lv = Liveness(timeout=0.1)
    lv.expect("b", 0.0)
    assert lv.alive(0.05) == frozenset("b")
    assert lv.alive(0.1) == frozenset()
    lv.heard("b", 0.2, incarnation=1)
    lv.expect("b", 5.0)  # a known peer keeps its real last-heard time
    assert lv.alive(5.0) == frozenset()


def test_forget_and_out_of_order_times() -> None:
    lv = Liveness(timeout=0.1)
    lv.heard("b", 1.0, incarnation=1)
    lv.heard("b", 0.5, incarnation=1)  # a late-processed packet never moves last-heard back
    assert lv.alive(1.05) == frozenset("b")
    lv.forget("b")
    assert lv.alive(1.05) == frozenset()


@pytest.mark.parametrize("bad", [0, -1])
def test_bad_parameters_are_faults(bad: int) -> None:
    with pytest.raises(ValueError):
        Liveness(timeout=bad)
    with pytest.raises(ValueError):
        ReplayWindow(max_age_ns=bad)


def test_datagram_size_bound() -> None:
    big = Codec(KEY).encode(Heartbeat("n" * 253, 2**64 - 1, 2**64 - 1, 2**64 - 1))
    assert len(big) == MAX_DATAGRAM == 314
    assert struct.unpack_from("!2sB", big) == (b"LH", 1)

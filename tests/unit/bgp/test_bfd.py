"""RFC 5880 codec (golden bytes, drop reasons) and the session state machine on a simulated clock."""

from __future__ import annotations

import random

import pytest

from lbspeaker.core.bgp.bfd import (
    ControlPacket,
    Diag,
    Drop,
    Session,
    State,
    Transition,
    decode,
    encode,
)

PKT = ControlPacket(
    state=State.UP, my_discr=0x01020304, your_discr=0x0A0B0C0D, desired_min_tx_us=100_000,
    required_min_rx_us=300_000, detect_mult=3, diag=Diag.NEIGHBOR_DOWN, poll=True,
)  # fmt: skip
# vers 1 | diag 3 ; state 3 | P ; mult 3 ; len 24 ; discrs ; 100000 ; 300000 ; 0
GOLDEN = bytes.fromhex("23e00318010203040a0b0c0d000186a0000493e000000000")


def test_encode_golden_and_roundtrip() -> None:
    assert encode(PKT) == GOLDEN
    assert decode(GOLDEN) == PKT
    final = ControlPacket(State.DOWN, 7, 0, 1_000_000, 1_000_000, 5, final=True)
    assert decode(encode(final)) == final


def patch(data: bytes, offset: int, value: int) -> bytes:
    b = bytearray(data)
    b[offset] = value
    return bytes(b)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (GOLDEN[:23], Drop.SHORT),
        (patch(GOLDEN, 0, 0x43), Drop.VERSION),
        (patch(GOLDEN, 3, 20), Drop.BAD_LENGTH),
        (patch(GOLDEN, 3, 26), Drop.SHORT),
        (patch(GOLDEN, 1, 0xC4), Drop.AUTH),
        (patch(GOLDEN, 2, 0), Drop.ZERO_MULTIPLIER),
        (patch(GOLDEN, 1, 0xC1), Drop.MULTIPOINT),
        (GOLDEN[:4] + bytes(4) + GOLDEN[8:], Drop.ZERO_MY_DISCR),
        (GOLDEN[:8] + bytes(4) + GOLDEN[12:], Drop.NO_YOUR_DISCR),
        (patch(GOLDEN, 1, 0xC2), Drop.DEMAND),
    ],
)
def test_decode_drops(data: bytes, why: Drop) -> None:
    assert decode(data) is why


def test_down_your_discr_zero_is_fine() -> None:
    p = ControlPacket(State.DOWN, 9, 0, 1_000_000, 300_000, 3)
    assert decode(encode(p)) == p


def new(discr: int, **kw: int | bool) -> Session:
    args: dict[str, int | bool] = {
        "desired_min_tx_us": 100_000,
        "required_min_rx_us": 100_000,
        "detect_mult": 3,
    }
    args.update(kw)
    return Session(local_discr=discr, rng=random.Random(discr), **args)  # type: ignore[arg-type]


def run(a: Session, b: Session, *, until: float, now: float = 0.0, step: float = 0.001, b_alive: bool = True):
    """Deliver packets between a and b instantly; returns (end time, transitions seen by a)."""
    seen = []
    t = now
    while t < until:
        for x, y, alive in ((a, b, True), (b, a, b_alive)):
            if alive:
                tr = x.expire(t)
                if tr:
                    seen.append((round(t, 3), x.local_discr, tr))
                if x.wants_tx(t):
                    pkt = decode(encode(x.build(t)))
                    assert isinstance(pkt, ControlPacket)
                    tr = y.receive(pkt, t) if (alive and (y is a or b_alive)) else None
                    if tr:
                        seen.append((round(t, 3), y.local_discr, tr))
        t += step
    return t, seen


def test_three_way_handshake_poll_and_detection() -> None:
    a, b = new(1), new(2)
    t, seen = run(a, b, until=3.0)
    assert a.state == b.state == State.UP
    states_a = [tr.new for _, d, tr in seen if d == 1]
    assert states_a == [State.INIT, State.UP] or states_a == [State.UP]
    assert not a.poll_active and not b.poll_active, "poll sequence completed with a Final"
    assert a.tx_interval_us == 100_000 and a.detection_time_s == pytest.approx(0.3)
    # slow (1 s) packets before Up: a handful, then fast ones
    sent_before = a.tx_packets
    t, _ = run(a, b, until=t + 1.0, now=t)
    assert 9 <= a.tx_packets - sent_before <= 14
    # b goes silent: a detects it after ~detection time, with diag 1
    t0 = t
    t, seen = run(a, b, until=t + 1.0, now=t, b_alive=False)
    ((when, _who, tr),) = [x for x in seen if x[1] == 1]
    assert tr == Transition(State.UP, State.DOWN, Diag.DETECT_EXPIRED)
    assert 0.2 <= when - t0 <= 0.31
    assert a.remote_discr == 0 and a.tx_interval_us == 1_000_000


def test_neighbor_down_and_admin_down() -> None:
    a, b = new(1), new(2)
    t, _ = run(a, b, until=3.0)
    assert a.state == State.UP
    b.admin_down()
    t, _ = run(a, b, until=t + 0.5, now=t)
    assert a.state == State.DOWN and a.diag == Diag.NEIGHBOR_DOWN
    assert b.state == State.ADMIN_DOWN
    b.admin_up()
    run(a, b, until=t + 4.0, now=t)
    assert a.state == b.state == State.UP


def test_passive_waits_for_the_peer() -> None:
    p = new(5, passive=True)
    assert not p.wants_tx(10.0)
    p.receive(ControlPacket(State.DOWN, 9, 0, 1_000_000, 100_000, 3), 10.0)
    assert p.state == State.INIT and p.wants_tx(10.0)


def test_final_answers_poll_at_once() -> None:
    s = new(1)
    s.receive(ControlPacket(State.DOWN, 9, 0, 1_000_000, 100_000, 3), 0.0)
    s.build(0.0)
    s.receive(ControlPacket(State.UP, 9, 1, 100_000, 100_000, 3, poll=True), 0.01)
    assert s.wants_tx(0.01)
    pkt = s.build(0.01)
    assert pkt.final and not pkt.poll and s.state == State.UP


def test_remote_min_rx_zero_stops_tx() -> None:
    s = new(1)
    s.receive(ControlPacket(State.DOWN, 9, 0, 1_000_000, 0, 3), 0.0)
    assert not s.wants_tx(100.0)


def test_zero_discriminator_rejected() -> None:
    with pytest.raises(ValueError):
        Session(local_discr=0, desired_min_tx_us=1, required_min_rx_us=1, detect_mult=3)

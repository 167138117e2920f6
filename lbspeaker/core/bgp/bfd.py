"""RFC 5880 BFD: the control packet codec and the asynchronous-mode session state machine.

Pure: time is passed in (seconds, monotonic), randomness comes from a ``random.Random`` the caller
owns, packets are bytes in and bytes out. Invariants:
- a packet that fails the RFC 5880 §6.8.6 checks never changes session state; ``decode`` says why
  it was dropped (a ``Drop`` value, not an exception);
- while the session is not Up, at most one packet per second is sent (§6.8.3); on reaching Up the
  fast interval is announced with a Poll sequence, answered peers get a Final at once;
- the detection time is the remote multiplier x max(our RequiredMinRx, the remote DesiredMinTx);
  when it expires in Init/Up the session goes Down with diagnostic 1 and forgets the remote;
- authentication and demand mode are not implemented: packets asking for them are dropped.
"""

from __future__ import annotations

import enum
import random
import struct
from dataclasses import dataclass, replace

VERSION = 1
HEADER = struct.Struct("!BBBBIIIII")
HEADER_LEN = HEADER.size  # 24
SLOW_TX_US = 1_000_000


class State(enum.IntEnum):
    """bfd.SessionState values as encoded on the wire."""

    ADMIN_DOWN = 0
    DOWN = 1
    INIT = 2
    UP = 3


class Diag(enum.IntEnum):
    """bfd.LocalDiag values (RFC 5880 §4.1)."""

    NONE = 0
    DETECT_EXPIRED = 1
    ECHO_FAILED = 2
    NEIGHBOR_DOWN = 3
    FORWARDING_RESET = 4
    PATH_DOWN = 5
    CONCAT_PATH_DOWN = 6
    ADMIN_DOWN = 7
    REVERSE_CONCAT_PATH_DOWN = 8


class Drop(enum.Enum):
    """Why a received packet was discarded (RFC 5880 §6.8.6)."""

    SHORT = "shorter than 24 bytes or than its length field"
    VERSION = "version is not 1"
    BAD_LENGTH = "length field below 24"
    ZERO_MULTIPLIER = "detect multiplier is 0"
    MULTIPOINT = "multipoint bit set"
    ZERO_MY_DISCR = "my discriminator is 0"
    NO_YOUR_DISCR = "your discriminator 0 outside Down/AdminDown"
    AUTH = "authentication is not supported"
    DEMAND = "demand mode is not supported"
    NOT_OURS = "your discriminator names no session of ours"


@dataclass(frozen=True)
class ControlPacket:
    """One BFD control packet (intervals in microseconds)."""

    state: State
    my_discr: int
    your_discr: int
    desired_min_tx_us: int
    required_min_rx_us: int
    detect_mult: int
    diag: Diag = Diag.NONE
    poll: bool = False
    final: bool = False
    cpi: bool = False
    auth: bool = False
    demand: bool = False
    multipoint: bool = False
    required_min_echo_rx_us: int = 0


def encode(p: ControlPacket) -> bytes:
    """The 24 wire bytes of a packet (no authentication section)."""
    flags = (
        (p.state << 6)
        | (p.poll << 5)
        | (p.final << 4)
        | (p.cpi << 3)
        | (p.auth << 2)
        | (p.demand << 1)
        | int(p.multipoint)
    )
    return HEADER.pack(
        (VERSION << 5) | p.diag,
        flags,
        p.detect_mult,
        HEADER_LEN,
        p.my_discr,
        p.your_discr,
        p.desired_min_tx_us,
        p.required_min_rx_us,
        p.required_min_echo_rx_us,
    )


def decode(data: bytes) -> ControlPacket | Drop:
    """Parse and check a received packet; a ``Drop`` says why it must be discarded."""
    if len(data) < HEADER_LEN:
        return Drop.SHORT
    b0, b1, mult, length, my, your, tx, rx, echo = HEADER.unpack_from(data)
    if b0 >> 5 != VERSION:
        return Drop.VERSION
    if length < HEADER_LEN:
        return Drop.BAD_LENGTH
    if length > len(data):
        return Drop.SHORT
    if b1 & 0x04:
        return Drop.AUTH
    if mult == 0:
        return Drop.ZERO_MULTIPLIER
    if b1 & 0x01:
        return Drop.MULTIPOINT
    if my == 0:
        return Drop.ZERO_MY_DISCR
    state = State(b1 >> 6)
    if your == 0 and state not in (State.DOWN, State.ADMIN_DOWN):
        return Drop.NO_YOUR_DISCR
    if b1 & 0x02:
        return Drop.DEMAND
    diag = b0 & 0x1F
    return ControlPacket(
        state=state,
        my_discr=my,
        your_discr=your,
        desired_min_tx_us=tx,
        required_min_rx_us=rx,
        detect_mult=mult,
        diag=Diag(diag) if diag in Diag._value2member_map_ else Diag.NONE,
        poll=bool(b1 & 0x20),
        final=bool(b1 & 0x10),
        cpi=bool(b1 & 0x08),
        required_min_echo_rx_us=echo,
    )


@dataclass(frozen=True)
class Transition:
    """A session state change, for the caller to act on (tear BGP down, count, log)."""

    old: State
    new: State
    diag: Diag


class Session:
    """One asynchronous-mode BFD session; the caller feeds it packets and the time."""

    def __init__(
        self,
        *,
        local_discr: int,
        desired_min_tx_us: int,
        required_min_rx_us: int,
        detect_mult: int,
        passive: bool = False,
        rng: random.Random | None = None,
    ) -> None:
        if local_discr == 0:
            raise ValueError("local discriminator must not be 0")
        self.local_discr = local_discr
        self.desired_min_tx_us = desired_min_tx_us
        self.required_min_rx_us = required_min_rx_us
        self.detect_mult = detect_mult
        self.passive = passive
        self.state = State.DOWN
        self.diag = Diag.NONE
        self.remote_discr = 0
        self.remote_state = State.DOWN
        self.remote_min_rx_us = 1
        self.remote_desired_tx_us = 0
        self.remote_detect_mult = 0
        self.poll_active = False
        self.final_pending = False
        self.heard = False
        self.detect_deadline: float | None = None
        self.tx_due = 0.0
        self.rx_packets = 0
        self.tx_packets = 0
        self.transitions = 0
        self._rng = rng or random.Random()

    # ---- timers -------------------------------------------------------------------------------

    @property
    def tx_interval_us(self) -> int:
        """The interval between our packets: max(our DesiredMinTx, the remote RequiredMinRx)."""
        desired = self.desired_min_tx_us if self.state == State.UP else max(self.desired_min_tx_us, SLOW_TX_US)
        return max(desired, self.remote_min_rx_us)

    @property
    def detection_time_s(self) -> float:
        """How long without a packet before the session is declared Down."""
        return self.remote_detect_mult * max(self.required_min_rx_us, self.remote_desired_tx_us) / 1e6

    def _schedule_tx(self, now: float) -> None:
        top = 0.9 if self.detect_mult == 1 else 1.0
        self.tx_due = now + self.tx_interval_us / 1e6 * self._rng.uniform(0.75, top)

    def wants_tx(self, now: float) -> bool:
        """True when a packet is due now (periodic, or a Final owed to the peer)."""
        if self.remote_min_rx_us == 0:
            return False
        if self.passive and not self.heard:
            return False
        return self.final_pending or now >= self.tx_due

    def next_wakeup(self) -> float:
        """The earliest time something happens without a packet arriving (inf: nothing)."""
        times = [float("inf")]
        if self.remote_min_rx_us != 0 and (self.heard or not self.passive):
            times.append(0.0 if self.final_pending else self.tx_due)
        if self.detect_deadline is not None:
            times.append(self.detect_deadline)
        return min(times)

    # ---- events -------------------------------------------------------------------------------

    def _set(self, state: State, diag: Diag) -> Transition | None:
        if state == self.state:
            return None
        old, self.state, self.diag = self.state, state, diag
        self.transitions += 1
        self.tx_due = 0.0  # tell the peer at once
        if state == State.UP:
            self.poll_active = self.desired_min_tx_us < SLOW_TX_US
        if state in (State.DOWN, State.ADMIN_DOWN):
            self.poll_active = False
        return Transition(old, state, diag)

    def expire(self, now: float) -> Transition | None:
        """Apply the detection timer (§6.8.4)."""
        if self.detect_deadline is None or now < self.detect_deadline:
            return None
        self.detect_deadline = None
        self.remote_discr = 0
        self.remote_desired_tx_us = 0
        if self.state in (State.INIT, State.UP):
            return self._set(State.DOWN, Diag.DETECT_EXPIRED)
        return None

    def receive(self, p: ControlPacket, now: float) -> Transition | None:
        """Process one checked packet (§6.8.6); the caller matched it to this session."""
        self.rx_packets += 1
        self.heard = True
        self.remote_discr = p.my_discr
        self.remote_state = p.state
        self.remote_min_rx_us = p.required_min_rx_us
        self.remote_desired_tx_us = p.desired_min_tx_us
        self.remote_detect_mult = p.detect_mult
        if p.final and self.poll_active:
            self.poll_active = False
        if p.poll:
            self.final_pending = True
        self.detect_deadline = now + self.detection_time_s
        if self.state == State.ADMIN_DOWN:
            return None
        if p.state == State.ADMIN_DOWN:
            return self._set(State.DOWN, Diag.NEIGHBOR_DOWN) if self.state != State.DOWN else None
        if self.state == State.DOWN:
            if p.state == State.DOWN:
                return self._set(State.INIT, Diag.NONE)
            if p.state == State.INIT:
                return self._set(State.UP, Diag.NONE)
        elif self.state == State.INIT:
            if p.state in (State.INIT, State.UP):
                return self._set(State.UP, Diag.NONE)
        elif p.state == State.DOWN:
            return self._set(State.DOWN, Diag.NEIGHBOR_DOWN)
        return None

    def admin_down(self) -> Transition | None:
        """Hold the session AdminDown (the peer sees it and must not treat it as a failure)."""
        self.detect_deadline = None
        return self._set(State.ADMIN_DOWN, Diag.ADMIN_DOWN)

    def admin_up(self) -> Transition | None:
        """Leave AdminDown."""
        return self._set(State.DOWN, Diag.NONE) if self.state == State.ADMIN_DOWN else None

    def build(self, now: float) -> ControlPacket:
        """The packet to send now; clears an owed Final and schedules the next periodic one."""
        final = self.final_pending
        self.final_pending = False
        self.tx_packets += 1
        self._schedule_tx(now)
        pkt = ControlPacket(
            state=self.state,
            my_discr=self.local_discr,
            your_discr=self.remote_discr,
            desired_min_tx_us=self.desired_min_tx_us
            if self.state == State.UP
            else max(self.desired_min_tx_us, SLOW_TX_US),
            required_min_rx_us=self.required_min_rx_us,
            detect_mult=self.detect_mult,
            diag=self.diag,
            final=final,
        )
        return replace(pkt, poll=self.poll_active and not final)

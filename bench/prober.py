"""Fixed-schedule ICMP echo prober: who answers a VIP, and when, every 10 ms.

Why not ``ping -i 0.01``: it really sends about 63/s, and far fewer while ARP is unresolved
(DESIGN.md §4b), which hides exactly the gap we want to measure. This prober sends echo requests
through a raw ICMP socket (so the client kernel's ARP cache decides where each frame goes, as for
any real client) on a fixed schedule ``t0 + k * interval`` and reads the replies from an
``AF_PACKET`` socket, so every reply carries the source MAC of the node that answered.

Two halves:
- ``main`` (stdlib only) runs inside the client namespace: ``ip netns exec NS python
  bench/prober.py --target VIP``. It prints one line per event, CLOCK_MONOTONIC nanoseconds:
  ``S seq t_ns`` per request sent, ``R seq t_ns mac`` per reply received. A slot missed because
  the process was descheduled is skipped (never sent in a burst), so gaps in ``S`` are visible.
- ``Prober`` (used by the benchmark in the root namespace) starts that process and keeps the
  parsed events; CLOCK_MONOTONIC is system-wide, so its timestamps compare with the caller's.

Invariants: the process exits on SIGTERM, on stdin EOF, or after ``--max-seconds``; every loop is
bounded by one of those.
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

ETH_P_IP = 0x0800
PACKET_OUTGOING = 4
SO_ATTACH_FILTER = 26
SO_TIMESTAMPNS = 35
_DROP_ALL = struct.pack("HBBI", 0x06, 0, 0, 0)  # BPF "ret #0"


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return int(~s & 0xFFFF)


def echo_request(ident: int, seq: int, t_ns: int) -> bytes:
    """An ICMP echo request carrying its send time."""
    payload = struct.pack("!Q", t_ns) + b"lbspeaker-failover-probe"
    head = struct.pack("!BBHHH", 8, 0, 0, ident, seq & 0xFFFF)
    return struct.pack("!BBHHH", 8, 0, _checksum(head + payload), ident, seq & 0xFFFF) + payload


def parse_reply(frame: bytes, target: bytes, ident: int) -> tuple[int, str] | None:
    """(seq, source MAC) of an echo reply from target to us, else None."""
    if len(frame) < 14 + 20 + 8 or frame[12:14] != b"\x08\x00":
        return None
    ihl = (frame[14] & 0x0F) * 4
    if frame[14 + 9] != 1 or frame[26:30] != target or len(frame) < 14 + ihl + 8:
        return None
    icmp = 14 + ihl
    typ, _code, _ck, rid, seq = struct.unpack("!BBHHH", frame[icmp : icmp + 8])
    if typ != 0 or rid != ident:
        return None
    return seq, frame[6:12].hex(":")


def main(argv: list[str] | None = None) -> int:
    """Probe until SIGTERM, stdin EOF or --max-seconds; events on stdout."""
    ap = argparse.ArgumentParser(prog="prober")
    ap.add_argument("--target", required=True)
    ap.add_argument("--interface", default="eth0")
    ap.add_argument("--interval", type=float, default=0.01)
    ap.add_argument("--max-seconds", type=float, default=1800.0)
    args = ap.parse_args(argv)
    target = socket.inet_aton(args.target)
    ident = os.getpid() & 0xFFFF
    tx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    tx.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, _bpf(_DROP_ALL))  # replies are read from rx
    rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
    rx.bind((args.interface, ETH_P_IP))
    stop = threading.Event()
    out_lock = threading.Lock()

    def emit(line: str) -> None:
        with out_lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threading.Thread(target=_stdin_watch, args=(stop,), daemon=True).start()
    receiver = threading.Thread(target=_receive, args=(rx, target, ident, stop, emit), daemon=True)
    receiver.start()
    t0 = time.monotonic_ns()
    step = int(args.interval * 1e9)
    end = t0 + int(args.max_seconds * 1e9)
    k = 0
    while not stop.is_set() and time.monotonic_ns() < end:
        due = t0 + k * step
        now = time.monotonic_ns()
        if due > now:
            stop.wait((due - now) / 1e9)
            continue
        if now - due > step:  # descheduled: skip the missed slots, never burst
            k = (now - t0) // step
            continue
        t = time.monotonic_ns()
        try:
            tx.sendto(echo_request(ident, k, t), (args.target, 0))
            emit(f"S {k} {t}")
        except OSError as err:
            emit(f"E {k} {t} {err.errno}")
        k += 1
    stop.set()
    receiver.join(timeout=1.0)
    return 0


def _bpf(prog: bytes) -> bytes:
    import ctypes

    buf = ctypes.create_string_buffer(prog)
    _bpf.keep = buf  # type: ignore[attr-defined]  # the kernel copies it, but keep it alive anyway
    return struct.pack("HL", len(prog) // 8, ctypes.addressof(buf))


def _stdin_watch(stop: threading.Event) -> None:
    try:
        while not stop.is_set():
            ready, _, _ = select.select([0], [], [], 0.2)
            if ready and not os.read(0, 4096):
                break
    except (OSError, ValueError):
        pass
    stop.set()


def _receive(rx: socket.socket, target: bytes, ident: int, stop: threading.Event, emit: object) -> None:
    assert callable(emit)
    rx.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    while not stop.is_set():
        ready, _, _ = select.select([rx], [], [], 0.2)
        if not ready:
            continue
        frame, anc, _flags, addr = rx.recvmsg(2048, 64)
        offset = time.monotonic_ns() - time.time_ns()
        t = time.monotonic_ns()
        for level, kind, data in anc:  # the kernel's receive time, free of our wake-up latency
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
                sec, nsec = struct.unpack("qq", data[:16])
                t = min(t, sec * 1_000_000_000 + nsec + offset)
        if addr[2] == PACKET_OUTGOING:
            continue
        got = parse_reply(frame, target, ident)
        if got is not None:
            emit(f"R {got[0]} {t} {got[1]}")


# -- benchmark side ----------------------------------------------------------------------------


@dataclass
class Events:
    """Parsed prober output (monotonic ns)."""

    sent: list[tuple[int, int]] = field(default_factory=list)
    """(seq, t_ns) per request."""
    replies: list[tuple[int, int, str]] = field(default_factory=list)
    """(seq, t_ns, source MAC) per reply, in arrival order."""


class Prober:
    """Runs the prober in a namespace and collects its events."""

    def __init__(
        self, ns: str, target: str, *, interval: float = 0.01, log: Path | None = None, realtime: bool = True
    ) -> None:
        self.target = target
        self.interval = interval
        self.events = Events()
        self._lock = threading.Lock()
        self._stderr = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                *["ip", "netns", "exec", ns],
                *(["chrt", "-f", "20"] if realtime and shutil.which("chrt") else []),  # the instrument
                *[sys.executable, str(Path(__file__).resolve()), "--target", target],
                *["--interval", str(interval)],
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            parts = raw.decode(errors="replace").split()
            with self._lock:
                if parts[:1] == ["S"] and len(parts) == 3:
                    self.events.sent.append((int(parts[1]), int(parts[2])))
                elif parts[:1] == ["R"] and len(parts) == 4:
                    self.events.replies.append((int(parts[1]), int(parts[2]), parts[3]))
                else:
                    self._other(parts)

    def _other(self, parts: list[str]) -> None:
        """A line that is neither S nor R (called with the lock held); subclasses count their own kinds."""

    def snapshot(self) -> Events:
        """A copy of everything seen so far."""
        with self._lock:
            return Events(list(self.events.sent), list(self.events.replies))

    def replies_between(self, t0: int, t1: int) -> list[tuple[int, int, str]]:
        """Replies received in [t0, t1]."""
        with self._lock:
            return [r for r in self.events.replies if t0 <= r[1] <= t1]

    def stable_owner(self, window: float) -> str | None:
        """The MAC that answered every probe sent in the last window seconds (grace 50 ms), else None."""
        now = time.monotonic_ns()
        lo, hi = now - int(window * 1e9), now - 50_000_000
        with self._lock:
            seqs = {s for s, t in self.events.sent[-int(window / self.interval) - 20 :] if lo <= t <= hi}
            answered = {r[0]: r[2] for r in self.events.replies[-4 * len(seqs) - 20 :] if r[0] in seqs}
        macs = set(answered.values())
        if len(seqs) < window / self.interval * 0.8 or set(answered) != seqs or len(macs) != 1:
            return None
        return macs.pop()

    def wait_stable(self, window: float, timeout: float) -> str | None:
        """Poll stable_owner until it answers or timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            owner = self.stable_owner(window)
            if owner is not None:
                return owner
            time.sleep(0.1)
        return None

    def stop(self) -> None:
        """End the process (stdin EOF, then SIGTERM, then SIGKILL); idempotent."""
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=5)
        self._reader.join(timeout=2)
        if self._stderr is not subprocess.DEVNULL:
            self._stderr.close()  # type: ignore[union-attr]


if __name__ == "__main__":
    raise SystemExit(main())

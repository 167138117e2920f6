"""Membership in a child process, and the diagnostic command line that runs one member.

Why a child process: a Python speaker whose other threads keep the GIL busy (the ARP
responder under load, a large relist) delays in-process heartbeats, and its peers then see it
dead (measured in ``bench/membership.py``: spurious deaths with busy threads in the same
process, none with the same load outside it). ``MembershipProcess`` has the API of
``Membership`` and runs it in a child where only membership competes for the GIL.

Invariants: the secret reaches the child on stdin, never argv; the child ends when its stdin
closes (the parent stopped it or died), so it never outlives the speaker.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from types import FrameType

from lbspeaker.core.errors import NetworkError
from lbspeaker.core.service import IPAddress
from lbspeaker.speaker.membership import (
    DEFAULT_INTERVAL,
    DEFAULT_PORT,
    DEFAULT_TIMEOUT,
    Membership,
    check_timings,
    raise_priority,
)

log = logging.getLogger(__name__)

_START_TIMEOUT = 10.0


class MembershipProcess:
    """``Membership`` run in a child process; same API. A child that dies is restarted (at most 1/s)."""

    def __init__(
        self,
        node: str,
        *,
        secret: bytes,
        on_change: Callable[[frozenset[str]], None],
        port: int = DEFAULT_PORT,
        interval: float = DEFAULT_INTERVAL,
        timeout: float = DEFAULT_TIMEOUT,
        previous_secrets: tuple[bytes, ...] = (),
        max_age: float = 30.0,
        realtime: bool = True,
    ) -> None:
        check_timings(node, interval, timeout)
        self.node = node
        self._settings = {
            "node": node,
            "secret": secret.hex(),
            "previous": [k.hex() for k in previous_secrets],
            "port": port,
            "interval": interval,
            "timeout": timeout,
            "max_age": max_age,
            "realtime": realtime,
        }
        self._on_change = on_change
        self._lock = threading.Lock()
        self._peers: dict[str, str] = {}
        self._alive: frozenset[str] = frozenset({node})
        self._stats: dict[str, int] = {}
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._stop = threading.Event()

    def set_peers(self, peers: Mapping[str, IPAddress]) -> None:
        """Replace the peer set (name -> InternalIP)."""
        with self._lock:
            self._peers = {n: str(ip) for n, ip in peers.items()}
            self._write({"peers": self._peers})

    def start(self) -> None:
        """Start the child in the current network namespace; raises NetworkError if it cannot bind."""
        self._spawn()
        self._reader = threading.Thread(target=self._read_loop, name=f"membership-proc-{self.node}", daemon=True)
        self._reader.start()

    def alive(self) -> frozenset[str]:
        """The alive set last reported by the child, plus this node."""
        with self._lock:
            return self._alive | {self.node}

    def stats(self) -> dict[str, int]:
        """The counters last reported by the child (it reports them every second)."""
        with self._lock:
            return dict(self._stats)

    def stop(self) -> None:
        """Close the child's stdin (it stops and exits), reap it; idempotent."""
        self._stop.set()
        with self._lock:
            proc = self._proc
        if proc is not None:
            with contextlib.suppress(OSError):
                assert proc.stdin is not None
                proc.stdin.close()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self._reader is not None:
            self._reader.join(timeout=5)
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()

    def _spawn(self) -> None:
        cmd = [sys.executable, "-m", "lbspeaker.speaker.membership_proc", "--child"]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        assert proc.stdout is not None
        with self._lock:
            self._proc = proc
            self._write({**self._settings, "peers": self._peers})
        watchdog = threading.Timer(_START_TIMEOUT, proc.kill)  # bounds start() if the child hangs
        watchdog.start()
        try:
            self._await_start(proc)
        finally:
            watchdog.cancel()

    def _await_start(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        while True:  # alive reports may come before "started"
            line = proc.stdout.readline()
            try:
                msg = json.loads(line) if line else {"error": f"exited at start ({proc.wait(timeout=5)})"}
            except ValueError:
                continue
            if "error" in msg:
                proc.kill()
                proc.wait(timeout=5)
                proc.stdout.close()
                raise NetworkError(f"starting membership process of '{self.node}': {msg['error']}")
            if msg.get("started"):
                return
            self._deliver(msg)

    def _write(self, msg: dict[str, object]) -> None:
        """Send one line to the child (caller holds _lock); a dead child is noticed by the reader."""
        if self._proc is None or self._proc.stdin is None:
            return
        with contextlib.suppress(OSError, ValueError):
            self._proc.stdin.write(json.dumps(msg) + "\n")
            self._proc.stdin.flush()

    def _read_loop(self) -> None:
        while not self._stop.is_set():
            proc = self._proc
            assert proc is not None and proc.stdout is not None
            for line in proc.stdout:
                with contextlib.suppress(ValueError):
                    self._deliver(json.loads(line))
            if self._stop.is_set():
                return
            log.error("membership.child_died node=%s exit=%s: restarting", self.node, proc.wait())
            proc.stdout.close()
            if self._stop.wait(1.0):
                return
            try:
                self._spawn()  # stop() may race with this: it then reaps whatever _proc holds
            except (OSError, NetworkError) as err:
                log.error("membership.child_restart_failed node=%s error=%s", self.node, err)

    def _deliver(self, msg: dict[str, object]) -> None:
        stats = msg.get("stats")
        if isinstance(stats, dict):
            with self._lock:
                self._stats = {str(k): int(v) for k, v in stats.items()}
        alive = msg.get("alive")
        if isinstance(alive, list):
            with self._lock:
                self._alive = frozenset(str(a) for a in alive)
            try:
                self._on_change(self._alive | {self.node})
            except Exception:
                log.exception("membership.on_change_failed node=%s", self.node)


def _child() -> int:
    """Child side of MembershipProcess: settings and peers on stdin, alive sets and stats on stdout."""
    out = threading.Lock()

    def emit(obj: dict[str, object]) -> None:
        with out:
            sys.stdout.write(json.dumps(obj) + "\n")
            sys.stdout.flush()

    def peers(raw: object) -> dict[str, IPAddress]:
        return {str(n): ipaddress.ip_address(str(ip)) for n, ip in raw.items()} if isinstance(raw, dict) else {}

    cfg = json.loads(sys.stdin.readline() or "{}")
    if cfg["realtime"]:  # every thread of the child (they inherit it): none can hold the GIL while preempted
        raise_priority(str(cfg["node"]))
    m = Membership(
        str(cfg["node"]),
        secret=bytes.fromhex(cfg["secret"]),
        previous_secrets=tuple(bytes.fromhex(k) for k in cfg["previous"]),
        on_change=lambda alive: emit({"alive": sorted(alive)}),
        port=int(cfg["port"]),
        interval=float(cfg["interval"]),
        timeout=float(cfg["timeout"]),
        max_age=float(cfg["max_age"]),
        realtime=bool(cfg["realtime"]),
    )
    m.set_peers(peers(cfg.get("peers")))
    try:
        m.start()
    except NetworkError as err:
        emit({"error": str(err)})
        return 1
    emit({"started": True})
    done = threading.Event()

    def report_stats() -> None:
        while not done.wait(1.0):
            emit({"stats": m.stats()})

    threading.Thread(target=report_stats, daemon=True).start()
    for line in sys.stdin:  # until the parent closes stdin or dies
        with contextlib.suppress(ValueError):
            msg = json.loads(line)
            if isinstance(msg, dict) and "peers" in msg:
                m.set_peers(peers(msg["peers"]))
    done.set()
    m.stop()
    return 0


# -- diagnostic entry point: `python -m lbspeaker.speaker.membership_proc` (tests and bench use it) --


def main(argv: list[str] | None = None) -> int:
    """Run one member and print its alive-set changes as JSON lines (monotonic timestamps)."""
    p = argparse.ArgumentParser(prog="python -m lbspeaker.speaker.membership_proc")
    p.add_argument("--node", required=True)
    p.add_argument("--secret-file", required=True)
    p.add_argument("--peer", action="append", default=[], help="NAME=IP, repeatable")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--interval", type=float, default=DEFAULT_INTERVAL)
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
    p.add_argument("--duration", type=float, default=600.0, help="exit after this many seconds")
    p.add_argument("--isolated", action="store_true", help="run membership in a child process")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    if "--child" in (sys.argv[1:] if argv is None else argv):
        return _child()
    args = p.parse_args(argv)
    with open(args.secret_file, "rb") as f:
        secret = f.read().strip()
    peers = {}
    for item in args.peer:
        name, _, ip = item.partition("=")
        peers[name] = ipaddress.ip_address(ip)
    prev: list[frozenset[str]] = [frozenset()]

    def emit(obj: dict[str, object]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    def on_change(alive: frozenset[str]) -> None:
        t = time.monotonic()
        emit(
            {
                "event": "change",
                "t": t,
                "alive": sorted(alive),
                "joined": sorted(alive - prev[0]),
                "left": sorted(prev[0] - alive),
            }
        )
        prev[0] = alive

    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    kind = MembershipProcess if args.isolated else Membership
    m = kind(
        args.node,
        secret=secret,
        on_change=on_change,
        port=args.port,
        interval=args.interval,
        timeout=args.timeout,
    )
    m.set_peers(peers)
    m.start()
    emit({"event": "started", "t": time.monotonic(), "node": args.node})
    done.wait(args.duration)
    m.stop()
    emit({"event": "stats", "t": time.monotonic(), "stats": m.stats()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Membership over real UDP between network namespaces: death detection, restart, spoofing, replay.

Topology: a switch namespace with a bridge, and one namespace per node with a veth on it
(192.0.2.0/24 and 2001:db8:7946::/64). Each member runs as its own process
(``ip netns exec NS python -m lbspeaker.speaker.membership_proc``) printing JSON lines, so a SIGKILL
is a real crash. The helpers here are also used by ``bench/membership.py``.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lbspeaker.speaker.membership import Membership
from lbspeaker.speaker.membership_proc import MembershipProcess

pytestmark = pytest.mark.netns

PY = sys.executable
INTERVAL = 0.025  # the defaults of lbspeaker.speaker.membership
TIMEOUT = 0.125


def sh(*args: str, check: bool = True) -> str:
    """Run a command with a bound on its time; return stdout."""
    p = subprocess.run(args, capture_output=True, text=True, timeout=20, check=False)
    if check and p.returncode != 0:
        raise RuntimeError(f"running {' '.join(args)}: exit {p.returncode}: {p.stderr.strip()}")
    return p.stdout


@dataclass
class Lan:
    """A bridge namespace plus node namespaces with a v4 and a v6 address each."""

    prefix: str
    names: list[str]
    v4: dict[str, ipaddress.IPv4Address] = field(default_factory=dict)
    v6: dict[str, ipaddress.IPv6Address] = field(default_factory=dict)

    def ns(self, node: str) -> str:
        """The namespace of node."""
        return f"{self.prefix}-{node}"


def make_lan(prefix: str, names: list[str]) -> Lan:
    """Build the LAN; on failure remove what was built and re-raise."""
    lan = Lan(prefix, names)
    try:
        sw = f"{prefix}-sw"
        sh("ip", "netns", "add", sw)
        sh("ip", "-n", sw, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", sw, "link", "set", "br0", "up")
        for i, name in enumerate(names):
            ns = lan.ns(name)
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", f"p{i}", "netns", sw)
            sh("ip", "-n", sw, "link", "set", f"p{i}", "master", "br0", "up")
            lan.v4[name] = ipaddress.IPv4Address(f"192.0.2.{11 + i}")
            lan.v6[name] = ipaddress.IPv6Address(f"2001:db8:7946::{11 + i}")
            sh("ip", "-n", ns, "addr", "add", f"{lan.v4[name]}/24", "dev", "eth0")
            sh("ip", "-n", ns, "addr", "add", f"{lan.v6[name]}/64", "dev", "eth0", "nodad")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
    except BaseException:
        remove_lan(lan)
        raise
    return lan


def remove_lan(lan: Lan) -> None:
    """Delete every namespace of the LAN; never raises."""
    for ns in [lan.ns(n) for n in lan.names] + [f"{lan.prefix}-sw"]:
        sh("ip", "netns", "del", ns, check=False)


class Member:
    """One membership process inside a namespace, with its JSON events collected by a thread."""

    def __init__(
        self,
        lan: Lan,
        node: str,
        *,
        secret_file: Path,
        peers: Mapping[str, object],
        launcher: tuple[str, ...] = ("-m", "lbspeaker.speaker.membership_proc"),
        duration: float = 120.0,
        flags: tuple[str, ...] = (),
        **opts: float,
    ) -> None:
        args = ["ip", "netns", "exec", lan.ns(node), PY, *launcher]
        args += ["--node", node, "--secret-file", str(secret_file), "--duration", str(duration)]
        for name, ip in peers.items():
            args += ["--peer", f"{name}={ip}"]
        for k, v in opts.items():
            args += [f"--{k}", str(v)]
        args += flags
        self.node = node
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.history: list[dict[str, Any]] = []
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self.events.put(json.loads(line))

    def wait_for(self, pred: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any] | None:
        """The first new event matching pred within timeout (events seen are kept in history)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                ev = self.events.get(timeout=left)
            except queue.Empty:
                return None
            self.history.append(ev)
            if pred(ev):
                return ev
        return None

    def drain(self) -> None:
        """Move every event received so far into history."""
        while True:
            try:
                self.history.append(self.events.get_nowait())
            except queue.Empty:
                return

    def alive_now(self) -> set[str]:
        """The alive set of the last change event received so far."""
        self.drain()
        changes = [e for e in self.history if e["event"] == "change"]
        return set(changes[-1]["alive"]) if changes else set()

    def stop(self) -> dict[str, int]:
        """SIGTERM, then the stats it prints on the way out."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        ev = self.wait_for(lambda e: e["event"] == "stats", 5.0)
        self.kill()
        return dict(ev["stats"]) if ev else {}

    def kill(self) -> None:
        """SIGKILL and reap; idempotent."""
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self._reader.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def alive_is(expected: set[str]) -> Callable[[dict[str, Any]], bool]:
    """Predicate: a change event whose alive set equals expected."""
    return lambda ev: ev["event"] == "change" and set(ev["alive"]) == expected


def settle(m: Member, expected: set[str]) -> None:
    """Wait until m has reported expected and kept it for a second (start-up flaps end), bounded."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if m.alive_now() == expected and m.wait_for(lambda e: e["event"] == "change", 1.0) is None:
            return
        time.sleep(0.05)
    raise AssertionError(f"{m.node} never settled on {sorted(expected)}: {m.history}")


@contextlib.contextmanager
def lan_with(names: list[str], tag: str) -> Iterator[tuple[Lan, list[Member]]]:
    """A LAN plus a list the test appends members to; everything is removed on exit."""
    lan = make_lan(f"lbt-mem-{os.getpid()}-{tag}", names)
    members: list[Member] = []
    try:
        yield lan, members
    finally:
        for m in members:
            m.kill()
        remove_lan(lan)


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    f = tmp_path / "secret"
    f.write_bytes(b"s3cret-for-tests-only\n")
    return f


@pytest.mark.parametrize("flags", [(), ("--isolated",)], ids=["threads", "child-process"])
def test_dead_peer_detected_and_restart_rejoins(secret: Path, flags: tuple[str, ...]) -> None:
    names = ["a", "b", "c"]
    with lan_with(names, "kill") as (lan, members):
        # a and b know each other by IPv4; everyone reaches c (and c everyone) by IPv6.
        peers: dict[str, dict[str, object]] = {
            "a": {"b": lan.v4["b"], "c": lan.v6["c"]},
            "b": {"a": lan.v4["a"], "c": lan.v6["c"]},
            "c": {"a": lan.v6["a"], "b": lan.v6["b"]},
        }
        for n in names:
            members.append(Member(lan, n, secret_file=secret, peers=peers[n], flags=flags))
        a, b, c = members
        for m in members:
            settle(m, set(names))

        t_kill = time.monotonic()
        c.kill()
        for m in (a, b):
            ev = m.wait_for(lambda e: e["event"] == "change" and "c" in e.get("left", []), 5.0)
            assert ev is not None, m.history
            # Generous bound (loaded CI): the precise figure comes from bench/membership.py.
            assert ev["t"] - t_kill < TIMEOUT + INTERVAL + 0.5
            assert set(ev["alive"]) == {"a", "b"}

        members[2] = c2 = Member(lan, "c", secret_file=secret, peers=peers["c"], flags=flags)
        assert c2.wait_for(alive_is(set(names)), 5.0), c2.history
        for m in (a, b):
            assert m.wait_for(lambda e: e["event"] == "change" and "c" in e["joined"], 5.0), m.history
        if not flags:  # the child reports its counters once a second: not in time for this check
            stats = a.stop()
            assert stats.get("accepted", 0) > 0
            assert not {"bad-mac", "malformed", "replayed"} & set(stats), stats


def test_wrong_secret_is_never_alive(secret: Path, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_bytes(b"not-the-secret")
    with lan_with(["a", "b"], "mac") as (lan, members):
        a = Member(lan, "a", secret_file=secret, peers={"b": lan.v4["b"]})
        b = Member(lan, "b", secret_file=wrong, peers={"a": lan.v4["a"]})
        members += [a, b]
        # b gets one timeout of benefit of the doubt at start, then must drop and never come back.
        assert a.wait_for(lambda e: e["event"] == "change" and e["left"] == ["b"], 5.0), a.history
        assert b.wait_for(lambda e: e["event"] == "change" and e["left"] == ["a"], 5.0), b.history
        assert a.wait_for(lambda e: e["event"] == "change", 1.5) is None, a.history
        assert b.wait_for(lambda e: e["event"] == "change", 0.1) is None, b.history
        stats = a.stop()
        assert stats.get("bad-mac", 0) >= 20, stats
        assert stats.get("accepted", 0) == 0, stats


# Runs inside a's namespace: capture b's heartbeats off the wire, then on "go" replay them to a
# (plus garbage and a forged copy) through loopback. Bounded in count and time.
_REPLAYER = r"""
import socket, struct, sys, time
src = socket.inet_aton(sys.argv[1])
raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
raw.bind(("eth0", 0))
raw.settimeout(0.5)
caught, deadline = [], time.monotonic() + 5
while len(caught) < 10 and time.monotonic() < deadline:
    try:
        frame = raw.recv(2048)
    except TimeoutError:
        continue
    ip = frame[14:]
    ihl = (ip[0] & 15) * 4
    if ip[9] == 17 and ip[12:16] == src and struct.unpack("!H", ip[ihl + 2:ihl + 4])[0] == 7946:
        caught.append(bytes(ip[ihl + 8:]))
print(len(caught), flush=True)
sys.stdin.readline()
out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
forged = caught[-1][:-1] + bytes([caught[-1][-1] ^ 1])
for _ in range(20):
    for p in caught + [b"", b"LH", b"\x00" * 400, forged]:
        out.sendto(p, ("127.0.0.1", 7946))
    time.sleep(0.025)
print("done", flush=True)
"""


def test_replayed_and_forged_packets_are_rejected(secret: Path) -> None:
    with lan_with(["a", "b"], "rep") as (lan, members):
        a = Member(lan, "a", secret_file=secret, peers={"b": lan.v4["b"]})
        b = Member(lan, "b", secret_file=secret, peers={"a": lan.v4["a"]})
        members += [a, b]
        settle(a, {"a", "b"})
        rep = subprocess.Popen(
            ["ip", "netns", "exec", lan.ns("a"), PY, "-c", _REPLAYER, str(lan.v4["b"])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert rep.stdout is not None and rep.stdin is not None
            assert rep.stdout.readline().strip() == "10"
            b.kill()  # b is dead now; its captured heartbeats must not bring it back
            assert a.wait_for(lambda e: e["event"] == "change" and "b" in e["left"], 5.0), a.history
            rep.stdin.write("go\n")
            rep.stdin.flush()
            assert rep.stdout.readline().strip() == "done"
        finally:
            rep.kill()
            rep.communicate(timeout=5)
        assert a.wait_for(lambda e: e["event"] == "change", 0.5) is None, a.history
        stats = a.stop()
        assert stats.get("replayed", 0) == 200, stats
        assert stats.get("bad-mac", 0) == 20, stats
        assert stats.get("malformed", 0) == 60, stats


def _in_netns(ns: str, fn: Callable[[], None]) -> None:
    """Run fn on a helper thread that has entered ns (sockets created there stay there)."""
    libc = ctypes.CDLL(None, use_errno=True)
    errors: list[BaseException] = []

    def target() -> None:
        try:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
                    raise OSError(ctypes.get_errno(), f"setns {ns}")
            finally:
                os.close(fd)
            fn()
        except BaseException as err:
            errors.append(err)

    t = threading.Thread(target=target)
    t.start()
    t.join(timeout=10)
    if errors:
        raise errors[0]


@pytest.mark.parametrize("kind", [Membership, MembershipProcess], ids=["threads", "child-process"])
def test_python_api(secret: Path, kind: type[Membership] | type[MembershipProcess]) -> None:
    key = secret.read_bytes().strip()
    with lan_with(["a", "b"], "api") as (lan, _):
        seen: dict[str, list[frozenset[str]]] = {"a": [], "b": []}
        ma = kind("a", secret=key, on_change=seen["a"].append)
        mb = kind("b", secret=key, on_change=seen["b"].append)
        try:
            ma.set_peers({"a": lan.v4["a"], "b": lan.v6["b"]})  # self in the map is ignored
            mb.set_peers({"a": lan.v6["a"]})
            _in_netns(lan.ns("a"), ma.start)
            _in_netns(lan.ns("b"), mb.start)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and ma.stats().get("accepted", 0) < 20:  # child: 1/s
                time.sleep(0.05)
            assert ma.alive() == mb.alive() == {"a", "b"}
            assert seen["a"][0] == {"a", "b"}  # the first report already includes expected peers
            mb.stop()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and ma.alive() != {"a"}:
                time.sleep(0.01)
            assert ma.alive() == {"a"}  # always includes self
            assert seen["a"][-1] == {"a"}
            ma.set_peers({})
            assert ma.alive() == {"a"}
        finally:
            ma.stop()
            mb.stop()
            ma.stop()  # idempotent
        assert ma.stats().get("bad-mac", 0) == 0

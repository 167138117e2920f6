"""Real BGP peers (BIRD 2, FRR 8.4) in network namespaces this process creates, for tests and the bench.

Everything is named ``lbt-bgp<pid>-...`` and removed by ``Lab.close()`` (processes inside our
namespaces are killed first). Only documentation ranges and private ASNs are used.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_counter = itertools.count()


def run(*cmd: str, check: bool = True, timeout: float = 30) -> str:
    """Run a command, return stdout."""
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: rc={res.returncode}: {res.stderr.strip() or res.stdout.strip()}")
    return res.stdout


def wait_until(pred: Callable[[], T], *, timeout: float, interval: float = 0.05, what: str = "condition") -> T:
    """Poll pred until truthy (bounded in time); return its value or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"waiting for {what}: not true after {timeout}s (last: {value!r})")
        time.sleep(interval)


@contextlib.contextmanager
def in_netns(name: str) -> Iterator[None]:
    """Switch the calling thread into a namespace (sockets created inside stay there)."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {name}")
        yield
    finally:
        _libc.setns(own, CLONE_NEWNET)
        os.close(own)
        os.close(target)


@dataclass
class Lab:
    """Namespaces, links and daemons of one test; ``close`` removes all of it."""

    tag: str = field(default_factory=lambda: f"{os.getpid()}{next(_counter)}")
    namespaces: list[str] = field(default_factory=list)
    dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="lbt-bgp-")))
    cleanups: list[Callable[[], None]] = field(default_factory=list)
    links: int = 0

    def ns(self, role: str) -> str:
        """Create namespace ``lbt-bgp<tag>-<role>`` with lo up, forwarding on."""
        name = f"lbt-bgp{self.tag}-{role}"
        run("ip", "netns", "add", name)
        self.namespaces.append(name)
        run("ip", "-n", name, "link", "set", "lo", "up")
        for key in ("net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"):
            run("ip", "netns", "exec", name, "sysctl", "-qw", key)
        return name

    def link(self, a: str, b: str, *addrs_a_b: tuple[str, str]) -> tuple[str, str]:
        """A veth between namespaces a and b with (addr on a, addr on b) pairs (CIDR notation)."""
        self.links += 1
        ia, ib = f"b{self.tag[-8:]}l{self.links}a", f"b{self.tag[-8:]}l{self.links}b"
        run("ip", "link", "add", ia, "netns", a, "type", "veth", "peer", "name", ib, "netns", b)
        for ns, dev in ((a, ia), (b, ib)):
            run("ip", "-n", ns, "link", "set", dev, "up")
        for addr_a, addr_b in addrs_a_b:
            run("ip", "-n", a, "addr", "add", addr_a, "dev", ia, "nodad")
            run("ip", "-n", b, "addr", "add", addr_b, "dev", ib, "nodad")
        return ia, ib

    def addr(self, ns: str, dev: str, cidr: str) -> None:
        """Add one more address to an interface."""
        run("ip", "-n", ns, "addr", "add", cidr, "dev", dev, "nodad")

    def close(self) -> None:
        """Kill what runs in our namespaces and delete them and the folder."""
        for fn in reversed(self.cleanups):
            with contextlib.suppress(Exception):
                fn()
        for name in self.namespaces:
            pids = run("ip", "netns", "pids", name, check=False).split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGCONT)
                    os.kill(int(pid), signal.SIGKILL)
            if pids:
                with contextlib.suppress(TimeoutError):
                    wait_until(lambda n=name: not run("ip", "netns", "pids", n, check=False).split(), timeout=5)
            run("ip", "netns", "del", name, check=False)
        if os.environ.get("LBT_BGP_KEEP"):  # debugging: keep logs and configs
            print(f"lab files kept in {self.dir}", file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class BirdRoute:
    """One route as BIRD shows it."""

    prefix: str
    next_hop: str = ""
    local_pref: int | None = None
    communities: tuple[str, ...] = ()
    large_communities: tuple[str, ...] = ()
    stale: bool = False


class Bird:
    """A BIRD 2 instance in a namespace."""

    def __init__(self, lab: Lab, ns: str, config: str) -> None:
        self.dir = lab.dir / f"bird-{ns}"
        self.dir.mkdir()
        self.sock = str(self.dir / "bird.ctl")
        self._ctl: socket.socket | None = None
        self._ctl_buf = b""
        conf = self.dir / "bird.conf"
        conf.write_text(f'log "{self.dir}/bird.log" all;\n' + config)
        run(
            "ip",
            "netns",
            "exec",
            ns,
            "bird",
            "-c",
            str(conf),
            "-s",
            self.sock,
            "-P",
            str(self.dir / "bird.pid"),
        )
        lab.cleanups.append(self.stop)

    def cli(self, *args: str) -> str:
        """Run one birdc command."""
        return run("birdc", "-s", self.sock, *args)

    def query(self, command: str) -> str:
        """One command over BIRD's control socket (no birdc fork: cheap enough to poll every ms)."""
        if self._ctl is None:
            ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            ctl.settimeout(10)
            ctl.connect(self.sock)
            self._ctl, self._ctl_buf = ctl, b""
            self._reply()  # the "0001 BIRD ready" greeting
        self._ctl.sendall(command.encode() + b"\n")
        return self._reply()

    def _reply(self) -> str:
        assert self._ctl is not None
        lines: list[str] = []
        while True:
            while b"\n" not in self._ctl_buf:
                chunk = self._ctl.recv(65536)
                if not chunk:
                    raise ConnectionError("BIRD control socket closed")
                self._ctl_buf += chunk
            raw, self._ctl_buf = self._ctl_buf.split(b"\n", 1)
            line = raw.decode()
            lines.append(line[5:] if len(line) >= 5 and line[:4].isdigit() else line[1:])
            if len(line) >= 5 and line[:4].isdigit() and line[4] == " ":
                return "\n".join(lines)

    def state(self, proto: str) -> str:
        """The BGP state of a protocol (Established, Active, ...)."""
        out = self.query(f"show protocols {proto}")
        m = re.search(rf"^{re.escape(proto)}\s+\S+\s+\S+\s+\S+\s+\S+\s+(\S+)", out, re.M)
        return m.group(1) if m else ""

    def count(self, proto: str) -> int:
        """How many routes this protocol put in the tables."""
        out = self.query(f"show route protocol {proto} count")
        m = re.search(r"(\d+) of \d+ routes", out)
        return int(m.group(1)) if m else 0

    def routes(self, proto: str) -> dict[str, BirdRoute]:
        """Routes of one protocol with the attributes tests check."""
        out = self.cli("show", "route", "protocol", proto, "all")
        routes: dict[str, BirdRoute] = {}
        cur: BirdRoute | None = None
        for line in out.splitlines():
            m = re.match(r"^([0-9a-f.:]+/\d+)\s", line)
            if m:
                cur = routes.setdefault(m.group(1), BirdRoute(m.group(1)))
                cur.stale = "stale" in line.lower() or cur.stale
                continue
            if cur is None:
                continue
            s = line.strip()
            if s.startswith("BGP.next_hop:"):
                cur.next_hop = s.split()[1]
            elif s.startswith("BGP.local_pref:"):
                cur.local_pref = int(s.split()[1])
            elif s.startswith("BGP.community:"):
                cur.communities = tuple(c.replace(",", ":") for c in re.findall(r"\((\d+,\d+)\)", s))
            elif s.startswith("BGP.large_community:"):
                cur.large_communities = tuple(c.replace(", ", ":") for c in re.findall(r"\((\d+, \d+, \d+)\)", s))
        return routes

    def stop(self) -> None:
        """Stop BIRD."""
        if self._ctl is not None:
            self._ctl.close()
        with contextlib.suppress(Exception):
            self.cli("down")


class Frr:
    """An FRR 8.4 instance (zebra, bfdd, bgpd) in a namespace, in its own folder (DESIGN.md §4b)."""

    DAEMONS = ("zebra", "bfdd", "bgpd")

    def __init__(self, lab: Lab, ns: str, bgp_config: str) -> None:
        self.ns = ns
        self.dir = lab.dir / f"frr-{ns}"
        self.dir.mkdir()
        shutil.chown(self.dir, "frr", "frr")
        os.chmod(lab.dir, 0o755)
        for d in self.DAEMONS:
            conf = self.dir / f"{d}.conf"
            conf.write_text(bgp_config if d == "bgpd" else "")
            shutil.chown(conf, "frr", "frr")
        lab.cleanups.append(self.stop)
        for d in self.DAEMONS:
            cmd = [
                "ip", "netns", "exec", ns, f"/usr/lib/frr/{d}", "-d", "-f", str(self.dir / f"{d}.conf"),
                "-i", str(self.dir / f"{d}.pid"), "--vty_socket", str(self.dir),
                "-z", str(self.dir / "zserv.api"),
                "-A", "127.0.0.1", "-u", "frr", "-g", "frr", "--log", f"file:{self.dir}/{d}.log",
            ]  # fmt: skip
            if d == "bfdd":
                cmd += ["--bfdctl", str(self.dir / "bfdd.sock")]
            run(*cmd)
            if d == "zebra":
                wait_until(lambda: (self.dir / "zserv.api").exists(), timeout=10, what="zebra socket")

    def vtysh(self, *commands: str) -> str:
        """Run vtysh commands against this instance."""
        args = ["ip", "netns", "exec", self.ns, "vtysh", "--vty_socket", str(self.dir)]
        for c in commands:
            args += ["-c", c]
        return run(*args)

    def json(self, command: str) -> Any:
        """A vtysh ``... json`` answer, decoded."""
        return json.loads(self.vtysh(command + " json") or "{}")

    def state(self, peer: str) -> str:
        """The BGP state of one neighbor."""
        try:
            return str(self.json(f"show bgp neighbors {peer}").get(peer, {}).get("bgpState", ""))
        except (RuntimeError, ValueError):
            return ""

    def routes(self, family: str = "ipv4") -> dict[str, Any]:
        """``show bgp <family> unicast json`` routes by prefix (first path)."""
        data = self.json(f"show bgp {family} unicast")
        return {p: paths[0] for p, paths in (data.get("routes") or {}).items()}

    def stop(self) -> None:
        """Stop the daemons of this instance."""
        for d in reversed(self.DAEMONS):
            pidfile = self.dir / f"{d}.pid"
            with contextlib.suppress(Exception):
                os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)


class SpeakerProc:
    """The speaker side (``speaker_proc.py``) running in a namespace; JSON requests, bounded waits."""

    def __init__(self, lab: Lab, ns: str, name: str = "speaker") -> None:
        self.workdir = lab.dir / name
        root = Path(__file__).resolve().parents[3]
        env = dict(os.environ, PYTHONPATH=str(root))
        module = "tests.netns.bgp.speaker_proc"
        cmd = ["ip", "netns", "exec", ns, sys.executable, "-m", module, str(self.workdir)]
        with open(lab.dir / f"{name}.err", "ab") as err:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                text=True, cwd=root, env=env, start_new_session=True,
            )  # fmt: skip
        self.exabgp_pid: int | None = None
        lab.cleanups.append(self.kill)

    def request(self, timeout: float = 60, **cmd: Any) -> dict[str, Any]:
        """Send one command, wait (bounded) for its reply."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError(f"speaker: no answer to {cmd.get('op')} within {timeout}s")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("speaker process exited")
        reply: dict[str, Any] = json.loads(line)
        if not reply.get("ok"):
            raise RuntimeError(f"speaker: {reply.get('error')}")
        self.exabgp_pid = reply.get("exabgp_pid") or self.exabgp_pid
        return reply

    def pids(self) -> list[int]:
        """This process and its exabgp (a new session, so it is signalled separately)."""
        return [p for p in (self.proc.pid, self.exabgp_pid) if p]

    def signal(self, sig: int) -> None:
        """Signal the whole speaker side (e.g. SIGSTOP to hang it, SIGCONT to resume)."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def kill(self) -> None:
        """SIGKILL the speaker side."""
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()

"""keepalived VRRP on the lab's node namespaces: the baseline the failover benchmark compares against.

One keepalived per node namespace with its own config, pid files and log (DESIGN.md §4b: the
default pid file clashes between instances), VRRP only (``-P``), in the foreground (``-n``) so
the parent's pid is the ``Popen`` pid; the VRRP child's pid comes from the ``-r`` file.

Invariants: the VIP is not the lbspeaker service VIP, so the two never fight over one address;
``kill_hard`` leaves the VIP on the dead master's eth0 (a SIGKILLed keepalived never cleans up),
so ``restore`` deletes it before the link comes back; ``stop_all`` kills every process it started
and removes the VIP from every node. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

VIP = "192.0.2.199"
VRID = 51

PROFILES: dict[str, dict[str, object]] = {
    "default": {"version": 2, "advert_int": "1"},
    "fast": {"version": 3, "advert_int": "0.01"},
}


def render_config(*, node: str, priority: int, version: int, advert_int: str) -> str:
    """keepalived.conf for one node: one VRRP instance on eth0 holding VIP/32."""
    return (
        "global_defs {\n"
        f"  router_id {node}\n"
        f"  vrrp_version {version}\n"
        "  script_user root\n"
        "}\n"
        "vrrp_instance lab {\n"
        "  state BACKUP\n"
        "  interface eth0\n"
        f"  virtual_router_id {VRID}\n"
        f"  priority {priority}\n"
        f"  advert_int {advert_int}\n"
        f"  virtual_ipaddress {{\n    {VIP}/32 dev eth0\n  }}\n"
        "}\n"
    )


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=False)


@dataclass
class Keepalived:
    """The keepalived instances of one profile, one per node namespace."""

    state_dir: Path
    nodes: list[tuple[str, str]]
    """(node name, namespace); the first gets the highest priority and is the master."""
    profile: str
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def _dir(self, node: str) -> Path:
        d = self.state_dir / "keepalived" / self.profile / node
        d.mkdir(parents=True, exist_ok=True)
        return d

    def start(self, node: str) -> None:
        """Start keepalived for node (config rewritten, old pid files removed)."""
        ns = dict(self.nodes)[node]
        prio = 150 - 50 * [n for n, _ in self.nodes].index(node)
        d = self._dir(node)
        opts = PROFILES[self.profile]
        conf = render_config(
            node=node, priority=prio, version=int(str(opts["version"])), advert_int=str(opts["advert_int"])
        )
        (d / "keepalived.conf").write_text(conf)
        for f in ("keepalived.pid", "vrrp.pid"):
            with contextlib.suppress(OSError):
                (d / f).unlink()
        with open(d / "keepalived.log", "ab") as log:
            self.procs[node] = subprocess.Popen(
                [
                    *["ip", "netns", "exec", ns, "keepalived", "-n", "-l", "-D", "-P"],
                    *["-f", str(d / "keepalived.conf"), "-p", str(d / "keepalived.pid")],
                    *["-r", str(d / "vrrp.pid")],
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start_all(self) -> None:
        """Start every node's instance."""
        for node, _ in self.nodes:
            self.start(node)

    def vrrp_pid(self, node: str, timeout: float = 5.0) -> int | None:
        """The VRRP child's pid (from its pid file), waiting up to timeout for it."""
        f = self._dir(node) / "vrrp.pid"
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError, ValueError):
                pid = int(f.read_text().strip())
                return pid if _is_keepalived(pid) else None  # never signal a reused pid
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)

    def kill_pids(self, node: str) -> list[int]:
        """The VRRP child's and the parent's pids, looked up before the kill so the kill is instant."""
        child = self.vrrp_pid(node, timeout=2.0)
        proc = self.procs.get(node)
        return [p for p in (child, proc.pid if proc else None) if p]

    @staticmethod
    def kill_hard(pids: list[int]) -> None:
        """SIGKILL the VRRP child and the parent (the master "dies"); no waiting; the VIP stays on eth0."""
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def reap(self, node: str) -> None:
        """Collect the killed parent and forget the dead child's pid file."""
        proc = self.procs.get(node)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        with contextlib.suppress(OSError):
            (self._dir(node) / "vrrp.pid").unlink()

    def remove_vip(self, node: str) -> None:
        """Delete the VIP a dead master left on its eth0 (no error when absent)."""
        _ip("-n", dict(self.nodes)[node], "addr", "del", f"{VIP}/32", "dev", "eth0")

    def holders(self) -> list[str]:
        """Nodes whose eth0 carries the VIP now."""
        out = []
        for node, ns in self.nodes:
            if f" {VIP}/32 " in _ip("-n", ns, "-o", "addr", "show", "dev", "eth0").stdout:
                out.append(node)
        return out

    def stop_all(self) -> None:
        """SIGTERM every instance (it releases the VIP), SIGKILL stragglers, remove leftover VIPs."""
        for node, proc in self.procs.items():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
            child = self.vrrp_pid(node, timeout=0.0)
            if child:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGTERM)
        deadline = time.monotonic() + 5.0
        for node, proc in self.procs.items():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            child = self.vrrp_pid(node, timeout=0.0)
            if child:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
        for node, _ in self.nodes:
            self.remove_vip(node)
        self.procs.clear()


def _is_keepalived(pid: int) -> bool:
    """True when pid is a live keepalived process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return "(keepalived)" in stat and stat.rsplit(")", 1)[1].split()[0] != "Z"

"""Network-namespace plumbing for the lab: thin wrappers over iproute2.

Invariant: everything the lab creates carries the ``lbk-`` prefix (namespaces) so teardown can
find it all again, also after a crashed ``up``. The root namespace gets exactly one veth end
(``lbk-host``), which disappears with its peer namespace.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Sequence

from lbspeaker.core.errors import LabError

log = logging.getLogger(__name__)

PREFIX = "lbk-"


def run(args: Sequence[str], *, check: bool = True, ns: str | None = None, timeout: float = 20.0) -> str:
    """Run a command (inside ns if given) and return its stdout."""
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(args)
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise LabError(f"running '{' '.join(cmd)}': {err}") from err
    if check and p.returncode != 0:
        raise LabError(f"running '{' '.join(cmd)}': exit {p.returncode}: {p.stderr.strip()}")
    return p.stdout


def ip(*args: str, ns: str | None = None, check: bool = True) -> str:
    """Run ``ip [-n ns] ARGS``."""
    return run(["ip", *(["-n", ns] if ns else []), *args], check=check)


def list_namespaces(prefix: str = PREFIX) -> list[str]:
    """Lab namespaces that exist now."""
    out = run(["ip", "netns", "list"], check=False)
    return [
        line.split()[0] for line in out.splitlines() if line.split() and line.split()[0].startswith(prefix)
    ]


def add_namespace(name: str) -> None:
    """Create a namespace with loopback up."""
    ip("netns", "add", name)
    ip("link", "set", "lo", "up", ns=name)


def sysctl(ns: str, key: str, value: str) -> None:
    """Set one sysctl inside ns."""
    run(["sysctl", "-qw", f"{key}={value}"], ns=ns)


def veth(ns_a: str, if_a: str, ns_b: str | None, if_b: str) -> None:
    """A veth pair with one end in each namespace (ns_b None = the root namespace)."""
    tmp_a, tmp_b = f"lbt{os.getpid() % 100000}a", f"lbt{os.getpid() % 100000}b"
    ip("link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b)
    ip("link", "set", tmp_a, "netns", ns_a, "name", if_a)
    if ns_b is not None:
        ip("link", "set", tmp_b, "netns", ns_b, "name", if_b)
    else:
        ip("link", "set", tmp_b, "name", if_b)
    ip("link", "set", if_a, "up", ns=ns_a)
    ip("link", "set", if_b, "up", ns=ns_b)


def pids_in(ns: str) -> list[int]:
    """PIDs of processes living in ns."""
    out = run(["ip", "netns", "pids", ns], check=False)
    return [int(x) for x in out.split() if x.isdigit()]


def kill_pids(pids: Sequence[int], *, grace: float = 3.0) -> None:
    """SIGTERM, wait up to grace seconds, then SIGKILL what is left."""
    alive = [p for p in pids if _signal(p, signal.SIGTERM)]
    deadline = time.monotonic() + grace
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if _exists(p)]
    for p in alive:
        _signal(p, signal.SIGKILL)


def _signal(pid: int, sig: int) -> bool:
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return False


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def delete_namespaces(prefix: str = PREFIX) -> list[str]:
    """Kill every process in the prefixed namespaces and delete them; idempotent."""
    names = list_namespaces(prefix)
    pids: list[int] = []
    for ns in names:
        pids.extend(pids_in(ns))
    kill_pids(pids)
    for ns in names:
        run(["ip", "netns", "del", ns], check=False)
    return names

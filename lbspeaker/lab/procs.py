"""Lab processes: started detached inside a namespace, logged to files, tracked by pid files."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

from lbspeaker.core.errors import LabError
from lbspeaker.lab.netns import kill_pids

# Children started by this process; kept so they are reaped (and not warned about) when they exit.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def spawn(state_dir: Path, name: str, ns: str, args: list[str], *, env: dict[str, str] | None = None) -> int:
    """Start ``python -m ARGS`` inside ns; returns its pid (logs in state_dir/logs/NAME.log)."""
    logs = state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    pids = state_dir / "pids"
    pids.mkdir(parents=True, exist_ok=True)
    cmd = ["ip", "netns", "exec", ns, sys.executable, "-m", *args]
    with open(logs / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    _CHILDREN[proc.pid] = proc
    (pids / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


def alive(pid: int) -> bool:
    """True while pid runs (zombies count as dead)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def reap() -> None:
    """Collect exited children so they do not linger as zombies."""
    for pid, proc in list(_CHILDREN.items()):
        if proc.poll() is not None:
            del _CHILDREN[pid]


def check_alive(state_dir: Path, name: str, pid: int) -> None:
    """Raise with the log tail if a lab process already died."""
    reap()
    if not alive(pid):
        tail = log_tail(state_dir, name)
        raise LabError(f"lab process '{name}' (pid {pid}) exited at start:\n{tail}")


def log_tail(state_dir: Path, name: str, lines: int = 15) -> str:
    """The last lines of a process log."""
    try:
        text = (state_dir / "logs" / f"{name}.log").read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def recorded_pids(state_dir: Path) -> dict[str, int]:
    """Pids recorded by spawn()."""
    out: dict[str, int] = {}
    for f in sorted((state_dir / "pids").glob("*.pid")) if (state_dir / "pids").is_dir() else []:
        with contextlib.suppress(ValueError, OSError):
            out[f.stem] = int(f.read_text().strip())
    return out


def stop_recorded(state_dir: Path) -> None:
    """Stop every recorded lab process and forget it."""
    pids = recorded_pids(state_dir)
    kill_pids([p for p in pids.values() if alive(p)])
    for proc in list(_CHILDREN.values()):
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
    reap()
    for name in pids:
        with contextlib.suppress(OSError):
            (state_dir / "pids" / f"{name}.pid").unlink()


def kill_one(state_dir: Path, name: str, sig: int) -> int:
    """Send a signal to one recorded process; returns its pid."""
    pid = recorded_pids(state_dir).get(name)
    if pid is None or not alive(pid):
        raise LabError(f"lab process '{name}' is not running")
    os.kill(pid, sig)
    return pid


def wait_until(pred: object, timeout: float, interval: float = 0.1) -> bool:
    """Poll a zero-argument predicate until true or timeout."""
    assert callable(pred)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return bool(pred())

"""Membership failure detection: detection time after SIGKILL, and spurious deaths at idle and under load.

Run as root from the repository root: ``.venv/bin/python bench/membership.py`` (about 5 minutes;
``--quick`` for a short smoke run). Builds its own namespaces (``lbt-memb-<pid>-*``, removed at the
end), runs N members as separate processes and prints one JSON object.

Per profile (``default`` = the shipped defaults, ``fast`` = the fastest supported tuning):
- ``detect_ms_*``: from the SIGKILL of a member to each other member reporting it dead;
- ``false_positives_*``: peers reported dead while nobody died, over an idle window, a window with
  every core busy (2 busy processes per core), and a window where each member process also runs
  busy Python threads competing for its GIL (what the real speaker's other threads do), with
  membership in-process and in its child process (``*_isolated``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.netns.test_membership import Lan, Member, make_lan, remove_lan

PROFILES = {"default": {"interval": 0.025, "timeout": 0.125}, "fast": {"interval": 0.005, "timeout": 0.03}}
GIL_HOG = (
    "import sys, threading\n"
    "EXTRA = ['--isolated'] if sys.argv[1:2] == ['isolated'] else []\n"
    "sys.argv[1:] = [a for a in sys.argv[1:] if a != 'isolated']\n"
    "def spin():\n"
    "    x = 0\n"
    "    while True:\n"
    "        x += 1\n"
    "for _ in range(2):\n"
    "    threading.Thread(target=spin, daemon=True).start()\n"
    "from lbspeaker.speaker.membership_proc import main\n"
    "raise SystemExit(main(sys.argv[1:] + EXTRA))\n"
)


def pct(xs: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s) + 0.5) - 1))] if s else float("nan")


class Cluster:
    """N members on one LAN, restartable one by one."""

    def __init__(self, lan: Lan, secret: Path, opts: dict[str, float], gil: bool, isolated: bool = False) -> None:
        self.lan, self.secret, self.opts, self.gil, self.isolated = lan, secret, opts, gil, isolated
        self.members: dict[str, Member] = {}
        for n in lan.names:
            self.start(n)

    def start(self, node: str) -> Member:
        peers = {p: self.lan.v4[p] for p in self.lan.names if p != node}
        launcher: tuple[str, ...] = ("-m", "lbspeaker.speaker.membership_proc")
        if self.gil:
            launcher = ("-c", GIL_HOG, *(["isolated"] if self.isolated else []))
        m = Member(
            self.lan,
            node,
            secret_file=self.secret,
            peers=peers,
            launcher=launcher,
            duration=900,
            interval=self.opts["interval"],
            timeout=self.opts["timeout"],
        )
        self.members[node] = m
        return m

    def wait_converged(self, timeout: float = 10.0) -> None:
        want = set(self.lan.names)
        deadline = time.monotonic() + timeout
        for m in self.members.values():
            if set(m.alive_now()) == want:
                continue
            ok = m.wait_for(lambda e: e["event"] == "change" and set(e["alive"]) == want, deadline - time.monotonic())
            if not ok:
                raise RuntimeError(f"{m.node} did not converge: {m.history[-3:]}")

    def spurious(self, seconds: float) -> int:
        """Deaths reported while nobody dies, over the window."""
        marks = {n: len(m.history) for n, m in self.members.items()}
        time.sleep(seconds)
        count = 0
        for n, m in self.members.items():
            m.alive_now()
            count += sum(len(e.get("left", [])) for e in m.history[marks[n] :] if e["event"] == "change")
        return count

    def detect(self, trials: int) -> tuple[list[float], int]:
        """Kill a member per trial (round robin), time each other member's verdict, restart it.

        Returns the detection samples (ms) and the deaths reported beyond the expected ones.
        """
        samples: list[float] = []
        extra = 0
        names = self.lan.names
        for i in range(trials):
            victim = names[i % len(names)]
            observers = [self.members[n] for n in names if n != victim]
            observers = [o for o in observers if victim in o.alive_now()]  # else: already a false death
            marks = {o.node: len(o.history) for o in observers}
            t_kill = time.monotonic()
            self.members[victim].kill()

            def dead(e: dict[str, Any], v: str = victim, t0: float = t_kill) -> bool:
                return e["event"] == "change" and v in e["left"] and e["t"] >= t0

            for o in observers:
                ev = o.wait_for(dead, 5.0)
                if ev is None:
                    raise RuntimeError(f"{o.node} never reported {victim} dead")
                samples.append((ev["t"] - t_kill) * 1000)
            self.start(victim)
            self.wait_converged()
            time.sleep(0.2)
            for o in observers:
                o.drain()
                extra += sum(len(e["left"]) for e in o.history[marks[o.node] :] if e["event"] == "change") - 1
        return samples, extra

    def close(self) -> None:
        for m in self.members.values():
            m.kill()


def cpu_load(seconds: float) -> list[subprocess.Popen[bytes]]:
    """Two busy-loop processes per core, each ending by itself after seconds."""
    code = f"import time\ne = time.monotonic() + {seconds}\nwhile time.monotonic() < e: pass\n"
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(2 * (os.cpu_count() or 2))]


def run_profile(lan: Lan, secret: Path, opts: dict[str, float], *, trials: int, window: float) -> dict[str, Any]:
    out: dict[str, Any] = {"interval_ms": opts["interval"] * 1000, "timeout_ms": opts["timeout"] * 1000}
    c = Cluster(lan, secret, opts, gil=False)
    try:
        c.wait_converged()
        time.sleep(0.5)
        out["false_positives_idle"] = c.spurious(window)
        det, extra = c.detect(trials)
        out["false_positives_during_trials"] = extra
        out |= {
            "detect_ms_p50": statistics.median(det),
            "detect_ms_p99": pct(det, 99),
            "detect_ms_max": max(det),
        }
        load = cpu_load(window + trials * 1.5 + 10)
        try:
            time.sleep(1.0)
            out["false_positives_cpu_load"] = c.spurious(window)
            det, extra = c.detect(trials)
            out |= {"detect_ms_p99_cpu_load": pct(det, 99), "detect_ms_max_cpu_load": max(det)}
            out["false_positives_during_trials_cpu_load"] = extra
        finally:
            for p in load:
                p.kill()
                p.wait()
    finally:
        c.close()
    for isolated, suffix in ((False, ""), (True, "_isolated")):
        g = Cluster(lan, secret, opts, gil=True, isolated=isolated)
        try:
            g.wait_converged()
            time.sleep(0.5)
            out[f"false_positives_gil_load{suffix}"] = g.spurious(window)
            det, extra = g.detect(max(3, trials // 2))
            out[f"detect_ms_p99_gil_load{suffix}"] = pct(det, 99)
            out[f"false_positives_during_trials_gil_load{suffix}"] = extra
        finally:
            g.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--window", type=float, default=30.0, help="seconds per false-positive window")
    ap.add_argument("--profiles", default="default,fast")
    ap.add_argument("--quick", action="store_true", help="3 trials, 3 s windows")
    args = ap.parse_args()
    if args.quick:
        args.trials, args.window = 3, 3.0
    names = [f"n{i}" for i in range(args.nodes)]
    lan = make_lan(f"lbt-memb-{os.getpid()}", names)
    result: dict[str, Any] = {
        "nodes": args.nodes,
        "trials": args.trials,
        "window_s": args.window,
        "cpus": os.cpu_count(),
    }
    try:
        with tempfile.TemporaryDirectory() as tmp:
            secret = Path(tmp) / "secret"
            secret.write_bytes(os.urandom(32).hex().encode())
            for name in args.profiles.split(","):
                result[name] = run_profile(lan, secret, PROFILES[name], trials=args.trials, window=args.window)
    finally:
        remove_lan(lan)
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

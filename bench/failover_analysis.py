"""Analysis and report of the failover benchmark: probe gaps, log milestones, churn, percentiles, plot.

Definitions (every time in CLOCK_MONOTONIC ns, relative times in ms from ``t_fail``, the instant
just before the announcing node's speaker (or keepalived) got SIGKILL):
- ``gap_ms``: the longest interval between two consecutive probe replies, counted from the last
  reply received before ``t_fail`` to the end of the trial window. With one probe every 10 ms and
  no failure it is ~10 ms; it includes up to one probe interval of quantisation.
- ``outage_ms``: last reply from the old owner's MAC to the first reply from any other MAC.
- ``lost``: probes sent after ``t_fail`` that never got a reply.
- milestones from the speaker logs (1 ms resolution, wall clock mapped onto ``t_fail``):
  ``detect_ms`` (first survivor logs the victim left the membership) and ``owned_ms`` (the new owner
  logs ``ownership_changed ... gained=VIP``, right before it sends its gratuitous ARP).
"""

from __future__ import annotations

import datetime
import itertools
import json
import math
import re
from pathlib import Path
from typing import Any

Reply = tuple[int, int, str]  # (seq, t_ns, source MAC)

_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def pct(xs: list[float], q: float) -> float | None:
    """Nearest-rank percentile (p99 of 20 samples is the maximum); None for no samples."""
    s = sorted(xs)
    if not s:
        return None
    return s[min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))]


def analyze(
    sent: list[tuple[int, int]], replies: list[Reply], *, t_fail: int, t_end: int, old_mac: str
) -> dict[str, Any]:
    """Gap, outage, lost probes and the new owner's MAC of one trial (see the module docstring)."""
    window = sorted((r for r in replies if t_fail - 1_000_000_000 <= r[1] <= t_end), key=lambda r: r[1])
    before = [r for r in window if r[1] <= t_fail]
    after = [r for r in window if r[1] > t_fail]
    out: dict[str, Any] = {"recovered": False, "gap_ms": None, "outage_ms": None, "new_mac": None}
    new = [r for r in after if r[2] != old_mac]
    answered = {r[0] for r in replies}
    out["lost"] = sum(1 for s, t in sent if t_fail < t <= t_end and s not in answered)
    if not before or not new:
        return out
    chain = [before[-1], *after]
    gaps = [(b[1] - a[1], a, b) for a, b in itertools.pairwise(chain)]
    width, start, end = max(gaps, key=lambda g: g[0])
    old = [r for r in window if r[2] == old_mac and r[1] < new[0][1]]
    out.update(
        recovered=True,
        gap_ms=round(width / 1e6, 1),
        gap_start_ms=round((start[1] - t_fail) / 1e6, 1),
        gap_end_ms=round((end[1] - t_fail) / 1e6, 1),
        outage_ms=round((new[0][1] - old[-1][1]) / 1e6, 1) if old else None,
        first_new_ms=round((new[0][1] - t_fail) / 1e6, 1),
        new_mac=new[0][2],
    )
    return out


def log_times(path: Path, pattern: str, *, since_wall: float) -> list[float]:
    """Wall-clock times of the log lines matching pattern, at or after since_wall (minus 5 ms slack)."""
    rx = re.compile(pattern)
    out: list[float] = []
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return out
    for line in text.splitlines():
        m = _LOG_TIME.match(line)
        if not m or not rx.search(line):
            continue
        t = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if t >= since_wall - 0.005:
            out.append(t)
    return out


def milestones(
    logs: dict[str, Path], *, victim: str, new_owner: str | None, vip: str, t_wall: float
) -> dict[str, float | None]:
    """detect_ms / owned_ms of one lbspeaker trial from the survivors' speaker logs."""
    detect: list[float] = []
    for node, path in logs.items():
        if node != victim:
            detect += log_times(path, rf"membership\.changed .*left=\[[^\]]*'{victim}'", since_wall=t_wall)
    owned: list[float] = []
    if new_owner is not None and new_owner in logs:
        owned = log_times(logs[new_owner], rf"ownership_changed .*gained=\S*{re.escape(vip)}\b", since_wall=t_wall)
    return {
        "detect_ms": round((min(detect) - t_wall) * 1000, 1) if detect else None,
        "owned_ms": round((min(owned) - t_wall) * 1000, 1) if owned else None,
    }


def r2(v: float | None) -> float | None:
    """Rounded to 0.1 (None stays None)."""
    return None if v is None else round(v, 1)


def summary(name: str, trials: list[dict[str, Any]]) -> dict[str, Any]:
    """``<name>_gap_ms_p50/p99/max``, unrecovered count and the raw gaps; p99 is None if any failed."""
    gaps = [float(t["gap_ms"]) for t in trials if t.get("recovered")]
    failed = sum(1 for t in trials if not t.get("recovered"))
    out: dict[str, Any] = {
        f"{name}_gap_ms_p50": r2(pct(gaps, 50)),
        f"{name}_gap_ms_p99": None if failed else r2(pct(gaps, 99)),
        f"{name}_gap_ms_max": None if failed else r2(max(gaps, default=None)),
        f"{name}_unrecovered": failed,
        f"{name}_gaps_ms": [None if not t.get("recovered") else round(float(t["gap_ms"]), 1) for t in trials],
    }
    for key in ("detect_ms", "owned_ms", "first_new_ms"):
        vals = [float(t[key]) for t in trials if t.get(key) is not None]
        if vals:
            out[f"{name}_{key}_p50"] = r2(pct(vals, 50))
            out[f"{name}_{key}_max"] = r2(max(vals))
    return out


def plot(trial: dict[str, Any], path: Path, *, title: str) -> None:
    """Timeline of one trial: one row per node, a tick per probe reply, the milestones as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # type: ignore[import-not-found,unused-ignore]

    nodes: list[str] = trial["nodes"]
    rows = {n: i for i, n in enumerate(nodes)}
    fig, ax = plt.subplots(figsize=(11, 5.0), dpi=110)
    sent = [t for t in trial["timeline_sent_ms"]]
    ax.scatter(sent, [len(nodes)] * len(sent), marker="|", s=80, color="0.55", label="probe sent (every 10 ms)")
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown"]
    for node in nodes:
        xs = [t for t, n in trial["timeline_replies_ms"] if n == node]
        ax.scatter(
            xs,
            [rows[node]] * len(xs),
            marker="|",
            s=80,
            color=colors[rows[node] % len(colors)],
            label=f"reply from {node}",
        )
    marks: list[tuple[Any, str, str]] = [
        (0.0, "SIGKILL speaker", "red"),
        (trial.get("link_down_ms"), "eth0 down", "darkred"),
        (trial.get("detect_ms"), "survivor declares it dead (membership)", "black"),
        (trial.get("owned_ms"), "new owner takes the VIP, sends GARP", "tab:green"),
        (trial.get("first_new_ms"), "first reply from the new owner", "tab:blue"),
    ]
    top = len(nodes) + 0.45
    for i, (x, label, color) in enumerate(m for m in marks if m[0] is not None):
        ax.axvline(float(x), color=color, linestyle="--", linewidth=1)
        ax.annotate(
            f"{label}: {float(x):.0f} ms",
            xy=(float(x), top + 0.3 * i),
            xytext=(8, 0),
            textcoords="offset points",
            color=color,
            fontsize=8,
            va="center",
            arrowprops={"arrowstyle": "-", "color": color, "lw": 0.6},
        )
    if trial.get("gap_start_ms") is not None:
        ax.axvspan(
            float(trial["gap_start_ms"]),
            float(trial["gap_end_ms"]),
            color="red",
            alpha=0.07,
            label=f"gap: no reply for {trial['gap_ms']:.0f} ms",
        )
    ax.set_yticks(range(len(nodes) + 1), [*nodes, "client"])
    ax.set_ylim(-0.6, top + 0.3 * len(marks) + 0.1)
    ax.set_xlabel("time since the announcing node's speaker was SIGKILLed (ms); one tick = one probe / reply")
    ax.set_title(f"{title}: gap {trial['gap_ms']:.0f} ms ({trial['killed']} → {trial['new_owner']})")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=8, ncol=5, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


KEYS = (
    "lbspeaker_gap_ms_p50",
    "lbspeaker_gap_ms_p99",
    "lbspeaker_api_down_gap_ms_p99",
    "keepalived_default_gap_ms_p50",
    "keepalived_default_gap_ms_p99",
    "keepalived_fast_gap_ms_p99",
    "lbspeaker_fast_gap_ms_p99",
    "trials",
)


def churn(sizes: dict[Path, int], trials: int, *, keepalived: bool) -> dict[str, int]:
    """Takeovers logged since the sizes were taken, against the 2 per trial a kill + restore needs.

    lbspeaker: survivors' ``membership.changed ... left=[...]`` entries (2 survivors see each kill).
    keepalived: ``Entering MASTER STATE`` lines (one takeover + one preemption back per trial).
    """
    pattern = re.compile(r"Entering MASTER STATE" if keepalived else r"membership\.changed .* left=\[([^\]]+)\]")
    seen = 0
    for f, size in sizes.items():
        if keepalived != (f.name == "keepalived.log"):
            continue
        try:
            with open(f, "rb") as fh:
                fh.seek(size)
                text = fh.read().decode(errors="replace")
        except OSError:
            continue
        for m in pattern.finditer(text):
            seen += 1 if keepalived else len(m.group(1).split(","))
    return {"events": seen, "expected": 2 * trials, "spurious": max(0, seen - 2 * trials)}


def report(result: dict[str, Any], *, out: Path, repo: Path) -> dict[str, Any]:
    """Summaries per variant, targets, the plot; raw details kept under trial_details."""
    trials: dict[str, list[dict[str, Any]]] = result.get("trial_details", {})
    for name, ts in trials.items():
        result.update(summary(name, ts))
    for key in KEYS:
        result.setdefault(key, None)
    lb = trials.get("lbspeaker", [])
    ok = [t for t in lb if t.get("recovered")]
    if ok:
        med = sorted(ok, key=lambda t: t["gap_ms"])[len(ok) // 2]
        png = out / "failover.png"
        plot(med, png, title="lbspeaker failover (defaults), median trial")
        result["plot"] = str(png.relative_to(repo)) if png.is_relative_to(repo) else str(png)
    targets = {"lbspeaker_gap_ms_p99": 250, "lbspeaker_api_down_gap_ms_p99": 250, "lbspeaker_fast_gap_ms_p99": 50}
    result["targets_met"] = {
        f"{k}<={v}": result.get(k) is not None and float(result[k]) <= v for k, v in targets.items()
    }
    timelines = {
        name: [{k: t.get(k) for k in ("trial", "timeline_sent_ms", "timeline_replies_ms")} for t in ts]
        for name, ts in trials.items()
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "failover-timelines.json").write_text(json.dumps(timelines) + "\n")
    for ts in [*trials.values(), result.get("discarded_trials", [])]:  # drop the bulky timelines
        for t in ts:
            t.pop("timeline_sent_ms", None)
            t.pop("timeline_replies_ms", None)
            t.pop("nodes", None)
    return result

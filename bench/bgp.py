"""BGP announcement speed and failover detection against BIRD 2, printing one JSON object.

Run as root from the repository root: ``.venv/bin/python bench/bgp.py --routes 10000``.
Builds its own namespaces (``lbt-bgp<pid>...``, removed at the end, also on failure): a router
running BIRD and a speaker namespace running the speaker's BGP side (exabgp driver + BFD) in one
process, fed through the same config parser and route functions as the speaker.

- ``announce_s``: from the apply request until all N routes (IPv4 and IPv6) are in BIRD's tables;
- ``withdraw_s``: from the apply with no routes until BIRD's tables are empty;
- ``bfd_failover_ms``: SIGSTOP of the speaker side (process + exabgp), BFD ``--bfd-ms`` (default 50) x 3 on both
  ends, until BIRD has none of the N routes;
- ``bfd_failover_exabgp_hung_ms``: SIGSTOP of exabgp alone: the driver sees its API hung
  (0.25 s without an answer), silences BFD, and BIRD's BFD drops the sessions;
- ``hold_failover_ms``: the same without BFD, hold time ``--hold`` seconds (3 = the minimum).
IPv4 routes are /32s from 203.0.113.0/24 and 198.51.100.0/24 (documentation ranges only), so at
most 512 of the N routes are IPv4; the rest are IPv6 /128s from 2001:db8:5::/112.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.netns.bgp.peers import Bird, Lab, SpeakerProc, wait_until
from tests.netns.bgp.scenario import obj

NODE = {"name": "n1", "addresses": ["192.0.2.2", "2001:db8::2"]}
BFD_MS = 100  # overridden by --bfd-ms


def bfd_profile(ms: int) -> dict[str, Any]:
    """The BFDProfile both sides use (ms x 3)."""
    return obj("fast", receiveInterval=ms, transmitInterval=ms, detectMultiplier=3)
ADV = obj("all")

BIRD_CONF = """
router id 192.0.2.1;
protocol device {}
protocol bfd { interface "*" { min rx interval BFDMS ms; min tx interval BFDMS ms; multiplier 3; }; }
protocol bgp s4 { local 192.0.2.1 as 64512; neighbor 192.0.2.2 as 64513; error wait time 1, 10;
  bfd BFD; hold time HOLD; ipv4 { import all; export none; }; }
protocol bgp s6 { local 2001:db8::1 as 64512; neighbor 2001:db8::2 as 64513; error wait time 1, 10;
  bfd BFD; hold time HOLD; ipv6 { import all; export none; }; }
"""


def route_ips(n: int) -> tuple[list[str], list[str]]:
    """Up to 512 IPv4 addresses and the rest IPv6, n in all."""
    v4_pool = list(ipaddress.ip_network("203.0.113.0/24")) + list(ipaddress.ip_network("198.51.100.0/24"))
    v4 = [str(a) for a in v4_pool[: min(n // 10 or 1, len(v4_pool))]]
    v6 = [str(ipaddress.ip_address("2001:db8:5::") + i) for i in range(1, n - len(v4) + 1)]
    return v4, v6


def peers(bfd: bool, hold: int) -> list[dict[str, Any]]:
    extra: dict[str, Any] = {"bfdProfile": "fast"} if bfd else {}
    return [
        obj("r4", myASN=64513, peerASN=64512, peerAddress="192.0.2.1", holdTime=f"{hold}s", **extra),
        obj("r6", myASN=64513, peerASN=64512, peerAddress="2001:db8::1", holdTime=f"{hold}s", **extra),
    ]


def setup(lab: Lab, *, bfd: bool, hold: int) -> tuple[Bird, SpeakerProc]:
    r, s = lab.ns("r"), lab.ns("s")
    lab.link(r, s, ("192.0.2.1/24", "192.0.2.2/24"), ("2001:db8::1/64", "2001:db8::2/64"))
    conf = BIRD_CONF.replace("BFDMS", str(BFD_MS)).replace("BFD", "on" if bfd else "off").replace("HOLD", str(hold))
    return Bird(lab, r, conf), SpeakerProc(lab, s)


def counts(bird: Bird) -> tuple[int, int]:
    return bird.count("s4"), bird.count("s6")


def apply(sp: SpeakerProc, ips: list[str], *, bfd: bool, hold: int) -> None:
    sp.request(
        op="apply", peers=peers(bfd, hold), advertisements=[ADV], bfd_profiles=[bfd_profile(BFD_MS)], node=NODE,
        ips=ips,
        timeout=120,
    )  # fmt: skip


def failover_ms(bird: Bird, sp: SpeakerProc, *, timeout: float, exabgp_only: bool = False) -> float:
    """SIGSTOP the speaker side (or only its exabgp); ms until BIRD holds none of its routes."""
    pids = [sp.exabgp_pid] if exabgp_only and sp.exabgp_pid else sp.pids()
    t0 = time.monotonic()
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        wait_until(lambda: counts(bird) == (0, 0), timeout=timeout, interval=0.005, what="routes gone")
        return (time.monotonic() - t0) * 1000
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


def run_bfd(n: int) -> dict[str, Any]:
    lab = Lab()
    try:
        bird, sp = setup(lab, bfd=True, hold=30)
        v4, v6 = route_ips(n)
        apply(sp, [], bfd=True, hold=30)
        wait_until(lambda: bird.state("s4") == bird.state("s6") == "Established", timeout=30, what="sessions")
        wait_until(lambda: bird.cli("show", "bfd", "sessions").count(" Up ") == 2, timeout=30, what="BFD up")
        t0 = time.monotonic()
        apply(sp, v4 + v6, bfd=True, hold=30)
        wait_until(lambda: counts(bird) == (len(v4), len(v6)), timeout=120, interval=0.01, what="announce")
        announce_s = time.monotonic() - t0
        t0 = time.monotonic()
        apply(sp, [], bfd=True, hold=30)
        wait_until(lambda: counts(bird) == (0, 0), timeout=120, interval=0.01, what="withdraw")
        withdraw_s = time.monotonic() - t0
        apply(sp, v4 + v6, bfd=True, hold=30)
        wait_until(lambda: counts(bird) == (len(v4), len(v6)), timeout=120, what="re-announce")
        rss = _rss_kb(sp.exabgp_pid)
        bfd_ms = failover_ms(bird, sp, timeout=20)
        wait_until(lambda: counts(bird) == (len(v4), len(v6)), timeout=60, what="routes back")
        exabgp_ms = failover_ms(bird, sp, timeout=20, exabgp_only=True)
        return {
            "routes": n, "v4_routes": len(v4), "v6_routes": len(v6), "announce_s": round(announce_s, 3),
            "withdraw_s": round(withdraw_s, 3), "bfd_failover_ms": round(bfd_ms, 1), "bfd": f"{BFD_MS}ms x 3",
            "bfd_failover_exabgp_hung_ms": round(exabgp_ms, 1),
            "exabgp_rss_kb": rss,
        }  # fmt: skip
    finally:
        lab.close()


def run_hold(n: int, hold: int) -> dict[str, Any]:
    lab = Lab()
    try:
        bird, sp = setup(lab, bfd=False, hold=hold)
        v4, v6 = route_ips(n)
        apply(sp, v4 + v6, bfd=False, hold=hold)
        wait_until(lambda: counts(bird) == (len(v4), len(v6)), timeout=120, what="announce")
        return {
            "hold_failover_ms": round(failover_ms(bird, sp, timeout=hold * 3 + 10), 1),
            "hold_time_s": hold,
        }
    finally:
        lab.close()


def _rss_kb(pid: int | None) -> int | None:
    if not pid:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--routes", type=int, default=10_000)
    ap.add_argument("--hold", type=int, default=3, help="hold time (s) for hold_failover_ms; 3 is the minimum")
    ap.add_argument("--bfd-ms", type=int, default=50,
                    help="BFD interval on both sides (x 3); with 100 the router's detection alone is 200-300 ms")
    args = ap.parse_args()
    global BFD_MS
    BFD_MS = args.bfd_ms
    out = run_bfd(args.routes)
    out.update(run_hold(args.routes, args.hold))
    print(json.dumps(out))


if __name__ == "__main__":
    main()

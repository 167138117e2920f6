"""ARP responder throughput and latency: lbspeaker's Responder against the kernel, same run.

Run as root from the repository root: ``.venv/bin/python bench/responder.py`` (about a minute;
``--quick`` for a smoke run). Builds a client and a node namespace joined by a veth pair
(``lbt-arpb-<pid>-*``, removed at the end). The node is strictARP (arp_ignore=1, arp_announce=2)
and holds the VIP 192.0.2.100 on a port-less ``kube-ipvs0`` bridge, answered by the Responder
(its own process, so it has its own GIL), and 192.0.2.200 on ``eth0``, answered by the kernel.

A single client thread sends who-has requests from a raw socket on a fixed schedule at rising
rates (each step bounded in count and time), each request with its own sender MAC so every
reply is matched to its request; reply times are kernel receive timestamps (SO_TIMESTAMPNS).
``*_pps_no_loss`` is the highest rate, over the steps that got every reply, that was both sent and
answered (replies / time from the first request to the last reply), so a responder that only
buffers does not count as keeping up. Latency (p50/p99) is measured at a moderate fixed rate.
The machine's load average and nice value are reported: other work on the cores shows up in the
tail latency (on a shared machine, ``nice -n -15 .venv/bin/python bench/responder.py`` helps).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lbspeaker.core.arp import build_request
from lbspeaker.speaker.rawsock import PACKET_IGNORE_OUTGOING, SO_RCVBUFFORCE, SOL_PACKET
from tests.netns.netns_util import NetnsLab, netns_lab

CLIENT = ipaddress.IPv4Address("192.0.2.1")
VIP = ipaddress.IPv4Address("192.0.2.100")
KERNEL_IP = ipaddress.IPv4Address("192.0.2.200")
SO_TIMESTAMPNS = 35
RATES = (10_000, 25_000, 50_000, 75_000, 100_000, 125_000, 150_000, 200_000, 250_000)
STEP_SECONDS = 0.25
STEP_MAX = 20_000
LATENCY_RATE = 2_000
LATENCY_COUNT = 4_000


def pct(xs: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s) + 0.5) - 1))] if s else float("nan")


def seq_mac(seq: int) -> bytes:
    """A locally administered unicast MAC carrying a sequence number."""
    return b"\x02\x00" + seq.to_bytes(4, "big")


class Client:
    """Raw-socket sender/receiver; created inside the client namespace."""

    def __init__(self, interface: str) -> None:
        self.tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        self.tx.bind((interface, 0))
        self.rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
        self.rx.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        self.rx.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 16 << 20)
        self.rx.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.rx.bind((interface, 0x0806))
        self.rx.setblocking(False)

    def _drain(self, target: bytes, got: dict[int, int]) -> None:
        cmsg_space = socket.CMSG_SPACE(16)
        while True:
            try:
                data, anc, _, _ = self.rx.recvmsg(128, cmsg_space)
            except BlockingIOError:
                return
            if len(data) < 42 or data[20:22] != b"\x00\x02" or data[28:32] != target:
                continue
            seq = int.from_bytes(data[34:38], "big")
            for level, typ, value in anc:
                if level == socket.SOL_SOCKET and typ == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("qq", value[:16])
                    got.setdefault(seq, sec * 1_000_000_000 + nsec)

    def run(self, target: ipaddress.IPv4Address, rate: int, count: int) -> dict[str, Any]:
        """Send ``count`` requests at ``rate``/s; return sent/received/rate and latency percentiles."""
        frames = [build_request(seq_mac(i), CLIENT, target=target) for i in range(count)]
        sent_at = [0] * count
        got: dict[int, int] = {}
        packed = target.packed
        send = self.tx.send
        now_ns = time.time_ns
        self._drain(packed, {})  # flush leftovers of the previous step
        start = time.perf_counter()
        i = 0
        while i < count:
            due = min(count, int((time.perf_counter() - start) * rate) + 1)
            while i < due:
                sent_at[i] = now_ns()
                try:
                    send(frames[i])
                except OSError:  # ENOBUFS under overload counts as a lost request
                    pass
                i += 1
            self._drain(packed, got)
        elapsed = time.perf_counter() - start
        deadline = time.perf_counter() + 0.5
        while time.perf_counter() < deadline and len(got) < count:
            self._drain(packed, got)
            time.sleep(0.001)
        lat = [(t - sent_at[s]) / 1000 for s, t in got.items() if 0 <= s < count]
        span_s = (max(got.values()) - sent_at[0]) / 1e9 if got else float("inf")
        return {
            "rate_target": rate,
            "rate_sent": round(count / elapsed),
            "rate_answered": round(len(got) / span_s),
            "sent": count,
            "received": len(got),
            "lost": count - len(got),
            "p50_us": round(pct(lat, 50), 1),
            "p99_us": round(pct(lat, 99), 1),
        }

    def close(self) -> None:
        """Close both sockets."""
        self.tx.close()
        self.rx.close()


def serve(interface: str, vip: str) -> int:
    """Subprocess mode: run a Responder owning ``vip`` until stdin closes; print its stats."""
    from lbspeaker.speaker.responder import Responder

    r = Responder(interface)
    r.start()
    r.set_owned([ipaddress.ip_address(vip)])
    print("ready", flush=True)
    sys.stdin.read()
    print(json.dumps(r.stats), flush=True)
    r.stop()
    return 0


def build(lab: NetnsLab) -> tuple[str, str]:
    """Client and strictARP node joined by a veth pair."""
    client, node = lab.ns("c"), lab.ns("n")
    lab.sysctl(node, net__ipv4__conf__all__arp_ignore=1, net__ipv4__conf__all__arp_announce=2)
    lab.veth(client, "eth0", node, "eth0")
    lab.ip(client, "addr", "add", f"{CLIENT}/24", "dev", "eth0")
    lab.ip(node, "addr", "add", "192.0.2.11/24", "dev", "eth0")
    lab.ip(node, "addr", "add", f"{KERNEL_IP}/32", "dev", "eth0")
    lab.ip(node, "link", "add", "kube-ipvs0", "type", "bridge")
    lab.ip(node, "link", "set", "kube-ipvs0", "up")
    lab.ip(node, "addr", "add", f"{VIP}/32", "dev", "kube-ipvs0")
    return client, node


def sweep(c: Client, target: ipaddress.IPv4Address, rates: tuple[int, ...], seconds: float) -> dict[str, Any]:
    """Latency at a fixed moderate rate, then rising rates until two steps in a row lose replies."""
    latency = c.run(target, LATENCY_RATE, LATENCY_COUNT)
    steps = []
    best = 0
    lossy = 0
    for rate in rates:
        step = c.run(target, rate, min(STEP_MAX, max(1000, int(rate * seconds))))
        steps.append(step)
        if step["lost"] == 0:
            best = max(best, min(step["rate_sent"], step["rate_answered"]))
            lossy = 0
        else:
            lossy += 1
            if lossy == 2:
                break
        time.sleep(0.2)
    return {"pps_no_loss": best, "latency": latency, "steps": steps}


def main(argv: list[str] | None = None) -> int:
    """Build the namespaces, measure the Responder and the kernel, print one JSON object."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="three low rates only")
    ap.add_argument("--serve", nargs=2, metavar=("INTERFACE", "VIP"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        return serve(*args.serve)
    rates = RATES[:3] if args.quick else RATES
    with netns_lab("arpb") as lab:
        client, node = build(lab)
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
        proc = lab.popen(
            node,
            sys.executable,
            str(Path(__file__).resolve()),
            "--serve",
            "eth0",
            str(VIP),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert proc.stdout is not None and proc.stdin is not None
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit("bench/responder.py: responder process did not start")
        time.sleep(2.2)  # let the takeover burst finish
        ct = lab.thread(client)
        c = ct.call(Client, "eth0")
        try:
            ours = ct.call(sweep, c, VIP, rates, STEP_SECONDS, timeout=600)
            kernel = ct.call(sweep, c, KERNEL_IP, rates, STEP_SECONDS, timeout=600)
        finally:
            c.close()
        out, _ = proc.communicate("", timeout=30)
        stats = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    result = {
        "lbspeaker_pps_no_loss": ours["pps_no_loss"],
        "kernel_pps_no_loss": kernel["pps_no_loss"],
        "lbspeaker_p50_us": ours["latency"]["p50_us"],
        "lbspeaker_p99_us": ours["latency"]["p99_us"],
        "kernel_p50_us": kernel["latency"]["p50_us"],
        "kernel_p99_us": kernel["latency"]["p99_us"],
        "latency_rate_pps": LATENCY_RATE,
        "lbspeaker": ours,
        "kernel": kernel,
        "responder_stats": stats,
        "cpus": os.cpu_count(),
        "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
        "nice": os.nice(0),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark the controller program against the embedded API server; prints one JSON object.

    python bench/controller.py --services 10000

Creates N LoadBalancer Services (IPv6, no node ports) while no controller runs, starts
``lbspeaker-controller`` as a subprocess and measures:
- assign_per_s: N / (time from "rebuilt" to "initial_reconcile_done") in the first run;
- restart_ready_s: from spawning a second controller to its "initial_reconcile_done";
- ip_changes_on_restart: Services whose ingress differs after that restart (must be 0);
- rss_mb: peak RSS (VmHWM) of the first controller.
Everything runs on loopback; the server and processes are stopped at the end, also on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from lbspeaker.apiserver.server import EmbeddedServer
from lbspeaker.core.errors import ApiError
from lbspeaker.k8s.client import CRDS, IPADDRESSPOOLS, L2ADVERTISEMENTS, NAMESPACES, SERVICES, Kube

ROOT = Path(__file__).resolve().parents[1]
NS = "lbspeaker-system"


class Proc:
    """The controller subprocess; its log goes to a file that is scanned for key lines."""

    def __init__(self, kubeconfig: Path, log_path: Path) -> None:
        self.t_spawn = time.monotonic()
        self.marks: dict[str, float] = {}
        self.log_path = log_path
        self.log = log_path.open("a")
        self._offset = self.log.tell()
        self._buf = ""
        self.p = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "controller.main",
                "--kubeconfig",
                str(kubeconfig),
                "--namespace",
                NS,
                "--log-level",
                "INFO",
            ],
            cwd=ROOT,
            stderr=self.log,
            stdout=subprocess.DEVNULL,
        )

    def _scan(self) -> None:
        with self.log_path.open() as f:
            f.seek(self._offset)
            chunk = f.read()
            self._offset = f.tell()
        now = time.monotonic()
        lines = (self._buf + chunk).split("\n")
        self._buf = lines.pop()
        for line in lines:
            for mark in ("rebuilt", "initial_reconcile_done"):
                if f" {mark} " in line and mark not in self.marks:
                    self.marks[mark] = now

    def wait_mark(self, mark: str, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while mark not in self.marks:
            self._scan()
            if mark in self.marks:
                break
            if time.monotonic() > deadline or self.p.poll() is not None:
                raise RuntimeError(f"controller: no '{mark}' within {timeout}s (exit={self.p.poll()})")
            time.sleep(0.02)
        return self.marks[mark]

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.p.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        self.log.close()


def ingress_map(kube: Kube) -> dict[str, tuple[str, ...]]:
    items, _ = kube.list(SERVICES, "bench")
    return {
        o["metadata"]["name"]: tuple(
            i.get("ip", "") for i in ((o.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        )
        for o in items
    }


def service(i: int) -> dict[str, Any]:
    return {
        "metadata": {"name": f"svc-{i:06d}", "namespace": "bench"},
        "spec": {
            "type": "LoadBalancer",
            "ipFamilies": ["IPv6"],
            "ipFamilyPolicy": "SingleStack",
            "allocateLoadBalancerNodePorts": False,
            "ports": [{"port": 80, "protocol": "TCP"}],
            "selector": {"app": f"a{i}"},
        },
    }


def run(n: int, workdir: Path, timeout: float) -> dict[str, Any]:
    srv = EmbeddedServer(host="127.0.0.1", port=0, history_size=max(1000, 4 * n))
    srv.start()
    procs: list[Proc] = []
    try:
        kc = workdir / "kubeconfig"
        srv.write_kubeconfig(kc)
        kube = Kube.from_kubeconfig(str(kc))
        for name in ("lbspeaker.io_ipaddresspools.yaml", "lbspeaker.io_l2advertisements.yaml"):
            kube.create(CRDS, yaml.safe_load((ROOT / "config" / "crd" / name).read_text()))
        for ns in (NS, "bench"):
            try:
                kube.create(NAMESPACES, {"metadata": {"name": ns}})
            except ApiError:
                pass
        deadline = time.monotonic() + 10
        while True:
            try:
                kube.create(
                    IPADDRESSPOOLS,
                    {"metadata": {"name": "bench"}, "spec": {"addresses": ["2001:db8:1::/64", "192.0.2.0/24"]}},
                    NS,
                )
                break
            except ApiError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        kube.create(L2ADVERTISEMENTS, {"metadata": {"name": "bench"}, "spec": {}}, NS)
        t0 = time.monotonic()
        with ThreadPoolExecutor(8) as ex:
            list(ex.map(lambda i: kube.create(SERVICES, service(i)), range(n)))
        create_s = time.monotonic() - t0

        first = Proc(kc, workdir / "controller.log")
        procs.append(first)
        t_rebuilt = first.wait_mark("rebuilt", timeout)
        t_done = first.wait_mark("initial_reconcile_done", timeout)
        rss = first.peak_rss_mb()
        startup_s = t_rebuilt - first.t_spawn
        first.stop()
        before = ingress_map(kube)
        assigned = sum(1 for v in before.values() if v)

        second = Proc(kc, workdir / "controller.log")
        procs.append(second)
        t_ready = second.wait_mark("initial_reconcile_done", timeout)
        restart_ready_s = t_ready - second.t_spawn
        second.stop()
        after = ingress_map(kube)
        changes = sum(1 for k, v in before.items() if after.get(k) != v)
        kube.close()
        return {
            "services": n,
            "assigned": assigned,
            "assign_per_s": round(n / max(t_done - t_rebuilt, 1e-9), 1),
            "first_start_to_rebuilt_s": round(startup_s, 2),
            "restart_ready_s": round(restart_ready_s, 2),
            "ip_changes_on_restart": changes,
            "rss_mb": round(rss, 1),
            "create_services_s": round(create_s, 2),
        }
    finally:
        for p in procs:
            p.stop()
        srv.stop()


def main() -> int:
    """Parse arguments, run, print JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds allowed per phase")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="lbs-bench-ctrl-") as d:
        result = run(args.services, Path(d), args.timeout)
        text = (Path(d) / "controller.log").read_text()
        result["log_warnings"] = sum(1 for line in text.splitlines() if " WARNING " in line)
        if os.environ.get("BENCH_KEEP_LOG"):
            Path(os.environ["BENCH_KEEP_LOG"]).write_text(text)
    print(json.dumps(result))
    return 0 if result["ip_changes_on_restart"] == 0 and result["assigned"] == args.services else 1


if __name__ == "__main__":
    sys.exit(main())

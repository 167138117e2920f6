"""The controller against the embedded API server over HTTP, in-process and as the real program.

Scenarios: a Service gets an IP (status, annotation, event, pool status); a restart changes no
IP; delete and type change release; exhaustion gives an AllocationFailed event; SIGTERM exits 0.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.controller import Controller
from lbspeaker.apiserver.server import EmbeddedServer
from lbspeaker.core.errors import ApiError
from lbspeaker.k8s.client import CRDS, EVENTS, IPADDRESSPOOLS, L2ADVERTISEMENTS, NAMESPACES, SERVICES, Kube

ROOT = Path(__file__).resolve().parents[2]
NS = "lbspeaker-system"
ANN_FROM = "lbspeaker.io/ip-allocated-from-pool"


class Cluster:
    """An embedded API server with the CRDs and a 3-address pool."""

    def __init__(self, tmp: Path) -> None:
        self.srv = EmbeddedServer(host="127.0.0.1", port=0)
        self.srv.start()
        self.kubeconfig = tmp / "kubeconfig"
        self.srv.write_kubeconfig(self.kubeconfig)
        self.kube = Kube.from_kubeconfig(str(self.kubeconfig))
        for name in ("lbspeaker.io_ipaddresspools.yaml", "lbspeaker.io_l2advertisements.yaml"):
            self.kube.create(CRDS, yaml.safe_load((ROOT / "config" / "crd" / name).read_text()))
        try:
            self.kube.create(NAMESPACES, {"metadata": {"name": NS}})
        except ApiError:
            pass  # already bootstrapped
        self.wait(lambda: self._crds_served(), "CRDs served")
        self.kube.create(
            IPADDRESSPOOLS,
            {"metadata": {"name": "e2e"}, "spec": {"addresses": ["192.0.2.200-192.0.2.202"]}},
            NS,
        )
        self.kube.create(L2ADVERTISEMENTS, {"metadata": {"name": "e2e"}, "spec": {}}, NS)

    def _crds_served(self) -> bool:
        try:
            self.kube.list(IPADDRESSPOOLS, NS)
            return True
        except ApiError:
            return False

    def close(self) -> None:
        self.kube.close()
        self.srv.stop()

    def service(self, name: str, *, type: str = "LoadBalancer", port: int = 80) -> None:
        self.kube.create(
            SERVICES,
            {
                "metadata": {"name": name, "namespace": "default"},
                "spec": {
                    "type": type,
                    "ports": [{"port": port, "protocol": "TCP"}],
                    "selector": {"app": name},
                },
            },
        )

    def ingress(self, name: str) -> list[str]:
        try:
            obj = self.kube.get(SERVICES, name, "default")
        except ApiError:
            return []
        return [i["ip"] for i in ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]

    def annotations(self, name: str) -> dict[str, str]:
        ann = self.kube.get(SERVICES, name, "default")["metadata"].get("annotations") or {}
        return dict(ann)

    def events(self, name: str) -> list[tuple[str, str, str]]:
        items, _ = self.kube.list(EVENTS, "default")
        return [
            (e.get("type", ""), e.get("reason", ""), e.get("message", ""))
            for e in items
            if (e.get("involvedObject") or {}).get("name") == name
        ]

    @staticmethod
    def wait(cond: Callable[[], Any], what: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class InProcess:
    """One controller running in a thread of the test process."""

    def __init__(self, cluster: Cluster) -> None:
        self.ctrl = Controller(cluster.kube, namespace=NS, status_interval=0.1)
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self.ctrl.run, args=(self.stop_ev,), daemon=True)
        self.thread.start()
        assert self.ctrl.ready.wait(10.0), "controller did not become ready"

    def stop(self) -> None:
        self.stop_ev.set()
        self.thread.join(5.0)
        assert not self.thread.is_alive()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.close()


def test_allocate_restart_delete_type_change_exhaustion(cluster: Cluster) -> None:
    cluster.service("a")
    cluster.service("b")
    cluster.service("plain", type="ClusterIP")
    run = InProcess(cluster)
    try:
        cluster.wait(
            lambda: cluster.ingress("a") and cluster.ingress("b") and ANN_FROM in cluster.annotations("a"),
            "IPs for a and b",
        )
        assert sorted(cluster.ingress("a") + cluster.ingress("b")) == ["192.0.2.200", "192.0.2.201"]
        a = cluster.kube.get(SERVICES, "a", "default")
        assert a["metadata"]["annotations"]["lbspeaker.io/ip-allocated-from-pool"] == "e2e"
        assert a["status"]["loadBalancer"]["ingress"][0]["ipMode"] == "VIP"
        (cond,) = a["status"]["conditions"]
        assert (cond["type"], cond["status"], cond["reason"]) == ("lbspeaker.io/IPAllocated", "True", "IPAllocated")
        assert (
            "Normal",
            "IPAllocated",
            f"assigned IP {cluster.ingress('a')[0]} from pool 'e2e'",
        ) in cluster.events("a")
        assert cluster.ingress("plain") == []
        cluster.wait(
            lambda: (cluster.kube.get(IPADDRESSPOOLS, "e2e", NS).get("status") or {}).get("assignedIPv4") == 2,
            "pool status counts",
        )
    finally:
        run.stop()
    before = {n: cluster.ingress(n) for n in ("a", "b")}
    cluster.service("c")  # created while no controller runs: must not take a's or b's IP
    run = InProcess(cluster)
    try:
        cluster.wait(lambda: cluster.ingress("c"), "IP for c")
        assert {n: cluster.ingress(n) for n in ("a", "b")} == before
        assert cluster.ingress("c") == ["192.0.2.202"]
        cluster.service("d")
        cluster.wait(lambda: any(r == "AllocationFailed" for _, r, _m in cluster.events("d")), "AllocationFailed")
        assert (
            "Warning",
            "AllocationFailed",
            "failed to allocate an IP: pool 'e2e' exhausted (IPv4)",
        ) in cluster.events("d")
        d = cluster.kube.get(SERVICES, "d", "default")
        assert [(c["status"], c["reason"], c["message"]) for c in d["status"]["conditions"]] == [
            ("False", "PoolExhausted", "pool 'e2e' exhausted (IPv4)")
        ]
        freed = cluster.ingress("a")
        cluster.kube.delete(SERVICES, "a", "default")
        cluster.wait(lambda: cluster.ingress("d") == freed, "d gets the IP a released")
        cluster.kube.patch(SERVICES, "b", {"spec": {"type": "ClusterIP"}}, namespace="default")
        cluster.wait(
            lambda: cluster.ingress("b") == [] and ANN_FROM not in cluster.annotations("b"),
            "b's status and pool annotation cleared after type change",
        )
        assert "conditions" not in (cluster.kube.get(SERVICES, "b", "default").get("status") or {})
        cluster.service("e")
        cluster.wait(lambda: cluster.ingress("e") == before["b"], "e gets the IP b released")
    finally:
        run.stop()


def test_program_starts_allocates_and_exits_on_sigterm(cluster: Cluster, tmp_path: Path) -> None:
    cluster.service("web")
    log = (tmp_path / "controller.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "controller.main", "--kubeconfig", str(cluster.kubeconfig), "--namespace", NS],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        cluster.wait(lambda: cluster.ingress("web"), "IP for web", timeout=20.0)
        assert cluster.ingress("web") == ["192.0.2.200"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10.0) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5.0)
        log.close()
    text = (tmp_path / "controller.log").read_text()
    assert "ip_allocated key=default/web ips=192.0.2.200 pool=e2e" in text
    assert "controller_stopped" in text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as err:
        return int(err.code), ""
    except (urllib.error.URLError, OSError):
        return 0, ""  # not listening (yet)


def test_two_replicas_one_writer_and_takeover(cluster: Cluster, tmp_path: Path) -> None:
    procs: list[tuple[subprocess.Popen[bytes], Path, int]] = []
    try:
        for i in range(2):
            port = _free_port()
            log_path = tmp_path / f"c{i}.log"
            with log_path.open("w") as log:
                p = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "controller.main",
                        "--kubeconfig",
                        str(cluster.kubeconfig),
                        "--namespace",
                        NS,
                        "--leader-elect",
                        "--lease-duration",
                        "3",
                        "--metrics-host",
                        "127.0.0.1",
                        "--metrics-port",
                        str(port),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=ROOT,
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                )
            procs.append((p, log_path, port))
        health = [f"http://127.0.0.1:{port}/healthz" for _, _, port in procs]
        cluster.wait(lambda: all(_get(u)[0] == 200 for u in health), "health endpoints", timeout=20.0)
        cluster.service("first")
        cluster.wait(lambda: cluster.ingress("first"), "IP for first", timeout=20.0)
        logs = [lp.read_text() for _, lp, _ in procs]
        leaders = [i for i, text in enumerate(logs) if "leader_elected" in text]
        assert len(leaders) == 1, logs
        (lead,) = leaders
        standby = 1 - lead
        assert "ip_allocated key=default/first" in logs[lead] and "ip_allocated" not in logs[standby]
        # a standby is ready (a 2-replica Deployment must become available) but writes nothing
        assert _get(f"http://127.0.0.1:{procs[standby][2]}/readyz")[0] == 200
        cluster.wait(lambda: 'pool="e2e"} 1.0' in _get(f"http://127.0.0.1:{procs[lead][2]}/metrics")[1], "metrics")
        text = _get(f"http://127.0.0.1:{procs[lead][2]}/metrics")[1]
        assert 'lbspeaker_allocator_addresses_in_use_total{family="ipv4",pool="e2e"} 1.0' in text
        assert 'lbspeaker_allocator_addresses_total{family="ipv4",pool="e2e"} 3.0' in text

        procs[lead][0].kill()  # no Lease release: the standby must wait the lease out
        procs[lead][0].wait(5)
        cluster.service("second")
        cluster.wait(lambda: cluster.ingress("second"), "standby takes over and assigns", timeout=20.0)
        assert cluster.ingress("first") == ["192.0.2.200"] and cluster.ingress("second") == ["192.0.2.201"]
        assert "leader_elected" in procs[standby][1].read_text()
        procs[standby][0].send_signal(signal.SIGTERM)
        assert procs[standby][0].wait(10) == 0
    finally:
        for p, _, _ in procs:
            if p.poll() is None:
                p.kill()
                p.wait(5)

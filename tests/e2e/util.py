"""Helpers of the e2e suite: kubectl, bounded waits, who answers ARP for a VIP, node faults."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from lbspeaker.lab.realk8s.cluster import kubectl
from lbspeaker.lab.realk8s.install import backend, curl, external_ips
from lbspeaker.lab.realk8s.network import lan_if
from lbspeaker.lab.realk8s.shape import Cluster

T = TypeVar("T")
NS = "lbspeaker-system"


def wait_for(fn: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.2) -> T:
    """Poll fn until it returns a truthy value (at most timeout seconds) or fail naming what."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def get_json(c: Cluster, *args: str) -> Any:
    """kubectl get ... -o json, parsed."""
    return json.loads(kubectl(c, "get", *args, "-o", "json").stdout)


def deploy(c: Cluster, name: str, *, replicas: int = 2, node: str | None = None) -> None:
    """A busybox httpd Deployment (optionally pinned to a node), rolled out."""
    text = backend(name, replicas=replicas)
    if node is not None:
        text = text.replace("    spec:\n", f"    spec:\n      nodeSelector: {{kubernetes.io/hostname: {node}}}\n", 1)
    kubectl(c, "apply", "-f", "-", input=text)
    kubectl(c, "rollout", "status", f"deployment/{name}", "--timeout=120s", timeout=130)


def lb_ip(c: Cluster, name: str, *, timeout: float = 30.0) -> str:
    """The Service's first EXTERNAL-IP once assigned."""
    return wait_for(lambda: (external_ips(c, name) or [None])[0], timeout=timeout, what=f"EXTERNAL-IP of {name}")


def reach(c: Cluster, vip: str, *, timeout: float = 30.0, ns: str | None = None) -> str:
    """The body of http://VIP/ from the client once it answers."""
    return wait_for(lambda: curl(c, f"http://{vip}/", ns=ns, timeout=1.0), timeout=timeout, what=f"http://{vip}/")


def l2_node(c: Cluster, name: str, namespace: str = "default") -> str | None:
    """The node that reports announcing the Service (its ServiceL2Status), if any."""
    items = get_json(c, "-n", NS, "servicel2statuses")["items"]
    for it in items:
        st = it.get("status") or {}
        if st.get("serviceName") == name and st.get("serviceNamespace") == namespace:
            return str(st.get("node") or "") or None
    return None


def l2_status(c: Cluster, name: str, namespace: str = "default") -> dict[str, Any]:
    """The Service's ServiceL2Status status (empty when none)."""
    for it in get_json(c, "-n", NS, "servicel2statuses")["items"]:
        st = it.get("status") or {}
        if st.get("serviceName") == name and st.get("serviceNamespace") == namespace:
            return dict(st)
    return {}


def mac_of(c: Cluster, node_index: int) -> str:
    """The MAC of node i's LAN NIC."""
    out = subprocess.run(["ip", "-n", c.topo.node(node_index).ns, "-j", "link", "show", lan_if(c)],
                         capture_output=True, text=True, check=True, timeout=10).stdout
    return str(json.loads(out)[0]["address"])


def node_by_mac(c: Cluster) -> dict[str, str]:
    """LAN MAC -> node name."""
    return {mac_of(c, i): c.node_name(i) for i in range(1, c.nodes + 1)}


def arp_answerers(c: Cluster, vip: str, *, ns: str, dev: str = "eth0", count: int = 3) -> set[str]:
    """MACs that answer an ARP who-has for vip sent from ns (arping, bounded: count probes, 1 s each)."""
    p = subprocess.run(["ip", "netns", "exec", ns, "arping", "-c", str(count), "-w", str(count + 1),
                        "-I", dev, vip], capture_output=True, text=True, timeout=count + 10, check=False)
    return {m.lower() for m in re.findall(r"\[([0-9a-fA-F:]{17})\]", p.stdout)} | {
        m.lower() for m in re.findall(r"from ([0-9a-fA-F:]{17})", p.stdout)}


def netns_inode(name: str) -> int:
    """The inode of a named network namespace."""
    return os.stat(f"/run/netns/{name}").st_ino


def speaker_pids(c: Cluster, node_index: int) -> list[int]:
    """PIDs of lbspeaker-speaker processes in node i's network namespace."""
    want, out = netns_inode(c.topo.node(node_index).ns), []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes()
            if b"lbspeaker-speaker" in cmd and os.stat(d / "ns" / "net").st_ino == want:
                out.append(int(d.name))
        except OSError:
            continue
    return out


def kill_node(c: Cluster, node_index: int) -> None:
    """A node dies: LAN link down, its kubelet and its speaker SIGKILLed."""
    subprocess.run(["ip", "-n", c.topo.node(node_index).ns, "link", "set", lan_if(c), "down"], check=True,
                   timeout=10)
    for pid_file in (c.node_dir(node_index) / "kubelet.pid",):
        try:
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
        except (OSError, ValueError):
            pass
    for pid in speaker_pids(c, node_index):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def node_index(c: Cluster, name: str) -> int:
    """1-based index of the node called name."""
    return int(name.removeprefix("node"))


def restore_node(c: Cluster, node_index: int) -> None:
    """Bring a killed node back: LAN link up, its routes, kubelet restarted (the speaker pod follows)."""
    from lbspeaker.lab.realk8s import cluster, network

    subprocess.run(["ip", "-n", c.topo.node(node_index).ns, "link", "set", lan_if(c), "up"], check=True,
                   timeout=10)
    network.node_routes(c, node_index)
    cluster.restart_kubelet(c, node_index)

"""A private full lab with VirtualBox-shaped nodes (``enp0s3`` NAT + ``enp0s8`` LAN) and a NAT-side prober.

Reuses ``LabView`` (its MACs are the nodes' LAN-NIC MACs) and adds a probe namespace on the NAT
network, so a test can see what a host on the NAT side hears. Invariants: the probe namespace
carries the lab prefix, so ``lab.down`` removes it with the rest; everything is torn down on exit,
also on failure; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from lbspeaker.k8s.client import JSON, Kube, apply
from lbspeaker.lab import bootstrap
from lbspeaker.lab.lab import down, up
from lbspeaker.lab.netns import add_namespace, ip, run, veth
from lbspeaker.lab.topology import NAT_IF, NAT_V4, NAT_V6, Topology
from tests.netns.l2_lab import Prober
from tests.netns.lab_fixture import LabView
from tests.netns.netns_util import NetnsThread

NAT_PROBE4 = ipaddress.IPv4Interface(f"{NAT_V4.network_address + 100}/{NAT_V4.prefixlen}")
NAT_PROBE6 = ipaddress.IPv6Interface(f"{NAT_V6.network_address + 100}/{NAT_V6.prefixlen}")


@dataclass
class NatSide:
    """A raw ARP/NDP prober in a namespace on the NAT network; answers mapped to nodes by NAT MAC."""

    thread: NetnsThread
    prober: Prober
    macs: dict[str, str]
    """node name -> NAT-NIC MAC."""

    def answerers(self, vip: str, *, timeout: float = 0.3) -> list[str]:
        """One who-has / NS from the NAT side; the nodes (by NAT MAC, '?' otherwise) that answered."""
        addr = ipaddress.ip_address(vip)

        def probe() -> list[str]:
            if isinstance(addr, ipaddress.IPv4Address):
                return self.prober.arp(addr, sender=NAT_PROBE4.ip, timeout=timeout)
            return [mac for mac, _d, _f in self.prober.ns(addr, src=NAT_PROBE6.ip, timeout=timeout)]

        names = {m.lower(): n for n, m in self.macs.items()}
        return [names.get(mac.lower(), "?") for mac in self.thread.call(probe, timeout=timeout + 10)]


def link_mac(ns: str, dev: str) -> str:
    """The MAC of dev in ns."""
    return str(json.loads(run(["ip", "-n", ns, "-j", "link", "show", dev]))[0]["address"])


def l2_metric(topo: Topology, node: str, name: str) -> dict[str, float]:
    """interface -> value of one per-interface L2 metric on a node's /metrics."""
    out = subprocess.run(["ip", "netns", "exec", topo.node_ns(node), sys.executable, "-c",
                          "import urllib.request;print(urllib.request.urlopen("
                          "'http://127.0.0.1:7472/metrics',timeout=3).read().decode())"],
                         capture_output=True, text=True, timeout=20, check=True).stdout
    got = {}
    for line in out.splitlines():
        if line.startswith(name + "{") and 'interface="' in line:
            iface = line.split('interface="', 1)[1].split('"', 1)[0]
            got[iface] = float(line.rsplit(" ", 1)[1])
    return got


@contextlib.contextmanager
def vbox_lab(state_dir: Any, *, prefix: str, mgmt_index: int, config: list[JSON],
             nodes: int = 2) -> Iterator[tuple[LabView, NatSide]]:
    """A private 2-NIC lab (no --interface given to speakers) with the sample pool plus config."""
    topo = Topology(nodes=nodes, state_dir=state_dir, prefix=prefix, mgmt_index=mgmt_index, nics=2)
    closers: list[Any] = []
    try:
        up(topo, fresh=True)
        kube = Kube.from_kubeconfig(str(topo.kubeconfig))
        closers.append(kube.close)
        for obj in [*bootstrap.load_manifests(bootstrap.SAMPLES_DIR / "lab.yaml"), *config]:
            apply(kube, obj)
        probe_ns = f"{prefix}natprobe"
        add_namespace(probe_ns)
        veth(probe_ns, "eth0", topo.nat_switch_ns, "p-probe")
        ip("link", "set", "p-probe", "master", "br0", ns=topo.nat_switch_ns)
        ip("addr", "add", str(NAT_PROBE4), "dev", "eth0", ns=probe_ns)
        ip("addr", "add", str(NAT_PROBE6), "dev", "eth0", "nodad", ns=probe_ns)
        threads = [NetnsThread(topo.client.ns), NetnsThread(probe_ns)]
        closers.extend(t.close for t in threads)
        probers = [t.call(Prober, "eth0") for t in threads]
        closers.extend(p.close for p in probers)
        view = LabView(topo=topo, kube=kube, client_thread=threads[0], prober=probers[0],
                       macs={m.name: link_mac(m.ns, topo.lan_if) for m in topo.node_members})
        nat = NatSide(threads[1], probers[1], {m.name: link_mac(m.ns, NAT_IF) for m in topo.node_members})
        view.wait_settled()
        yield view, nat
    finally:
        for close in reversed(closers):
            with contextlib.suppress(Exception):
                close()
        down(topo)

"""A private full lab (API server, controller, speakers, kube-proxy stand-ins) plus client-side probes.

``LabView`` wraps one running ``lbspeaker.lab`` topology with what L2 scenario tests need: the
node MACs, a raw ARP/NDP prober living in the client namespace (``Prober`` from ``l2_lab``), the
client kernel's neighbour table, the real ``arping``/``ndisc6`` tools, Service/EndpointSlice
builders and node mutations that are undone by ``restore_nodes``.

Invariants: every wait is bounded in time; nothing here touches namespaces other than the lab's
own (prefix chosen by the caller); ``close`` stops the prober thread, ``lab.down`` removes the rest.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from lbspeaker.core.errors import ApiError, NotFoundError
from lbspeaker.core.node import EXCLUDE_LABEL
from lbspeaker.k8s.client import (
    ENDPOINTSLICES,
    EVENTS,
    JSON,
    NODES,
    SERVICE_L2_STATUSES,
    SERVICES,
    Kube,
    apply,
)
from lbspeaker.lab import bootstrap, procs
from lbspeaker.lab.demo import fetch_from_client
from lbspeaker.lab.lab import down, up
from lbspeaker.lab.netns import ip, run
from lbspeaker.lab.topology import Topology
from tests.netns.l2_lab import Prober
from tests.netns.netns_util import NetnsThread

SPEAKER_NS = bootstrap.SPEAKER_NS
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def wait_for(pred: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    """Poll ``pred`` until it returns something truthy (returned) or ``timeout`` passes (last value)."""
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(interval)


@dataclass
class LabView:
    """One running lab seen from the test: API client, node MACs, client probes."""

    topo: Topology
    kube: Kube
    client_thread: NetnsThread
    prober: Prober
    macs: dict[str, str] = field(default_factory=dict)
    """node name -> eth0 MAC."""

    # -- who answers -----------------------------------------------------------------------------

    def node_of_mac(self, mac: str | None) -> str:
        """The node whose eth0 has ``mac`` ('?' for none)."""
        for node, m in self.macs.items():
            if mac and m.lower() == mac.lower():
                return node
        return "?"

    def _drain(self) -> None:
        sock = self.prober.sock
        for _ in range(10_000):
            if not select.select([sock], [], [], 0)[0]:
                return
            sock.recv(4096)

    def answerers(self, vip: str, *, timeout: float = 0.3) -> list[str]:
        """Send one ARP who-has / NS from the client's MAC; return the nodes that answered (with repeats)."""
        addr = ipaddress.ip_address(vip)

        def probe() -> list[str]:
            self._drain()
            if isinstance(addr, ipaddress.IPv4Address):
                return self.prober.arp(addr, sender=self.topo.client.v4.ip, timeout=timeout)
            return [mac for mac, _dst, _flags in self.prober.ns(addr, src=self.topo.client.v6.ip, timeout=timeout)]

        return [self.node_of_mac(mac) for mac in self.client_thread.call(probe, timeout=timeout + 10)]

    def wait_sole_answerer(self, vip: str, *, timeout: float = 15.0, not_: str | None = None) -> str:
        """Wait until exactly one node (other than ``not_``) answers, in two probes in a row; returns it."""
        deadline = time.monotonic() + timeout
        last: list[str] = []
        streak: list[str] = []
        while time.monotonic() < deadline:
            last = self.answerers(vip)
            if len(set(last)) == 1 and last[0] not in ("?", not_):
                streak.append(last[0])
                if len(streak) >= 2 and streak[-1] == streak[-2]:
                    return last[0]
            else:
                streak.clear()
            time.sleep(0.1)
        raise AssertionError(f"{vip}: no single answerer (other than {not_}) within {timeout}s; last: {last}")

    def collect_answerers(self, vip: str, *, probes: int, interval: float = 0.1) -> list[list[str]]:
        """Probe ``probes`` times; the answering nodes of each probe."""
        out = []
        for _ in range(probes):
            out.append(self.answerers(vip, timeout=interval))
        return out

    def arping(self, vip: str, *, count: int = 3, dup: bool = False) -> tuple[int, list[str]]:
        """The real arping from the client: (exit status, answering nodes)."""
        args = ["arping", "-r", "-c", str(count), "-i", "eth0", *(["-d"] if dup else []), vip]
        p = subprocess.run(["ip", "netns", "exec", self.topo.client.ns, *args], capture_output=True, text=True,
                           timeout=count + 15, check=False)
        return p.returncode, [self.node_of_mac(line.strip()) for line in p.stdout.splitlines() if line.strip()]

    def ndisc6(self, vip: str) -> str:
        """The real ndisc6 from the client: the node whose MAC it printed ('' for none)."""
        p = subprocess.run(["ip", "netns", "exec", self.topo.client.ns, "ndisc6", "-q", "-n", "-1", "-r", "3",
                            "-s", str(self.topo.client.v6.ip), vip, "eth0"],
                           capture_output=True, text=True, timeout=20, check=False)
        mac = p.stdout.strip()
        return self.node_of_mac(mac) if mac else ""

    def mdb_ports(self, group: str) -> set[str]:
        """Switch ports the snooping bridge forwards ``group`` to (from its MLD state)."""
        rows = json.loads(run(["bridge", "-n", self.topo.switch_ns, "-j", "mdb", "show"]) or "[]")
        ports = set()
        for row in rows:
            for entry in row.get("mdb", []):
                if ipaddress.ip_address(entry.get("grp", "::")) == ipaddress.ip_address(group):
                    ports.add(str(entry.get("port")))
        return ports

    def port_of(self, node: str) -> str:
        """The switch port of a node."""
        return next(m.switch_port for m in self.topo.node_members if m.name == node)

    def neigh(self, vip: str) -> tuple[str, list[str]]:
        """(node, states) of the client kernel's neighbour entry for ``vip`` ('?' / [] when none)."""
        fam = "-6" if ":" in vip else "-4"
        rows = json.loads(ip("-j", fam, "neigh", "show", "to", vip, "dev", "eth0", ns=self.topo.client.ns) or "[]")
        for row in rows:
            if row.get("dst") == vip and row.get("lladdr"):
                return self.node_of_mac(str(row["lladdr"])), list(row.get("state", []))
        return "?", []

    def fetch(self, vip: str, *, timeout: float = 15.0) -> str:
        """HTTP GET the VIP from the client's kernel (retrying); returns the body."""
        host = f"[{vip}]" if ":" in vip else vip
        return fetch_from_client(f"http://{host}/", timeout=timeout, client_ns=self.topo.client.ns)

    # -- API objects ------------------------------------------------------------------------------

    def service(self, name: str, *, pool: str | None = None, families: list[str] | None = None,
                policy: str | None = None, etp: str | None = None, labels: dict[str, str] | None = None,
                endpoints: list[str] | None = None) -> JSON:
        """Create a LoadBalancer Service and an EndpointSlice with ready endpoints on ``endpoints`` (default all)."""
        body = bootstrap.demo_service(name)
        if pool:
            body["metadata"]["annotations"] = {"lbspeaker.io/address-pool": pool}
        if labels:
            body["metadata"]["labels"].update(labels)
        if families:
            body["spec"]["ipFamilies"] = families
        if policy:
            body["spec"]["ipFamilyPolicy"] = policy
        if etp:
            body["spec"]["externalTrafficPolicy"] = etp
        svc = self.kube.create(SERVICES, body, namespace="default")
        self.kube.create(ENDPOINTSLICES, self.slice(name, endpoints), namespace="default")
        return svc

    def slice(self, name: str, ready_on: list[str] | None) -> JSON:
        """The service's EndpointSlice: one endpoint per node, ready only on ``ready_on`` (None = all)."""
        obj = bootstrap.demo_endpoints(self.topo, name)
        for ep in obj["endpoints"]:
            ok = ready_on is None or ep["nodeName"] in ready_on
            ep["conditions"] = {"ready": ok, "serving": ok, "terminating": False}
        return obj

    def set_ready_endpoints(self, name: str, ready_on: list[str]) -> None:
        """Replace the EndpointSlice so that only ``ready_on`` nodes host ready endpoints."""
        apply(self.kube, self.slice(name, ready_on))

    def ingress(self, name: str, *, count: int = 1, timeout: float = 30.0) -> list[str]:
        """Wait until the Service has ``count`` ingress IPs; returns them."""
        def get() -> list[str]:
            svc = self.kube.get(SERVICES, name, "default")
            ing = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            ips = [str(e["ip"]) for e in ing if isinstance(e, dict) and e.get("ip")]
            return ips if len(ips) >= count else []

        ips: list[str] = wait_for(get, timeout, 0.2)
        assert len(ips) >= count, f"service {name}: fewer than {count} ingress IPs after {timeout}s"
        return ips

    def l2status(self, name: str) -> dict[str, Any]:
        """The ServiceL2Status status of default/name ({} when absent)."""
        try:
            obj = self.kube.get(SERVICE_L2_STATUSES, f"default.{name}", SPEAKER_NS)
        except NotFoundError:
            return {}
        return dict(obj.get("status") or {})

    def events(self, name: str, reason: str) -> list[JSON]:
        """Events about default/name with ``reason``."""
        return [e for e in self.kube.list(EVENTS, "default")[0]
                if (e.get("involvedObject") or {}).get("name") == name and e.get("reason") == reason]

    def label_node(self, node: str, key: str, value: str | None) -> None:
        """Set (or with None remove) one label on a Node."""
        self.kube.patch(NODES, node, {"metadata": {"labels": {key: value}}})

    def set_conditions(self, node: str, *, network_unavailable: bool) -> None:
        """Ready, plus NetworkUnavailable=True when asked."""
        conds = [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "lab"}]
        if network_unavailable:
            conds.append({"type": "NetworkUnavailable", "status": "True", "reason": "NoRouteCreated",
                          "message": "lab test"})
        self.kube.patch(NODES, node, {"status": {"conditions": conds}}, subresource="status")

    def restore_nodes(self, extra_labels: tuple[str, ...] = ()) -> None:
        """Undo node mutations: exclusion/extra labels removed, conditions back to Ready only."""
        for m in self.topo.node_members:
            for key in (EXCLUDE_LABEL, *extra_labels):
                with contextlib.suppress(ApiError):
                    self.label_node(m.name, key, None)
            with contextlib.suppress(ApiError):
                self.set_conditions(m.name, network_unavailable=False)

    # -- processes and links ------------------------------------------------------------------------

    def metric(self, node: str, name: str) -> float:
        """Sum of a metric's samples on one node's /metrics."""
        out = subprocess.run(["ip", "netns", "exec", self.topo.node_ns(node), sys.executable, "-c",
                              "import urllib.request;print(urllib.request.urlopen("
                              "'http://127.0.0.1:7472/metrics',timeout=3).read().decode())"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
        total = 0.0
        for line in out.splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def speaker_ready(self, node: str) -> bool:
        """True when the node's speaker answers /readyz with 200."""
        p = subprocess.run(["ip", "netns", "exec", self.topo.node_ns(node), sys.executable, "-c",
                            "import urllib.request;urllib.request.urlopen('http://127.0.0.1:7472/readyz',timeout=2)"],
                           capture_output=True, text=True, timeout=20, check=False)
        return p.returncode == 0

    def wait_settled(self, timeout: float = 60.0) -> None:
        """Every speaker ready and seeing every node alive (lab.up only checks the processes started)."""
        def settled() -> bool:
            try:
                return all(self.speaker_ready(m.name)
                           and self.metric(m.name, "lbspeaker_membership_alive_nodes") == self.topo.nodes
                           for m in self.topo.node_members)
            except subprocess.CalledProcessError:
                return False

        assert wait_for(settled, timeout, 0.5), "lab speakers did not settle (ready, all members alive)"

    def respawn_speaker(self, node: str) -> None:
        """Start the node's speaker again (as ``lab.start_daemons`` does) and wait until it is ready."""
        name = f"speaker-{node}"
        pid = procs.recorded_pids(self.topo.state_dir).get(name)
        if pid is not None and procs.alive(pid):
            return
        procs.spawn(self.topo.state_dir, name, self.topo.node_ns(node),
                    ["lbspeaker.speaker.main", "--node", node, "--interface", "eth0",
                     "--kubeconfig", str(self.topo.lan_kubeconfig), *self.topo.speaker_args])
        assert wait_for(lambda: self.speaker_ready(node), 40.0, 0.5), (
            f"respawned speaker on {node} not ready:\n{procs.log_tail(self.topo.state_dir, name)}")
        self.wait_settled()

    def link(self, node: str, state: str) -> None:
        """``ip link set eth0 up|down`` in a node; on up, the node's static IPv6 comes back too.

        The kernel flushes IPv6 addresses when a link goes down (keep_addr_on_down=0), so a link
        flap would otherwise leave the node without its LAN IPv6 address.
        """
        m = next(m for m in self.topo.node_members if m.name == node)
        ip("link", "set", "eth0", state, ns=m.ns)
        if state == "up":
            ip("addr", "replace", str(m.v6), "dev", "eth0", "nodad", ns=m.ns)


def _apply_config(kube: Kube, objs: list[JSON]) -> None:
    for obj in objs:
        apply(kube, obj)


def pool(name: str, addresses: list[str]) -> JSON:
    """An IPAddressPool that only Services naming it (annotation) use."""
    return {"apiVersion": "lbspeaker.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": name, "namespace": SPEAKER_NS},
            "spec": {"addresses": addresses, "autoAssign": False}}


def l2adv(name: str, pools: list[str], **spec: Any) -> JSON:
    """An L2Advertisement for ``pools`` with extra spec fields."""
    return {"apiVersion": "lbspeaker.io/v1beta1", "kind": "L2Advertisement",
            "metadata": {"name": name, "namespace": SPEAKER_NS},
            "spec": {"ipAddressPools": pools, **spec}}


@contextlib.contextmanager
def running_lab(state_dir: Any, *, prefix: str, mgmt_index: int, config: list[JSON]) -> Iterator[LabView]:
    """Bring a private 3-node lab up with the sample pool plus ``config``; always torn down."""
    topo = Topology(nodes=3, state_dir=state_dir, prefix=prefix, mgmt_index=mgmt_index)
    thread: NetnsThread | None = None
    prober: Prober | None = None
    kube: Kube | None = None
    try:
        up(topo, fresh=True)
        # make the LAN switch a snooping switch with a querier: a Linux bridge without a querier
        # floods every multicast frame, which would hide a responder that never joins its
        # solicited-node group (DESIGN.md trap 4)
        ip("link", "set", "br0", "type", "bridge", "mcast_snooping", "1", "mcast_querier", "1", ns=topo.switch_ns)
        kube = Kube.from_kubeconfig(str(topo.kubeconfig))
        _apply_config(kube, bootstrap.load_manifests(bootstrap.SAMPLES_DIR / "lab.yaml"))
        _apply_config(kube, config)
        thread = NetnsThread(topo.client.ns)
        prober = thread.call(Prober, "eth0")
        macs = {}
        for m in topo.node_members:
            link = json.loads(run(["ip", "-n", m.ns, "-j", "link", "show", "eth0"]))
            macs[m.name] = str(link[0]["address"])
        view = LabView(topo=topo, kube=kube, client_thread=thread, prober=prober, macs=macs)
        view.wait_settled()
        yield view
    finally:
        if kube is not None:
            kube.close()
        if prober is not None:
            prober.close()
        if thread is not None:
            thread.close()
        down(topo)

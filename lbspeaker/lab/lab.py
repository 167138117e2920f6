"""Bring the whole lab up and down: namespaces, switch, API server, controller, speakers.

Invariants: ``up`` first removes any leftovers of an earlier (possibly crashed) lab; when any
step fails ``up`` tears down what it built before raising; ``down`` is idempotent.
"""

from __future__ import annotations

import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from lbspeaker.core.errors import LabError
from lbspeaker.k8s.client import Kube
from lbspeaker.k8s.client import apply as apply_object
from lbspeaker.lab import bgp, bootstrap, procs
from lbspeaker.lab.netns import add_namespace, delete_namespaces, ip, list_namespaces, run, sysctl, veth
from lbspeaker.lab.topology import API_PORT, BGP_POOL_V4, NAT_GATEWAY, NAT_IF, ROUTER_ASN, Topology, kubeconfig_text

CONTROLLER_METRICS = 7472
"""The lab controller's /metrics port, in the API namespace (as the speakers' in the nodes')."""

Say = Callable[[str], None]


def _quiet(_msg: str) -> None:
    pass


class Steps:
    """Prints numbered progress lines with timings."""

    def __init__(self, total: int, say: Say) -> None:
        self.total, self.n, self.say = total, 0, say

    def run(self, title: str, fn: Callable[[], object]) -> None:
        """Run one step and report it."""
        self.n += 1
        t0 = time.monotonic()
        self.say(f"[{self.n}/{self.total}] {title} ...")
        fn()
        self.say(f"[{self.n}/{self.total}] {title}: ok ({time.monotonic() - t0:.1f}s)")


def _switch(ns: str) -> None:
    """A switch namespace with bridge br0."""
    add_namespace(ns)
    for key in ("arptables", "iptables", "ip6tables"):  # a switch forwards frames, it does not filter them
        run(["sysctl", "-qw", f"net.bridge.bridge-nf-call-{key}=0"], ns=ns, check=False)
    # MLD snooping with a querier, as on a managed switch: NDP only reaches joined ports
    ip("link", "add", "br0", "type", "bridge", "mcast_snooping", "1", "mcast_querier", "1", ns=ns)
    ip("link", "set", "br0", "up", ns=ns)


def build_network(topo: Topology) -> None:
    """Namespaces, the LAN (and NAT) bridges, node kube-ipvs0 devices and the host management link."""
    sw = topo.switch_ns
    _switch(sw)
    if topo.nics == 2:
        _switch(topo.nat_switch_ns)
    nodes = {m.ns for m in topo.node_members}
    for m in topo.lan_members:
        add_namespace(m.ns)
        sysctl(m.ns, "net.ipv6.conf.all.accept_dad", "0")
        sysctl(m.ns, "net.ipv6.conf.default.accept_dad", "0")
        for scope in ("all", "default"):  # a link flap must not delete the node's LAN IPv6 address
            sysctl(m.ns, f"net.ipv6.conf.{scope}.keep_addr_on_down", "1")
        if m.ns in nodes and topo.nics == 2:  # the NAT NIC first, as VirtualBox numbers them
            veth(m.ns, NAT_IF, topo.nat_switch_ns, m.switch_port)
            ip("link", "set", m.switch_port, "master", "br0", ns=topo.nat_switch_ns)
            ip("addr", "add", str(topo.nat_v4(m)), "dev", NAT_IF, ns=m.ns)
            ip("addr", "add", str(topo.nat_v6(m)), "dev", NAT_IF, "nodad", ns=m.ns)
        lan_if = topo.lan_if if m.ns in nodes else "eth0"
        veth(m.ns, lan_if, sw, m.switch_port)
        ip("link", "set", m.switch_port, "master", "br0", ns=sw)
        ip("addr", "add", str(m.v4), "dev", lan_if, ns=m.ns)
        ip("addr", "add", str(m.v6), "dev", lan_if, "nodad", ns=m.ns)
        if m.ns in nodes and topo.nics == 2:  # off-LAN traffic leaves through NAT, as on a VirtualBox VM
            ip("route", "add", "default", "via", str(NAT_GATEWAY), "dev", NAT_IF, ns=m.ns)
    for m in topo.node_members:
        # kube-proxy (IPVS mode) stand-in device; strictARP so only the elected speaker answers ARP
        ip("link", "add", "kube-ipvs0", "type", "bridge", ns=m.ns)
        ip("link", "set", "kube-ipvs0", "up", ns=m.ns)
        sysctl(m.ns, "net.ipv4.conf.all.arp_ignore", "1")
        sysctl(m.ns, "net.ipv4.conf.all.arp_announce", "2")
    veth(topo.api.ns, "mgmt0", None, topo.host_if)
    ip("addr", "add", str(topo.api_mgmt), "dev", "mgmt0", ns=topo.api.ns)
    ip("addr", "add", str(topo.host_mgmt), "dev", topo.host_if)


def _api_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=1.0) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_apiserver(topo: Topology) -> None:
    """The embedded API server in the API namespace, with state kept across lab restarts."""
    d = topo.state_dir
    topo.kubeconfig.write_text(kubeconfig_text(topo.host_url))
    topo.lan_kubeconfig.write_text(kubeconfig_text(topo.lan_url))
    pid = procs.spawn(
        d,
        "apiserver",
        topo.api.ns,
        [
            "lbspeaker.cli.main",
            "apiserver",
            "--listen",
            f"0.0.0.0:{API_PORT}",
            "--state",
            str(d / "api-state.json"),
        ],
    )
    if not procs.wait_until(lambda: _api_ready(topo.host_url) or not procs.alive(pid), 20.0):
        raise LabError(f"starting the API server: not ready after 20s:\n{procs.log_tail(d, 'apiserver')}")
    procs.check_alive(d, "apiserver", pid)


def start_daemons(topo: Topology) -> None:
    """Controller in the API namespace; kube-proxy stand-in and speaker on every node."""
    d, kc = topo.state_dir, str(topo.lan_kubeconfig)
    started = {
        "controller": procs.spawn(
            d, "controller", topo.api.ns,
            ["controller.main", "--kubeconfig", kc, "--metrics-port", str(CONTROLLER_METRICS)],
        )
    }
    for m in topo.node_members:
        started[f"kube-proxy-{m.name}"] = procs.spawn(
            d, f"kube-proxy-{m.name}", m.ns, ["lbspeaker.lab.kubeproxy", "--node", m.name, "--kubeconfig", kc]
        )
        mode_args = ["--bgp-workdir", str(d / f"bgp-{m.name}")] if topo.bgp else ["--no-bgp"]
        started[f"speaker-{m.name}"] = procs.spawn(
            d,
            f"speaker-{m.name}",
            m.ns,
            ["lbspeaker.speaker.main", "--node", m.name, "--kubeconfig", kc,  # interfaces: automatic
             *mode_args, *topo.speaker_args],
        )
    time.sleep(1.0)
    for name, pid in started.items():
        procs.check_alive(d, name, pid)


def up(topo: Topology, *, say: Say = _quiet, fresh: bool = False) -> None:
    """Build the lab; on failure remove what was built and raise."""
    steps = Steps(8 if topo.bgp else 6, say)
    steps.run("removing leftovers of an earlier lab", lambda: down(topo, purge=fresh))
    topo.state_dir.mkdir(parents=True, exist_ok=True)
    try:
        steps.run(f"network namespaces, LAN switch, {topo.nodes} nodes, client", lambda: build_network(topo))
        if topo.bgp:
            steps.run(f"BGP router {topo.router.ns} (BIRD, AS {ROUTER_ASN}) and {topo.wan_client_ns}",
                      lambda: bgp.start_router(topo))
        steps.run("embedded API server", lambda: start_apiserver(topo))
        kube = Kube.from_kubeconfig(str(topo.kubeconfig))
        steps.run("CRDs, memberlist secret, Node objects", lambda: bootstrap.bootstrap(kube, topo))
        if topo.bgp:
            steps.run(f"BGP pool {BGP_POOL_V4}, BGPPeer, BGPAdvertisement",
                      lambda: [apply_object(kube, o) for o in bgp.bgp_objects(topo)])
        steps.run("controller, speakers, kube-proxy stand-ins", lambda: start_daemons(topo))
        steps.run("cluster check", lambda: _check(kube, topo))
    except BaseException:
        down(topo)
        raise


def _check(kube: Kube, topo: Topology) -> None:
    from lbspeaker.k8s.client import NODES

    items, _ = kube.list(NODES)
    if len(items) < topo.nodes:
        raise LabError(f"cluster check: {len(items)} Node objects, expected {topo.nodes}")


def down(topo: Topology, *, purge: bool = False) -> list[str]:
    """Stop every lab process and delete every lab namespace; idempotent."""
    procs.stop_recorded(topo.state_dir)
    removed = delete_namespaces(topo.prefix)
    ip("link", "del", topo.host_if, check=False)  # only left over when an earlier up crashed mid-way
    procs.reap()
    if purge and topo.state_dir.exists():
        shutil.rmtree(topo.state_dir, ignore_errors=True)
    return removed


def is_up(topo: Topology) -> bool:
    """True when lab namespaces exist."""
    return bool(list_namespaces(topo.prefix))

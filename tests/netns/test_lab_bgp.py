"""BGP mode end to end in a private lab: BIRD router, ECMP to every node, a WAN client, a dead speaker."""

from __future__ import annotations

import ipaddress
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from lbspeaker.cli.bgp_cmd import peer_rows
from lbspeaker.k8s.client import BGPPEERS, ENDPOINTSLICES, EVENTS, JSON, SERVICES, Kube
from lbspeaker.lab import bootstrap, procs
from lbspeaker.lab.bgp import kernel_next_hops, next_hops, router_sessions
from lbspeaker.lab.demo import fetch_from_client
from lbspeaker.lab.lab import down, up
from lbspeaker.lab.topology import Topology

pytestmark = [pytest.mark.netns, pytest.mark.slow]

BGP_RANGE = (ipaddress.IPv4Address("203.0.113.10"), ipaddress.IPv4Address("203.0.113.50"))


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Topology, Kube]]:
    topo = Topology(nodes=3, state_dir=tmp_path_factory.mktemp("labbgp"), prefix="lbt-bgp-", mgmt_index=4, mode="bgp")
    up(topo, fresh=True)
    try:
        yield topo, Kube.from_kubeconfig(str(topo.kubeconfig))
    finally:
        down(topo)


def _node_ips(topo: Topology, *names: str) -> set[str]:
    return {str(m.v4.ip) for m in topo.node_members if not names or m.name in names}


def _service(kube: Kube, topo: Topology, name: str, *, local_on: str | None = None) -> str:
    svc = bootstrap.demo_service(name)
    eps = bootstrap.demo_endpoints(topo, name)
    if local_on is not None:
        svc["spec"]["externalTrafficPolicy"] = "Local"
        eps["endpoints"] = [e for e in eps["endpoints"] if e["nodeName"] == local_on]
    kube.create(SERVICES, svc, namespace="default")
    kube.create(ENDPOINTSLICES, eps, namespace="default")
    return bootstrap.wait_ingress(kube, name)[0]


def _peers(kube: Kube) -> list[JSON]:
    return kube.list(BGPPEERS, "lbspeaker-system")[0]


def _metric(topo: Topology, node: str, name: str) -> float:
    out = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            topo.node_ns(node),
            sys.executable,
            "-c",
            "import urllib.request;print(urllib.request.urlopen("
            "'http://127.0.0.1:7472/metrics',timeout=2).read().decode())",
        ],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in out.splitlines()
        if line.startswith(name + "{") or line.startswith(name + " ")
    )


def test_service_reaches_wan_client_over_ecmp(lab: tuple[Topology, Kube]) -> None:
    topo, kube = lab
    vip = _service(kube, topo, "web")
    assert BGP_RANGE[0] <= ipaddress.IPv4Address(vip) <= BGP_RANGE[1]
    prefix = f"{vip}/32"
    assert procs.wait_until(lambda: next_hops(topo, prefix) == _node_ips(topo), 20), next_hops(topo, prefix)
    assert procs.wait_until(lambda: kernel_next_hops(topo, vip) == _node_ips(topo), 10), kernel_next_hops(topo, vip)
    answer = fetch_from_client(f"http://{vip}/", client_ns=topo.wan_client_ns)
    assert answer in {f"hello from {m.name}" for m in topo.node_members}


def test_every_node_established_and_visible(lab: tuple[Topology, Kube]) -> None:
    topo, kube = lab
    _service(kube, topo, "visible")
    nodes = {m.name for m in topo.node_members}

    def all_up() -> bool:
        rows = peer_rows(_peers(kube))
        return {r.node for r in rows if r.state == "Established" and r.prefixes >= 1} == nodes

    assert procs.wait_until(all_up, 20), peer_rows(_peers(kube))
    assert {s.name for s in router_sessions(topo).values() if s.info == "Established"} == nodes
    peer = _peers(kube)[0]
    assert peer["status"]["establishedNodes"] == len(nodes)
    reasons = {
        (e.get("reason"), e.get("message", "").split(":")[0])
        for e in kube.list(EVENTS, "lbspeaker-system")[0]
        if (e.get("involvedObject") or {}).get("kind") == "BGPPeer"
    }
    assert {("SessionEstablished", f"node {n}") for n in nodes} <= reasons
    assert _metric(topo, "node1", "lbspeaker_bgp_session_up") == 1
    assert _metric(topo, "node1", "lbspeaker_bgp_announced_prefixes") >= 1
    assert _metric(topo, "node1", "lbspeaker_bgp_updates_sent_total") >= 1


def test_etp_local_announced_only_from_the_endpoint_node(lab: tuple[Topology, Kube]) -> None:
    topo, kube = lab
    vip = _service(kube, topo, "local", local_on="node2")
    assert procs.wait_until(lambda: next_hops(topo, f"{vip}/32") == _node_ips(topo, "node2"), 20), next_hops(
        topo, f"{vip}/32"
    )
    assert fetch_from_client(f"http://{vip}/", client_ns=topo.wan_client_ns) == "hello from node2"


def test_killed_speaker_loses_its_next_hop(lab: tuple[Topology, Kube]) -> None:
    topo, kube = lab
    vip = _service(kube, topo, "failover")
    prefix = f"{vip}/32"
    assert procs.wait_until(lambda: next_hops(topo, prefix) == _node_ips(topo), 20), next_hops(topo, prefix)
    procs.kill_one(topo.state_dir, "speaker-node3", signal.SIGKILL)
    survivors = _node_ips(topo, "node1", "node2")
    assert procs.wait_until(lambda: next_hops(topo, prefix) == survivors, 15), next_hops(topo, prefix)
    assert procs.wait_until(lambda: kernel_next_hops(topo, vip) == survivors, 5), kernel_next_hops(topo, vip)
    assert router_sessions(topo)["node3"].info != "Established"
    for _ in range(5):  # different source ports hash onto different next hops: every flow must land
        assert fetch_from_client(f"http://{vip}/", client_ns=topo.wan_client_ns) in {
            "hello from node1",
            "hello from node2",
        }

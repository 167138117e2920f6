"""BGP mode on a real cluster: BIRD learns the VIP from every node (ECMP) and the WAN client reaches a pod."""

from __future__ import annotations

import ipaddress
import json

from lbspeaker.lab.bgp import kernel_next_hops
from lbspeaker.lab.realk8s.cluster import kubectl
from lbspeaker.lab.realk8s.shape import Cluster
from tests.e2e.util import deploy, get_json, lb_ip, reach, wait_for


def test_bgp_service_is_ecmp_routed_to_every_node(real: Cluster) -> None:
    deploy(real, "bgpweb", replicas=2)
    svc = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "bgpweb", "annotations": {"lbspeaker.io/address-pool": "bgp"}},
           "spec": {"type": "LoadBalancer", "selector": {"app": "bgpweb"}, "ports": [{"port": 80, "targetPort": 8080}]}}
    kubectl(real, "apply", "-f", "-", input=json.dumps(svc))
    vip = lb_ip(real, "bgpweb")
    assert ipaddress.IPv4Address(vip) in ipaddress.IPv4Network("203.0.113.0/26")
    nodes = {str(real.topo.node(i).v4.ip) for i in range(1, real.nodes + 1)}
    wait_for(lambda: kernel_next_hops(real.topo, f"{vip}/32") == nodes or None, timeout=30,
             what=f"ECMP route {vip}/32 via every node in the router's kernel")
    body = reach(real, vip, ns=real.topo.wan_client_ns)
    assert body.startswith("hello from pod bgpweb-")
    peers = get_json(real, "-n", "lbspeaker-system", "bgppeers")["items"]
    states = {n["node"]: n["state"] for p in peers for n in (p.get("status") or {}).get("nodes") or []}
    assert states == {real.node_name(i): "Established" for i in range(1, real.nodes + 1)}
    kubectl(real, "delete", "svc", "bgpweb")
    wait_for(lambda: not kernel_next_hops(real.topo, f"{vip}/32") or None, timeout=30,
             what=f"route {vip}/32 withdrawn after the Service was deleted")

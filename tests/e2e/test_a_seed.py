"""The seed scenario on a real cluster, as a user meets it: kubectl expose, EXTERNAL-IP, curl, the right NIC."""

from __future__ import annotations

import ipaddress
import json

from lbspeaker.lab.realk8s.cluster import kubectl
from lbspeaker.lab.realk8s.network import lan_if, nat_probe_ns
from lbspeaker.lab.realk8s.shape import Cluster
from tests.e2e.util import (
    arp_answerers,
    deploy,
    get_json,
    l2_node,
    l2_status,
    lb_ip,
    mac_of,
    node_by_mac,
    node_index,
    reach,
    wait_for,
)

POOL = (ipaddress.IPv4Address("192.0.2.200"), ipaddress.IPv4Address("192.0.2.250"))


def test_expose_deployment_gets_external_ip_and_client_reaches_a_pod(real: Cluster) -> None:
    deploy(real, "web", replicas=3)
    kubectl(real, "expose", "deployment", "web", "--type=LoadBalancer", "--port=80", "--target-port=8080")
    vip = lb_ip(real, "web")
    assert POOL[0] <= ipaddress.IPv4Address(vip) <= POOL[1]
    table = kubectl(real, "get", "svc", "web").stdout.splitlines()
    header, row = table[0].split(), table[1].split()
    assert row[header.index("EXTERNAL-IP")] == vip, table
    bodies = {reach(real, vip) for _ in range(12)}
    assert all(b.startswith("hello from pod web-") for b in bodies), bodies
    pods = {p["metadata"]["name"] for p in get_json(real, "pods", "-l", "app=web")["items"]}
    assert {b.split()[3] for b in bodies} <= pods  # answered by the Deployment's pods, through kube-proxy


def test_vip_is_answered_only_on_the_host_only_nic(real: Cluster) -> None:
    vip = lb_ip(real, "web")
    node = wait_for(lambda: l2_node(real, "web"), timeout=20, what="ServiceL2Status of default/web")
    lan_mac = mac_of(real, node_index(real, node))
    assert arp_answerers(real, vip, ns=real.topo.client.ns) == {lan_mac}
    assert node_by_mac(real)[lan_mac] == node
    # the NAT-like side: ARP for the VIP there gets no answer at all (enp0s3 carries no VIP)
    assert arp_answerers(real, vip, ns=nat_probe_ns(real)) == set()
    assert l2_status(real, "web")["interfaces"] == [lan_if(real)]


def test_other_service_types_are_untouched(real: Cluster) -> None:
    docs = [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "plain-cip"},
         "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "plain-np"},
         "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "plain-ext"},
         "spec": {"type": "ExternalName", "externalName": "example.invalid"}},
    ]
    kubectl(real, "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
    # a LoadBalancer Service created after them gets its IP: the controller has seen the others
    kubectl(real, "create", "service", "loadbalancer", "sync-point", "--tcp=80:8080")
    lb_ip(real, "sync-point")
    for name in ("plain-cip", "plain-np", "plain-ext"):
        svc = get_json(real, "svc", name)
        assert not (svc.get("status") or {}).get("loadBalancer", {}).get("ingress"), name
        assert not any(k.startswith("lbspeaker.io/") for k in (svc["metadata"].get("annotations") or {})), name
        events = get_json(real, "events", "--field-selector", f"involvedObject.name={name}")["items"]
        assert not [e for e in events if "lbspeaker" in json.dumps(e.get("source") or {})
                    or e.get("reason") in ("IPAllocated", "AllocationFailed", "nodeAssigned")], name
        assert l2_status(real, name) == {}
    kubectl(real, "delete", "svc", "plain-cip", "plain-np", "plain-ext", "sync-point")

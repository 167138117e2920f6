"""IPv6 and dual-stack on the real cluster (1.20 IPv6DualStack gate): NDP-answered v6 VIPs, reached via kube-proxy."""

from __future__ import annotations

import ipaddress
import json
import subprocess

from lbspeaker.lab.realk8s.cluster import kubectl
from lbspeaker.lab.realk8s.shape import Cluster
from tests.e2e.util import NS, deploy, get_json, l2_node, mac_of, node_index, reach, wait_for

V4 = "192.0.2.200-192.0.2.250"
V6 = "2001:db8:100::200-2001:db8:100::250"


def _ingress(real: Cluster, name: str) -> list[str]:
    svc = get_json(real, "svc", name)
    return [i["ip"] for i in (svc.get("status") or {}).get("loadBalancer", {}).get("ingress") or []]


def _service(name: str, *, policy: str, families: list[str]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                       "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ipFamilyPolicy": policy,
                                "ipFamilies": families, "ports": [{"port": 80, "targetPort": 8080}]}})


def _neighbour(real: Cluster, ip: str) -> str | None:
    out = subprocess.run(["ip", "-n", real.topo.client.ns, "-j", "neigh", "show", ip], capture_output=True,
                         text=True, timeout=10, check=False).stdout
    entries = json.loads(out or "[]")
    return str(entries[0].get("lladdr") or "") or None if entries else None


def test_dual_stack_service_gets_both_families_on_one_node(real: Cluster) -> None:
    deploy(real, "web", replicas=3)
    kubectl(real, "-n", NS, "patch", "ipaddresspool", "lab", "--type=merge",
            "-p", json.dumps({"spec": {"addresses": [V4, V6]}}))
    kubectl(real, "apply", "-f", "-", input=_service("dual", policy="RequireDualStack", families=["IPv4", "IPv6"]))
    ips = wait_for(lambda: (lambda i: i if len(i) == 2 else None)(_ingress(real, "dual")), timeout=30,
                   what="two EXTERNAL-IPs of default/dual")
    v4, v6 = (ipaddress.ip_address(i) for i in ips)
    assert (v4.version, v6.version) == (4, 6)
    assert v6 in ipaddress.IPv6Network("2001:db8:100::/64")
    assert reach(real, str(v4)).startswith("hello from pod web-")
    assert reach(real, f"[{v6}]").startswith("hello from pod web-")  # NDP answered, ip6tables DNAT to a pod
    node = wait_for(lambda: l2_node(real, "dual"), timeout=20, what="announcer of default/dual")
    mac = mac_of(real, node_index(real, node))
    assert _neighbour(real, str(v4)) == mac and _neighbour(real, str(v6)) == mac  # both families: one node


def test_ipv6_only_service(real: Cluster) -> None:
    kubectl(real, "apply", "-f", "-", input=_service("only6", policy="SingleStack", families=["IPv6"]))
    (ip,) = wait_for(lambda: _ingress(real, "only6") or None, timeout=30, what="EXTERNAL-IP of default/only6")
    assert ipaddress.ip_address(ip).version == 6
    assert reach(real, f"[{ip}]").startswith("hello from pod web-")
    kubectl(real, "delete", "svc", "dual", "only6")

"""externalTrafficPolicy: Local on a real cluster: only a node with a ready pod announces; it follows the pod."""

from __future__ import annotations

import json

from lbspeaker.lab.realk8s.cluster import kubectl
from lbspeaker.lab.realk8s.shape import Cluster
from tests.e2e.util import arp_answerers, deploy, l2_node, lb_ip, mac_of, reach, wait_for


def _pin(real: Cluster, name: str, node: str) -> None:
    patch = {"spec": {"template": {"spec": {"nodeSelector": {"kubernetes.io/hostname": node}}}}}
    kubectl(real, "patch", "deployment", name, "--type=merge", "-p", json.dumps(patch))
    kubectl(real, "rollout", "status", f"deployment/{name}", "--timeout=120s", timeout=130)


def test_local_service_is_announced_by_the_node_with_the_pod_and_follows_it(real: Cluster) -> None:
    deploy(real, "local", replicas=1, node="node1")
    kubectl(real, "expose", "deployment", "local", "--type=LoadBalancer", "--port=80", "--target-port=8080")
    kubectl(real, "patch", "svc", "local", "-p", '{"spec":{"externalTrafficPolicy":"Local"}}')
    vip = lb_ip(real, "local")
    wait_for(lambda: l2_node(real, "local") == "node1" or None, timeout=30, what="node1 announcing default/local")
    assert "on node1" in reach(real, vip)
    assert arp_answerers(real, vip, ns=real.topo.client.ns) == {mac_of(real, 1)}

    _pin(real, "local", "node3")  # the pod moves: the announcement follows it
    wait_for(lambda: l2_node(real, "local") == "node3" or None, timeout=30, what="node3 announcing default/local")
    wait_for(lambda: arp_answerers(real, vip, ns=real.topo.client.ns, count=1) == {mac_of(real, 3)} or None,
             timeout=15, what="only node3 answering ARP")
    assert "on node3" in reach(real, vip)

    kubectl(real, "scale", "deployment", "local", "--replicas=0")  # no ready pod anywhere: nobody announces
    wait_for(lambda: not arp_answerers(real, vip, ns=real.topo.client.ns, count=1) or None, timeout=30,
             what="no node answering ARP for a Local Service without endpoints")
    kubectl(real, "delete", "svc,deployment", "local")

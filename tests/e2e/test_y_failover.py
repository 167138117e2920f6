"""Failures on a real cluster: the controller pod deleted (no IP moves), a node dies (the client recovers).

Runs late (file order): the node failure leaves one node NotReady for the rest of the session.
"""

from __future__ import annotations

import json
import time

from lbspeaker.lab.realk8s.cluster import kubectl
from lbspeaker.lab.realk8s.install import curl
from lbspeaker.lab.realk8s.shape import Cluster
from tests.e2e.util import (
    NS,
    arp_answerers,
    deploy,
    get_json,
    kill_node,
    l2_node,
    lb_ip,
    mac_of,
    node_index,
    reach,
    restore_node,
    wait_for,
)


def _lb_ips(real: Cluster) -> dict[str, list[str]]:
    out = {}
    for s in get_json(real, "svc", "-A")["items"]:
        if s["spec"].get("type") == "LoadBalancer":
            ing = (s.get("status") or {}).get("loadBalancer", {}).get("ingress") or []
            out[f"{s['metadata']['namespace']}/{s['metadata']['name']}"] = [i.get("ip") for i in ing]
    return out


def test_controller_pods_deleted_no_ip_moves(real: Cluster) -> None:
    for i in range(4):
        kubectl(real, "create", "service", "loadbalancer", f"keep{i}", "--tcp=80:8080")
    for i in range(4):
        lb_ip(real, f"keep{i}")
    before = _lb_ips(real)
    kubectl(real, "-n", NS, "delete", "pod", "-l", "app.kubernetes.io/component=controller", "--wait=true",
            timeout=90)
    kubectl(real, "-n", NS, "rollout", "status", "deployment/controller", "--timeout=120s", timeout=130)
    kubectl(real, "create", "service", "loadbalancer", "after-restart", "--tcp=80:8080")
    new_ip = lb_ip(real, "after-restart")  # the new controller works ...
    after = _lb_ips(real)
    assert {k: v for k, v in after.items() if k in before} == before  # ... and moved nothing
    assert new_ip not in {ip for ips in before.values() for ip in ips}
    kubectl(real, "delete", "svc", "after-restart", *(f"keep{i}" for i in range(4)))


def test_node_failure_client_recovers(real: Cluster) -> None:
    deploy(real, "web", replicas=3)
    if not _lb_ips(real).get("default/web"):
        kubectl(real, "expose", "deployment", "web", "--type=LoadBalancer", "--port=80", "--target-port=8080")
    vip = lb_ip(real, "web")
    reach(real, vip)
    victim = wait_for(lambda: l2_node(real, "web"), timeout=20, what="announcer of default/web")
    vi = node_index(real, victim)
    t0 = time.monotonic()
    kill_node(real, vi)
    body = wait_for(lambda: curl(real, f"http://{vip}/", timeout=0.5), timeout=30,
                    what=f"client reaching {vip} after {victim} died", interval=0.05)
    recovered_s = time.monotonic() - t0
    assert body.startswith("hello from pod web-")
    others = {mac_of(real, i) for i in range(1, real.nodes + 1) if i != vi}
    answerers = arp_answerers(real, vip, ns=real.topo.client.ns)
    assert answerers and answerers <= others, (answerers, others)
    successor = wait_for(lambda: (lambda n: n if n and n != victim else None)(l2_node(real, "web")), timeout=30,
                         what="ServiceL2Status naming the successor")
    assert successor != victim
    # the API notices later (NotReady after the grace period); the VIP stays with the successor
    wait_for(lambda: any(c["type"] == "Ready" and c["status"] != "True"
                         for c in get_json(real, "node", victim)["status"]["conditions"]) or None,
             timeout=90, what=f"{victim} NotReady", interval=1.0)
    assert arp_answerers(real, vip, ns=real.topo.client.ns) == answerers
    print(json.dumps({"node_failure_client_recovered_s": round(recovered_s, 3)}))

    # the node comes back: Ready again, its speaker runs, and exactly one node answers (the election
    # is deterministic, so the VIP may return to it; never to two nodes at once)
    restore_node(real, vi)
    wait_for(lambda: any(c["type"] == "Ready" and c["status"] == "True"
                         for c in get_json(real, "node", victim)["status"]["conditions"]) or None,
             timeout=90, what=f"{victim} Ready again", interval=1.0)
    kubectl(real, "-n", NS, "rollout", "status", "daemonset/speaker", "--timeout=120s", timeout=130)
    owner = wait_for(lambda: l2_node(real, "web"), timeout=20, what="announcer of default/web after the return")
    wait_for(lambda: arp_answerers(real, vip, ns=real.topo.client.ns) == {mac_of(real, node_index(real, owner))}
             or None, timeout=20, what=f"only {owner} answering ARP for {vip}")
    reach(real, vip)

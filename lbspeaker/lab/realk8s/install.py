"""Install lbspeaker on the real cluster the way a user does, and run the seed demo there.

``kubectl apply -k config/default``, the memberlist Secret, a pool + L2Advertisement (the lab
sample), then a Deployment of backend pods exposed with ``kubectl expose --type=LoadBalancer``.
Everything goes through the host's kubectl and the real API server's RBAC.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from lbspeaker.core.errors import LabError
from lbspeaker.lab import bgp
from lbspeaker.lab.netns import run
from lbspeaker.lab.procs import wait_until
from lbspeaker.lab.realk8s.cluster import kubectl
from lbspeaker.lab.realk8s.shape import Cluster

Say = Callable[[str], None]
NAMESPACE = "lbspeaker-system"


def _quiet(_msg: str) -> None:
    pass


def config_dir() -> Path:
    """The kustomize tree users apply (config/ of the checkout)."""
    d = Path(os.environ.get("LBS_CONFIG_DIR", Path(__file__).resolve().parents[3] / "config"))
    if not (d / "default" / "kustomization.yaml").exists():
        raise LabError(f"installing lbspeaker: no kustomization at '{d / 'default'}' (run from a checkout "
                       "or set LBS_CONFIG_DIR)")
    return d


def secret_manifest() -> str:
    """The memberlist Secret (what ``kubectl create secret generic`` makes), as JSON."""
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    return json.dumps({"apiVersion": "v1", "kind": "Secret",
                       "metadata": {"name": "lbspeaker-memberlist", "namespace": NAMESPACE},
                       "data": {"secretkey": base64.b64encode(key.encode()).decode()}})


def rollout(c: Cluster, *, timeout: float = 180.0) -> None:
    """Wait for the controller Deployment and the speaker DaemonSet to be ready."""
    for obj in ("deployment/controller", "daemonset/speaker"):
        kubectl(c, "-n", NAMESPACE, "rollout", "status", obj, f"--timeout={int(timeout)}s", timeout=timeout + 10)


def install(c: Cluster, *, say: Say = _quiet, with_sample: bool = True) -> None:
    """kubectl apply -k config/default, the memberlist Secret, the sample pool; wait for rollout."""
    d = config_dir()
    t = time.monotonic()
    kubectl(c, "apply", "-k", str(d / "default"))
    kubectl(c, "apply", "-f", "-", input=secret_manifest())
    if not wait_until(lambda: kubectl(c, "get", "crd", "ipaddresspools.lbspeaker.io", check=False).returncode == 0,
                      30.0, interval=0.5):
        raise LabError("installing lbspeaker: CRD ipaddresspools.lbspeaker.io not served after 30s")
    kubectl(c, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s", timeout=70)
    if with_sample:
        kubectl(c, "apply", "-f", str(d / "samples" / "lab.yaml"))
    if c.topo.bgp:
        kubectl(c, "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                          "items": bgp.bgp_objects(c.topo)}))
    rollout(c)
    say(f"[real] lbspeaker installed (kubectl apply -k {d / 'default'}): ok ({time.monotonic() - t:.1f}s)")


BACKEND = """apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: lbspeaker.local/busybox:1
        imagePullPolicy: Never
        command: ["/bin/sh", "-c",
                  "echo hello from pod $(hostname) on $NODE > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"]
        env: [{{name: NODE, valueFrom: {{fieldRef: {{fieldPath: spec.nodeName}}}}}}]
        ports: [{{containerPort: 8080}}]
        readinessProbe: {{httpGet: {{path: /index.html, port: 8080}}, periodSeconds: 1}}
"""


def backend(name: str, *, namespace: str = "default", replicas: int = 2) -> str:
    """A Deployment of busybox httpd pods answering 'hello from pod P on NODE' on :8080."""
    return BACKEND.format(name=name, namespace=namespace, replicas=replicas)


def external_ips(c: Cluster, name: str, namespace: str = "default") -> list[str]:
    """The Service's status.loadBalancer.ingress IPs now."""
    p = kubectl(c, "-n", namespace, "get", "svc", name, "-o", "json", check=False, timeout=15)
    if p.returncode != 0:
        return []
    ing = (json.loads(p.stdout).get("status") or {}).get("loadBalancer", {}).get("ingress") or []
    return [i["ip"] for i in ing if i.get("ip")]


def curl(c: Cluster, url: str, *, ns: str | None = None, timeout: float = 3.0) -> str | None:
    """GET url from the client namespace (curl of the host, run inside it); None on failure."""
    try:
        return run(["curl", "-gsS", "-m", str(timeout), url], ns=ns or c.topo.client.ns, timeout=timeout + 2)
    except LabError:
        return None


def demo(c: Cluster, *, say: Say = _quiet) -> str:
    """The seed scenario: Deployment, kubectl expose --type=LoadBalancer, EXTERNAL-IP, client reaches a pod."""
    kubectl(c, "apply", "-f", "-", input=backend("demo"))
    kubectl(c, "rollout", "status", "deployment/demo", "--timeout=120s", timeout=130)
    kubectl(c, "expose", "deployment", "demo", "--type=LoadBalancer", "--port=80", "--target-port=8080")
    if not wait_until(lambda: bool(external_ips(c, "demo")), 30.0, interval=0.2):
        raise LabError("demo: default/demo got no EXTERNAL-IP in 30s (lbctl explain default/demo)")
    vip = external_ips(c, "demo")[0]
    say(kubectl(c, "get", "svc", "demo").stdout.rstrip())
    body = wait_for_body(c, f"http://{vip}/", timeout=30.0)
    if body is None:
        raise LabError(f"demo: the client cannot reach http://{vip}/ after 30s")
    say(f"$ ip netns exec {c.topo.client.ns} curl http://{vip}/\n{body.rstrip()}")
    return vip


def wait_for_body(c: Cluster, url: str, *, timeout: float, ns: str | None = None) -> str | None:
    """Poll url from the client until it answers (at most timeout seconds); the body or None."""
    deadline = time.monotonic() + timeout
    while True:
        body = curl(c, url, ns=ns, timeout=1.0)
        if body or time.monotonic() >= deadline:
            return body
        time.sleep(0.1)

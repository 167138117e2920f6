"""The lab's cluster objects: CRDs, the speaker namespace and secret, Nodes, demo workloads.

The lab plays kubelet and the EndpointSlice controller: it registers one Ready Node per node
namespace and publishes EndpointSlices for the demo Service's "pods" (one per node).
"""

from __future__ import annotations

import base64
import secrets
import time
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from lbspeaker.core.errors import ApiError, LabError
from lbspeaker.k8s.client import CRDS, JSON, NODES, SECRETS, SERVICES, Kube, apply
from lbspeaker.lab.topology import Topology
from lbspeaker.manifests import crd_documents

# kept for callers that load a sample by path; new code: lbspeaker.manifests.sample(name)
SAMPLES_DIR = Path(str(files("lbspeaker.manifests") / "samples"))
SPEAKER_NS = "lbspeaker-system"


def load_manifests(path: Path) -> list[JSON]:
    """All YAML documents of a file or of every *.yaml in a folder."""
    files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
    docs: list[JSON] = []
    for f in files:
        try:
            docs.extend(d for d in yaml.safe_load_all(f.read_text()) if isinstance(d, dict))
        except (OSError, yaml.YAMLError) as err:
            raise LabError(f"loading manifest '{f}': {err}") from err
    return docs


def install_crds(kube: Kube, *, timeout: float = 15.0) -> list[str]:
    """Apply every CRD of config/crd (packaged as lbspeaker.manifests) and wait until each is Established."""
    names = []
    for crd in crd_documents():
        apply(kube, crd)
        names.append(str(crd["metadata"]["name"]))
    deadline = time.monotonic() + timeout
    for name in names:
        while True:
            conds = (kube.get(CRDS, name).get("status") or {}).get("conditions") or []
            if any(c.get("type") == "Established" and c.get("status") == "True" for c in conds):
                break
            if time.monotonic() > deadline:
                raise LabError(f"installing CRD '{name}': not Established after {timeout:.0f}s")
            time.sleep(0.1)
    return names


def node_object(topo: Topology, i: int) -> JSON:
    """The Node a kubelet would register for lab node i."""
    m = topo.node(i)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": m.name,
            "labels": {
                "kubernetes.io/hostname": m.name,
                "kubernetes.io/os": "linux",
                "lbspeaker.io/lab": "true",
            },
        },
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": str(m.v4.ip)},
                {"type": "InternalIP", "address": str(m.v6.ip)},
                {"type": "Hostname", "address": m.name},
            ],
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "lab node namespace is up",
                }
            ],
        },
    }


def bootstrap(kube: Kube, topo: Topology) -> None:
    """Namespace, memberlist secret, CRDs and Nodes."""
    apply(kube, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SPEAKER_NS}})
    try:
        kube.get(SECRETS, "lbspeaker-memberlist", SPEAKER_NS)
    except ApiError:
        key = base64.b64encode(secrets.token_bytes(32)).decode()
        apply(
            kube,
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "Opaque",
                "metadata": {"name": "lbspeaker-memberlist", "namespace": SPEAKER_NS},
                "data": {"secretkey": key},
            },
        )
    install_crds(kube)
    for i in range(1, topo.nodes + 1):
        node = node_object(topo, i)
        status = node.pop("status")
        cur = apply(kube, node)
        kube.patch(NODES, cur["metadata"]["name"], {"status": status}, subresource="status")


def demo_service(name: str = "demo", port: int = 80, target_port: int = 8080) -> JSON:
    """The Service `kubectl create service loadbalancer NAME --tcp=PORT:TARGET` makes."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": name},
            "ports": [
                {"name": f"{port}-{target_port}", "port": port, "protocol": "TCP", "targetPort": target_port}
            ],
        },
    }


def demo_endpoints(topo: Topology, name: str = "demo", target_port: int = 8080) -> JSON:
    """An EndpointSlice with one ready "pod" per lab node (the lab plays the controller)."""
    eps: list[dict[str, Any]] = [
        {
            "addresses": [str(m.v4.ip)],
            "conditions": {"ready": True, "serving": True, "terminating": False},
            "nodeName": m.name,
            "targetRef": {"kind": "Pod", "namespace": "default", "name": f"{name}-{m.name}"},
        }
        for m in topo.node_members
    ]
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{name}-lab",
            "namespace": "default",
            "labels": {
                "kubernetes.io/service-name": name,
                "endpointslice.kubernetes.io/managed-by": "lab.lbspeaker.io",
            },
        },
        "addressType": "IPv4",
        "endpoints": eps,
        "ports": [{"name": f"80-{target_port}", "port": target_port, "protocol": "TCP"}],
    }


def wait_ingress(kube: Kube, name: str, namespace: str = "default", *, timeout: float = 30.0) -> list[str]:
    """Wait until the Service has status.loadBalancer.ingress; returns the IPs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        svc = kube.get(SERVICES, name, namespace)
        ing = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        ips = [str(e["ip"]) for e in ing if isinstance(e, dict) and e.get("ip")]
        if ips:
            return ips
        time.sleep(0.1)
    raise LabError(
        f"waiting for service '{namespace}/{name}': no EXTERNAL-IP after {timeout:.0f}s "
        f"(try: lbctl lab logs controller)"
    )

"""Drive the machine's kubectl (v1.32) against the embedded server, default validation on."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from lbspeaker.apiserver.server import EmbeddedServer
from tests.unit.apiserver.conftest import WIDGET_CRD

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"
pytestmark = pytest.mark.skipif(not Path(KUBECTL).exists(), reason="kubectl not installed")


def kubectl(kc: Path, *args: str, timeout: float = 30, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [KUBECTL, "--kubeconfig", str(kc), "--cache-dir", str(kc.parent / "cache"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=stdin, check=False)


SVC = """
apiVersion: v1
kind: Service
metadata: {name: demo, namespace: default, labels: {app: demo}}
spec:
  type: LoadBalancer
  selector: {app: demo}
  ports: [{name: http, port: 80, targetPort: 8080}]
"""


def test_get_svc_shows_external_ip_column(kubeconfig: Path, v1: client.CoreV1Api) -> None:
    r = kubectl(kubeconfig, "apply", "-f", "-", stdin=SVC)
    assert r.returncode == 0 and "service/demo created" in r.stdout, r.stderr
    r = kubectl(kubeconfig, "get", "svc", "-A")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["NAMESPACE", "NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    demo = next(line.split() for line in lines if " demo " in line)
    assert demo[2] == "LoadBalancer" and demo[4] == "<pending>" and demo[5].startswith("80:")
    v1.patch_namespaced_service_status(
        "demo", "default", {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}]}}}
    )
    r = kubectl(kubeconfig, "get", "svc", "demo", "--no-headers")
    assert r.stdout.split()[3] == "192.0.2.7"


def test_apply_twice_patches_and_keeps_allocations(kubeconfig: Path, v1: client.CoreV1Api) -> None:
    assert kubectl(kubeconfig, "apply", "-f", "-", stdin=SVC).returncode == 0
    before = v1.read_namespaced_service("demo", "default")
    r = kubectl(kubeconfig, "apply", "-f", "-", stdin=SVC.replace("port: 80,", "port: 81,"))
    assert r.returncode == 0 and "configured" in r.stdout, r.stderr
    after = v1.read_namespaced_service("demo", "default")
    assert [p.port for p in after.spec.ports] == [81]
    assert after.spec.cluster_ip == before.spec.cluster_ip
    r = kubectl(kubeconfig, "apply", "-f", "-", stdin=SVC.replace("port: 80,", "port: 81,"))
    assert "unchanged" in r.stdout
    r = kubectl(kubeconfig, "get", "svc", "demo", "-o", "yaml")
    assert yaml.safe_load(r.stdout)["spec"]["ports"][0]["port"] == 81
    r = kubectl(kubeconfig, "describe", "svc", "demo")
    assert r.returncode == 0 and "LoadBalancer" in r.stdout, r.stderr


def test_crd_and_custom_objects(kubeconfig: Path) -> None:
    r = kubectl(kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump(WIDGET_CRD))
    assert r.returncode == 0, r.stderr
    w = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 3, addresses: ['192.0.2.1']}\n"
    r = kubectl(kubeconfig, "apply", "-f", "-", stdin=w)
    assert r.returncode == 0 and "widget.example.com/w1 created" in r.stdout, r.stderr
    r = kubectl(kubeconfig, "apply", "-f", "-", stdin=w.replace("size: 3", "size: 4"))
    assert r.returncode == 0 and "configured" in r.stdout, r.stderr
    r = kubectl(kubeconfig, "get", "widgets")
    assert r.stdout.split() == ["NAME", "SIZE", "FIRST", "w1", "4", "192.0.2.1"], r.stdout
    r = kubectl(kubeconfig, "get", "wd", "w1", "-o", "yaml")
    assert yaml.safe_load(r.stdout)["spec"]["color"] == "red"
    r = kubectl(kubeconfig, "apply", "-f", "-", stdin=w.replace("size: 3", "size: 3, bogus: 1"))
    assert r.returncode != 0 and 'unknown field "spec.bogus"' in r.stderr
    r = kubectl(kubeconfig, "apply", "-f", "-", stdin=w.replace("size: 3", "size: 30"))
    assert r.returncode != 0 and "spec.size" in r.stderr
    r = kubectl(kubeconfig, "get", "crd")
    assert "widgets.example.com" in r.stdout
    r = kubectl(kubeconfig, "delete", "widget", "w1")
    assert r.returncode == 0 and "deleted" in r.stdout


def test_get_watch_receives_change(kubeconfig: Path, v1: client.CoreV1Api) -> None:
    assert kubectl(kubeconfig, "apply", "-f", "-", stdin=SVC).returncode == 0

    def later() -> None:
        time.sleep(1.5)
        v1.patch_namespaced_service_status(
            "demo", "default", {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.99"}]}}}
        )

    t = threading.Thread(target=later)
    t.start()
    cmd = [
        KUBECTL,
        "--kubeconfig",
        str(kubeconfig),
        "--cache-dir",
        str(kubeconfig.parent / "cache"),
        "get",
        "svc",
        "-w",
        "--request-timeout=0",
    ]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=4)
    except subprocess.TimeoutExpired:
        p.terminate()
        out, err = p.communicate(timeout=5)
    t.join()
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP"], (out, err)
    assert any(line.split()[0] == "demo" and line.split()[3] == "192.0.2.99" for line in lines[1:]), (
        out,
        err,
    )


def test_delete_and_api_resources(kubeconfig: Path, srv: EmbeddedServer) -> None:
    assert kubectl(kubeconfig, "apply", "-f", "-", stdin=SVC).returncode == 0
    r = kubectl(kubeconfig, "delete", "svc", "demo")
    assert r.returncode == 0 and 'service "demo" deleted' in r.stdout
    r = kubectl(kubeconfig, "api-resources")
    rows = {tuple(line.split()[:2]) for line in r.stdout.splitlines()}
    assert ("services", "svc") in rows and ("nodes", "no") in rows
    r = kubectl(kubeconfig, "version", "-o", "yaml")
    assert r.returncode == 0 and "v1.32.0-lbspeaker" in r.stdout, r.stderr


def test_kubectl_create_sends_protobuf(kubeconfig: Path, v1: client.CoreV1Api) -> None:
    """kubectl's typed create commands send protobuf bodies; the server decodes those kinds."""
    assert kubectl(kubeconfig, "create", "namespace", "pb").returncode == 0
    r = kubectl(kubeconfig, "create", "configmap", "c1", "-n", "pb", "--from-literal=a=b")
    assert r.returncode == 0, r.stderr
    assert v1.read_namespaced_config_map("c1", "pb").data == {"a": "b"}
    r = kubectl(kubeconfig, "create", "secret", "generic", "s1", "--from-literal=pw=x")
    assert r.returncode == 0, r.stderr
    assert v1.read_namespaced_secret("s1", "default").data == {"pw": "eA=="}
    r = kubectl(kubeconfig, "create", "service", "nodeport", "np", "--tcp=5678:8080", "--node-port=30555")
    assert r.returncode == 0, r.stderr
    port = v1.read_namespaced_service("np", "default").spec.ports[0]
    assert (port.port, port.target_port, port.node_port, port.name) == (5678, 8080, 30555, "5678-8080")

"""Acceptance: the machine's kubectl works against the server (embedded first; the real
kube-apiserver too, which keeps these checks honest): get with the EXTERNAL-IP column, apply of a
Service, of our CRD and of a pool, get by plural and short name, a bounded `get -w`, delete."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from tests.contract.conftest import KUBECTL, K8s, Run
from tests.contract.helpers import MERGE, wait_for

pytestmark = pytest.mark.contract

ROOT = Path(__file__).resolve().parents[2]
POOL_CRD = ROOT / "config" / "crd" / "lbspeaker.io_ipaddresspools.yaml"


SVC_YAML = """apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: {ns}
  labels: {{app: web}}
spec:
  type: LoadBalancer
  selector: {{app: web}}
  ports:
  - name: http
    port: 80
    targetPort: 8080
"""


def test_get_svc_all_namespaces_shows_external_ip(kubectl: Run, core: K8s, ns: str) -> None:
    kubectl("apply", "-f", "-", stdin=SVC_YAML.format(ns=ns))
    r = core.raw.request("PATCH", f"/api/v1/namespaces/{ns}/services/web/status", content_type=MERGE,
                         body={"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}})
    assert r.status == 200, r.text
    out = kubectl("get", "svc", "-A").stdout
    header = out.splitlines()[0].split()
    assert header[:6] == ["NAMESPACE", "NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)"], out
    row = next(line.split() for line in out.splitlines() if line.split()[:2] == [ns, "web"])
    assert row[2] == "LoadBalancer" and row[4] == "192.0.2.10" and row[5].startswith("80:"), row


def test_apply_service_create_then_configure(kubectl: Run, ns: str) -> None:
    p = kubectl("apply", "-f", "-", stdin=SVC_YAML.format(ns=ns))
    assert p.stdout.strip() == "service/web created", p.stdout
    p = kubectl("apply", "-f", "-", stdin=SVC_YAML.format(ns=ns))
    assert p.stdout.strip() == "service/web unchanged", p.stdout
    p = kubectl("apply", "-f", "-", stdin=SVC_YAML.format(ns=ns).replace("8080", "9090"))
    assert p.stdout.strip() == "service/web configured", p.stdout
    out = kubectl("get", "svc", "web", "-n", ns, "-o", "jsonpath={.spec.ports[0].targetPort}").stdout
    assert out == "9090"


def test_apply_crd_then_object_then_get(kubectl: Run, ns: str) -> None:
    p = kubectl("apply", "-f", str(POOL_CRD))
    assert p.stdout.strip() in ("customresourcedefinition.apiextensions.k8s.io/ipaddresspools.lbspeaker.io "
                                + s for s in ("created", "unchanged", "configured")), p.stdout
    kubectl("wait", "--for=condition=Established", "--timeout=30s", "crd/ipaddresspools.lbspeaker.io")
    pool = (f"apiVersion: lbspeaker.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: lab\n  namespace: {ns}\n"
            "spec:\n  addresses: [192.0.2.200-192.0.2.250]\n")
    # discovery of a brand-new group can lag one cache refresh in kubectl: retry briefly
    p = wait_for(lambda: (lambda r: r if r.returncode == 0 else None)(
        kubectl("apply", "-f", "-", stdin=pool, check=False)), timeout=30, what="apply of a pool")
    assert p.stdout.strip() == "ipaddresspool.lbspeaker.io/lab created", p.stdout
    out = kubectl("get", "ipaddresspools", "-n", ns).stdout
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["NAME", "ADDRESSES", "AUTO"], out
    assert lines[1].split()[0] == "lab" and "192.0.2.200-192.0.2.250" in lines[1], out
    out = kubectl("get", "ippool", "lab", "-n", ns, "-o", "jsonpath={.spec.autoAssign}").stdout
    assert out == "true", "short name works and the schema default is applied"
    p = kubectl("apply", "-f", "-", check=False, stdin=pool.replace("[192.0.2.200-192.0.2.250]", "[]"))
    assert p.returncode != 0 and "spec.addresses" in p.stderr, p.stderr


def test_get_watch_receives_change(kubectl: Run, core: K8s, ns: str) -> None:
    kubectl("apply", "-f", "-", stdin=SVC_YAML.format(ns=ns))
    argv = [KUBECTL, f"--cache-dir={kubectl.cache}", "get", "svc", "-n", ns, "-w",  # type: ignore[attr-defined]
            "--request-timeout=30s"]
    proc = subprocess.Popen(argv, env=kubectl.env, stdout=subprocess.PIPE,  # type: ignore[attr-defined]
                            stderr=subprocess.DEVNULL, text=True, bufsize=1)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(ln.rstrip() for ln in proc.stdout or ()),
                              name="lbs-contract-kubectl-w", daemon=True)
    reader.start()
    try:
        wait_for(lambda: any(ln.split()[:1] == ["web"] for ln in list(lines)), timeout=30,
                 what="kubectl get -w listing the Service")
        r = core.raw.request("PATCH", f"/api/v1/namespaces/{ns}/services/web/status", content_type=MERGE,
                             body={"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.77"}]}}})
        assert r.status == 200, r.text
        wait_for(lambda: any("192.0.2.77" in ln for ln in list(lines)), timeout=30,
                 what="kubectl get -w printing the change")
    finally:
        proc.kill()
        proc.wait(timeout=10)
        reader.join(timeout=10)
        if proc.stdout:
            proc.stdout.close()
    assert any("192.0.2.77" in ln and ln.split()[0] == "web" for ln in lines), lines


def test_delete(kubectl: Run, ns: str) -> None:
    kubectl("apply", "-f", "-", stdin=SVC_YAML.format(ns=ns))
    p = kubectl("delete", "svc", "web", "-n", ns)
    assert p.stdout.strip() == 'service "web" deleted', p.stdout
    p = kubectl("get", "svc", "web", "-n", ns, check=False)
    assert p.returncode == 1 and 'services "web" not found' in p.stderr, p.stderr

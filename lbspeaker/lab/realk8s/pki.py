"""The cluster's certificates and kubeconfigs, made with openssl (one CA, 2-day certificates)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from lbspeaker.core.errors import LabError
from lbspeaker.lab.realk8s.shape import KUBERNETES_SERVICE_IP, Cluster


def _openssl(args: list[str], cwd: Path) -> None:
    p = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
    if p.returncode != 0:
        raise LabError(f"openssl {args[0]}: exit {p.returncode}: {p.stderr.strip()[-400:]}")


def _cert(d: Path, name: str, *, cn: str, org: str = "", sans: str = "") -> None:
    if (d / f"{name}.crt").exists():
        return
    subj = f"/O={org}/CN={cn}" if org else f"/CN={cn}"
    _openssl(["genrsa", "-out", f"{name}.key", "2048"], d)
    _openssl(["req", "-new", "-key", f"{name}.key", "-subj", subj, "-out", f"{name}.csr"], d)
    ext = ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature,keyEncipherment",
           "extendedKeyUsage=serverAuth,clientAuth"]
    if sans:
        ext.append(f"subjectAltName={sans}")
    (d / f"{name}.ext").write_text("\n".join(ext) + "\n")
    _openssl(["x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
              "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt"], d)


def kubeconfig_text(server: str, ca: Path, cert: Path, key: Path) -> str:
    """A kubeconfig with a client certificate."""
    return (
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: lbspeaker-real\n  cluster:\n    server: {server}\n"
        f"    certificate-authority: {ca}\n"
        f"users:\n- name: u\n  user:\n    client-certificate: {cert}\n    client-key: {key}\n"
        "contexts:\n- name: lbspeaker-real\n  context:\n    cluster: lbspeaker-real\n    user: u\n"
        "current-context: lbspeaker-real\n"
    )


def make_pki(c: Cluster) -> None:
    """CA, service-account keys, API serving cert and every component's client cert + kubeconfig."""
    d = c.pki
    d.mkdir(parents=True, exist_ok=True)
    if not (d / "ca.crt").exists():
        _openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-subj",
                  "/CN=lbspeaker-realk8s-ca", "-days", "2", "-out", "ca.crt"], d)
        _openssl(["genrsa", "-out", "sa.key", "2048"], d)
        _openssl(["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"], d)
    dns = ["kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
           "localhost"]
    ips = [str(c.api_ip), str(c.topo.api_mgmt.ip), "127.0.0.1", str(KUBERNETES_SERVICE_IP)]
    _cert(d, "apiserver", cn="kube-apiserver", sans=",".join([*(f"IP:{i}" for i in ips), *(f"DNS:{n}" for n in dns)]))
    _cert(d, "admin", cn="admin", org="system:masters")
    _cert(d, "apiserver-kubelet-client", cn="kube-apiserver-kubelet-client", org="system:masters")
    _cert(d, "controller-manager", cn="system:kube-controller-manager")
    _cert(d, "scheduler", cn="system:kube-scheduler")
    _cert(d, "kube-proxy", cn="system:kube-proxy")
    for name in ("controller-manager", "scheduler", "kube-proxy"):
        (c.state_dir / f"{name}.kubeconfig").write_text(
            kubeconfig_text(c.lan_url, d / "ca.crt", d / f"{name}.crt", d / f"{name}.key"))
    for i in range(1, c.nodes + 1):
        node, ip = c.node_name(i), c.topo.node(i).v4.ip
        _cert(d, f"kubelet-{node}", cn=f"system:node:{node}", org="system:nodes", sans=f"IP:{ip},DNS:{node}")
        (c.state_dir / f"kubelet-{node}.kubeconfig").write_text(
            kubeconfig_text(c.lan_url, d / "ca.crt", d / f"kubelet-{node}.crt", d / f"kubelet-{node}.key"))
    c.kubeconfig.write_text(kubeconfig_text(c.host_url, d / "ca.crt", d / "admin.crt", d / "admin.key"))
    (c.state_dir / "admin-lan.kubeconfig").write_text(
        kubeconfig_text(c.lan_url, d / "ca.crt", d / "admin.crt", d / "admin.key"))

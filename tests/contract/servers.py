"""Start and stop the API servers the contract suite compares: the embedded one and real ones.

Real servers are test tools built by scripts/build-real-apiservers.sh into a cache; they listen on
loopback only, on random free ports, with all state in a temporary folder that is removed with
them. Every process started here is stopped (SIGTERM, then SIGKILL) also when startup fails.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CACHE = Path(os.environ.get("LBS_REAL_APISERVER_CACHE", "/var/cache/lbspeaker/real-apiservers"))
KUBE_APISERVER = CACHE / "kube-apiserver-1.20" / "kube-apiserver"
ETCD = CACHE / "etcd" / "etcd"
APIEXT = CACHE / "apiextensions-1.36" / "apiextensions-apiserver"

# Capabilities: what a server can do. A check needing one the server lacks is skipped as a
# version gate (docs/contract.md lists every gate and its reason).
CORE = "core"  # core/v1 and other built-in kinds (Namespaces, Services, Leases, Events, ...)
CRD = "crd"  # CustomResourceDefinitions and custom resources
FAULTS = "faults"  # test fault hooks (forced disconnect, forced 410): embedded server only
LB_CLASS = "lb-class"  # Service spec.loadBalancerClass and status ingress ipMode (>= 1.24/1.30)
CRD_INDEXED_PATHS = "crd-indexed-paths"  # CR schema errors name list indices: spec.a[0].b (not 1.20)
CRD_LIST_UNIQUE = "crd-list-unique"  # x-kubernetes-list-type map/set keys enforced unique (not 1.20)
WEBHOOKS = "admission-webhooks"  # calls ValidatingWebhookConfigurations (url clientConfig, caBundle)


@dataclass
class Server:
    """One running API server as the tests see it."""

    name: str
    kubeconfig: Path
    caps: frozenset[str]
    embedded: Any = None
    notes: list[str] = field(default_factory=list)

    def has(self, cap: str) -> bool:
        """True when the server has the capability."""
        return cap in self.caps


class StartError(RuntimeError):
    """A server did not come up."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(cmd: list[str], cwd: Path) -> None:
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(d: Path) -> None:
    """CA, a serving cert for 127.0.0.1/localhost and a service-account key pair, with openssl."""
    _run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
          "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=lbs-contract-ca"], d)
    _run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "serving.key",
          "-out", "serving.csr", "-subj", "/CN=127.0.0.1"], d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                               "extendedKeyUsage=serverAuth\n")
    _run(["openssl", "x509", "-req", "-in", "serving.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
          "-CAcreateserial", "-days", "2", "-out", "serving.crt", "-extfile", "san.ext"], d)
    _run(["openssl", "genrsa", "-out", "sa.key", "2048"], d)
    _run(["openssl", "rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"], d)


def write_kubeconfig(path: Path, *, server: str, ca: Path, token: str) -> None:
    """A kubeconfig for https with our CA and a bearer token."""
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: c\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\n"
        f"users:\n- name: u\n  user:\n    token: {token}\n"
        "contexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n"
        "current-context: c\n"
    )


class Processes:
    """Processes started by one server fixture; stop() ends them all, newest first."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        """Start argv with its output in logdir/name.log."""
        log = open(self.logdir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        try:
            p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
        finally:
            log.close()
        self.procs.append((name, p))
        return p

    def check_alive(self) -> None:
        """Raise StartError with the log tail when a process already died."""
        for name, p in self.procs:
            if p.poll() is not None:
                raise StartError(f"{name} exited with {p.returncode}: {self.tail(name)}")

    def tail(self, name: str, n: int = 2000) -> str:
        """The end of a process log."""
        try:
            return (self.logdir / f"{name}.log").read_text(errors="replace")[-n:]
        except OSError:
            return "<no log>"

    def stop(self) -> None:
        """SIGTERM every process, SIGKILL what is left after 10 s."""
        for _, p in reversed(self.procs):
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGTERM)
        for _, p in reversed(self.procs):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
                p.wait(timeout=10)


def _wait_http(url: str, procs: Processes, *, timeout: float, ctx: ssl.SSLContext | None = None,
               token: str | None = None) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        procs.check_alive()
        req = urllib.request.Request(url)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=2, context=ctx) as r:
                if r.status == 200:
                    return
        except Exception as err:  # not up yet: connection refused, 500 while hooks run, ...
            last = str(err)
        time.sleep(0.25)
    raise StartError(f"waiting for {url}: not ready after {timeout:.0f} s: {last}")


def _start_etcd(procs: Processes, d: Path) -> str:
    client, peer = free_port(), free_port()
    procs.start("etcd", [
        str(ETCD), "--name", "contract", "--data-dir", str(d / "etcd"),
        "--listen-client-urls", f"http://127.0.0.1:{client}",
        "--advertise-client-urls", f"http://127.0.0.1:{client}",
        "--listen-peer-urls", f"http://127.0.0.1:{peer}",
        "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
        "--initial-cluster", f"contract=http://127.0.0.1:{peer}",
        "--logger", "zap", "--log-level", "warn",
    ])
    url = f"http://127.0.0.1:{client}"
    _wait_http(f"{url}/health", procs, timeout=30)
    return url


@contextlib.contextmanager
def kube_apiserver_120() -> Iterator[Server]:
    """etcd + kube-apiserver 1.20.2 on loopback; yields when /readyz says ok."""
    d = Path(tempfile.mkdtemp(prefix="lbs-contract-kas-"))
    procs = Processes(d)
    try:
        make_pki(d)
        token = secrets.token_hex(16)
        (d / "tokens.csv").write_text(f'{token},lbs-contract,lbs-contract,"system:masters"\n')
        etcd = _start_etcd(procs, d)
        port = free_port()
        procs.start("kube-apiserver", [
            str(KUBE_APISERVER), f"--etcd-servers={etcd}", "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1", f"--secure-port={port}", "--insecure-port=0",
            f"--cert-dir={d / 'certs'}",
            f"--tls-cert-file={d / 'serving.crt'}", f"--tls-private-key-file={d / 'serving.key'}",
            f"--token-auth-file={d / 'tokens.csv'}", "--authorization-mode=AlwaysAllow",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={d / 'sa.pub'}",
            f"--service-account-signing-key-file={d / 'sa.key'}",
            "--service-cluster-ip-range=198.51.100.0/24",
            "--service-node-port-range=30000-32767",
            "--enable-priority-and-fairness=false",
            # ipFamilies/ipFamilyPolicy as on >= 1.21 (the gate is on by default from 1.21)
            "--feature-gates=IPv6DualStack=true",
            # configmaps bypass the watch cache and etcd is compacted often, so a too-old watch
            # resourceVersion really gets 410 (the cache grows to keep 75 s of events; see gates)
            "--watch-cache-sizes=configmaps#0", "--etcd-compaction-interval=3s",
            "--v=1",
        ])
        ctx = ssl.create_default_context(cafile=str(d / "ca.crt"))
        _wait_http(f"https://127.0.0.1:{port}/readyz", procs, timeout=90, ctx=ctx, token=token)
        kc = d / "kubeconfig"
        write_kubeconfig(kc, server=f"https://127.0.0.1:{port}", ca=d / "ca.crt", token=token)
        yield Server("kube-apiserver-1.20", kc, frozenset({CORE, CRD, WEBHOOKS}))
    except StartError as err:
        raise StartError(f"starting kube-apiserver 1.20: {err}\n--- kube-apiserver log tail:\n"
                         f"{procs.tail('kube-apiserver')}") from err
    finally:
        procs.stop()
        shutil.rmtree(d, ignore_errors=True)


class _ReviewHandler(http.server.BaseHTTPRequestHandler):
    """Answers TokenReview and SubjectAccessReview with yes: the apiextensions-apiserver delegates
    authentication and authorization to a kube-apiserver it does not have here."""

    def do_POST(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        review = json.loads(self.rfile.read(n) or b"{}")
        if review.get("kind") == "TokenReview":
            review["status"] = {"authenticated": True,
                                "user": {"username": "lbs-contract", "groups": ["system:masters"]}}
        else:
            review["status"] = {"allowed": True}
        out = json.dumps(review).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def do_GET(self) -> None:
        out = b'{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}'
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def _review_stub() -> Iterator[str]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ReviewHandler)
    t = threading.Thread(target=srv.serve_forever, name="lbs-contract-review-stub", daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(timeout=5)


@contextlib.contextmanager
def apiextensions_136() -> Iterator[Server]:
    """etcd + apiextensions-apiserver (CRDs and custom resources only); yields when /livez is ok."""
    d = Path(tempfile.mkdtemp(prefix="lbs-contract-apiext-"))
    procs = Processes(d)
    stack = contextlib.ExitStack()
    try:
        make_pki(d)
        stub = stack.enter_context(_review_stub())
        (d / "delegate.kubeconfig").write_text(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: s\n  cluster:\n"
            f"    server: {stub}\ncontexts:\n- name: s\n  context:\n    cluster: s\n    user: u\n"
            "users:\n- name: u\n  user:\n    token: stub\ncurrent-context: s\n")
        etcd = _start_etcd(procs, d)
        port = free_port()
        procs.start("apiextensions-apiserver", [
            str(APIEXT), f"--etcd-servers={etcd}", "--bind-address=127.0.0.1",
            f"--secure-port={port}", f"--cert-dir={d / 'certs'}",
            f"--tls-cert-file={d / 'serving.crt'}", f"--tls-private-key-file={d / 'serving.key'}",
            "--authentication-skip-lookup", f"--authentication-kubeconfig={d / 'delegate.kubeconfig'}",
            f"--authorization-kubeconfig={d / 'delegate.kubeconfig'}",
            f"--kubeconfig={d / 'delegate.kubeconfig'}",
            # no core server here: admission plugins that watch core kinds and APF are off
            "--disable-admission-plugins=NamespaceLifecycle,MutatingAdmissionPolicy,"
            "MutatingAdmissionWebhook,ValidatingAdmissionPolicy,ValidatingAdmissionWebhook",
            "--enable-priority-and-fairness=false",
            "--v=1",
        ])
        ctx = ssl.create_default_context(cafile=str(d / "ca.crt"))
        _wait_http(f"https://127.0.0.1:{port}/livez", procs, timeout=90, ctx=ctx)
        kc = d / "kubeconfig"
        write_kubeconfig(kc, server=f"https://127.0.0.1:{port}", ca=d / "ca.crt", token="unused")
        yield Server("apiextensions-1.36", kc, frozenset({CRD, CRD_INDEXED_PATHS, CRD_LIST_UNIQUE}))
    except StartError as err:
        raise StartError(f"starting apiextensions-apiserver: {err}\n--- log tail:\n"
                         f"{procs.tail('apiextensions-apiserver')}") from err
    finally:
        procs.stop()
        stack.close()
        shutil.rmtree(d, ignore_errors=True)


@contextlib.contextmanager
def embedded() -> Iterator[Server]:
    """The project's embedded API server on a random loopback port."""
    from lbspeaker.apiserver.server import EmbeddedServer

    d = Path(tempfile.mkdtemp(prefix="lbs-contract-emb-"))
    srv = EmbeddedServer(host="127.0.0.1", port=0)
    srv.start()
    try:
        kc = d / "kubeconfig"
        srv.write_kubeconfig(kc)
        yield Server("embedded", kc, frozenset({CORE, CRD, FAULTS, LB_CLASS, CRD_INDEXED_PATHS, CRD_LIST_UNIQUE}),
                     embedded=srv)
    finally:
        srv.stop()
        shutil.rmtree(d, ignore_errors=True)


@contextlib.contextmanager
def external(path: str) -> Iterator[Server]:
    """A cluster named by KUBECONFIG (LBS_CONTRACT_KUBECONFIG=1): assumed modern and complete."""
    # no WEBHOOKS: its API server cannot reach a webhook on this machine's loopback
    yield Server("kubeconfig", Path(path), frozenset({CORE, CRD, LB_CLASS, CRD_INDEXED_PATHS, CRD_LIST_UNIQUE}))

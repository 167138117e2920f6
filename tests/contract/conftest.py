"""Fixtures for the API contract suite: one parametrized `api` fixture over every server.

Servers: `embedded` (ours, always), `kube-apiserver-1.20` and `apiextensions-1.36` (real servers built
by scripts/build-real-apiservers.sh; skipped with a loud summary line when the binaries are missing,
failed instead when LBS_CONTRACT_REQUIRE_REAL=1), and `kubeconfig` (the cluster KUBECONFIG names,
only with LBS_CONTRACT_KUBECONFIG=1). A check a server cannot do is a version gate: `gate()` skips it
with the reason, and docs/contract.md lists every gate.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from tests.contract import servers
from tests.contract.helpers import Raw, uniq, wait_for
from tests.contract.servers import CORE, CRD, Server

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"
Run = Callable[..., subprocess.CompletedProcess[str]]
SERVER_NAMES = ["embedded", "kube-apiserver-1.20", "apiextensions-1.36", "kubeconfig"]
# the external cluster is a parameter only when asked for (else ~150 skip lines of noise)
_PARAMS = SERVER_NAMES if os.environ.get("LBS_CONTRACT_KUBECONFIG") == "1" else SERVER_NAMES[:3]
_RAN: set[str] = set()
_NOT_RUN: dict[str, str] = {}
_FAILED_START: dict[str, str] = {}


def _missing(paths: list[Any]) -> list[str]:
    return [str(p) for p in paths if not os.access(p, os.X_OK)]


def _start(name: str) -> contextlib.AbstractContextManager[Server] | str:
    """The context manager that runs server `name`, or why it cannot run."""
    build = "build it with: bash scripts/build-real-apiservers.sh"
    if name == "embedded":
        return servers.embedded()
    if name == "kube-apiserver-1.20":
        miss = _missing([servers.KUBE_APISERVER, servers.ETCD])
        return f"binary missing at {', '.join(miss)} ({build})" if miss else servers.kube_apiserver_120()
    if name == "apiextensions-1.36":
        miss = _missing([servers.APIEXT, servers.ETCD])
        return f"binary missing at {', '.join(miss)} ({build})" if miss else servers.apiextensions_136()
    if os.environ.get("LBS_CONTRACT_KUBECONFIG") != "1":
        return "not requested (set LBS_CONTRACT_KUBECONFIG=1 and KUBECONFIG)"
    path = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    return servers.external(path)


@pytest.fixture(scope="session", params=_PARAMS)
def api(request: pytest.FixtureRequest) -> Iterator[Server]:
    """A running API server (one per parameter, started once per session)."""
    name: str = request.param
    cm = _start(name)
    if isinstance(cm, str):
        _NOT_RUN[name] = cm
        if name != "kubeconfig" and name != "embedded" and os.environ.get("LBS_CONTRACT_REQUIRE_REAL") == "1":
            pytest.fail(f"contract: {name} required (LBS_CONTRACT_REQUIRE_REAL=1) but {cm}")
        pytest.skip(f"contract: {name} NOT RUN: {cm}")
    try:
        with cm as srv:
            _RAN.add(name)
            yield srv
    except servers.StartError as err:
        _FAILED_START[name] = str(err).splitlines()[0]
        raise


def gate(api: Server, cap: str, why: str) -> None:
    """Skip the check on servers without capability cap (a version gate; see docs/contract.md)."""
    if not api.has(cap):
        pytest.skip(f"version gate: {api.name} lacks {cap}: {why}")


@dataclass
class K8s:
    """Clients for one server."""

    api: Server
    client: client.ApiClient
    core: client.CoreV1Api
    custom: client.CustomObjectsApi
    apiext: client.ApiextensionsV1Api
    coord: client.CoordinationV1Api
    raw: Raw


@pytest.fixture(scope="session")
def k8s(api: Server) -> Iterator[K8s]:
    """Official kubernetes-client v37 objects for the server under test."""
    c = config.new_client_from_config(config_file=str(api.kubeconfig))
    try:
        yield K8s(api, c, client.CoreV1Api(c), client.CustomObjectsApi(c), client.ApiextensionsV1Api(c),
                  client.CoordinationV1Api(c), Raw(c))
    finally:
        c.close()


@pytest.fixture
def ns(k8s: K8s) -> Iterator[str]:
    """A fresh namespace (created on servers with core kinds; just a name on CRD-only servers)."""
    name = uniq("lbc")
    if k8s.api.has(CORE):
        k8s.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    if k8s.api.has(CORE):
        with contextlib.suppress(client.ApiException):
            k8s.core.delete_namespace(name)


@pytest.fixture
def kubectl(core: K8s, tmp_path: Path) -> Iterator[Run]:
    """Run kubectl against the server under test with a private discovery cache."""
    if not os.access(KUBECTL, os.X_OK):
        pytest.fail(f"kubectl not found at {KUBECTL}")
    env = {**os.environ, "KUBECONFIG": str(core.api.kubeconfig), "HOME": str(tmp_path)}

    def run(*args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        argv = [KUBECTL, f"--cache-dir={tmp_path / 'cache'}", "--request-timeout=20s", *args]
        p = subprocess.run(argv, env=env, input=stdin, capture_output=True, text=True, timeout=60)
        if check:
            assert p.returncode == 0, f"{' '.join(args)}: rc={p.returncode}\n{p.stdout}\n{p.stderr}"
        return p

    run.env = env  # type: ignore[attr-defined]
    run.cache = tmp_path / "cache"  # type: ignore[attr-defined]
    yield run


@pytest.fixture
def core(k8s: K8s) -> K8s:
    """k8s, gated on servers that serve core/v1 kinds."""
    gate(k8s.api, CORE, "serves CRDs and custom resources only, no core/v1 kinds")
    return k8s


WIDGET_GROUP, WIDGET_VERSION, WIDGET_PLURAL = "contract.lbspeaker.io", "v1", "widgets"

WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{WIDGET_PLURAL}.{WIDGET_GROUP}"},
    "spec": {
        "group": WIDGET_GROUP,
        "scope": "Namespaced",
        "names": {"plural": WIDGET_PLURAL, "singular": "widget", "kind": "Widget",
                  "listKind": "WidgetList", "shortNames": ["wdg"]},
        "versions": [{
            "name": WIDGET_VERSION, "served": True, "storage": True,
            "subresources": {"status": {}},
            "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {
                    "spec": {"type": "object", "required": ["size"], "properties": {
                        "size": {"type": "integer", "minimum": 1, "maximum": 10},
                        "color": {"type": "string", "enum": ["red", "blue"]},
                        "tags": {"type": "array", "items": {"type": "string"}},
                    }},
                    "status": {"type": "object", "properties": {
                        "phase": {"type": "string"},
                        "conditions": {"type": "array", "items": {
                            "type": "object", "required": ["type", "status"],
                            "properties": {"type": {"type": "string"}, "status": {"type": "string"},
                                           "reason": {"type": "string"}}},
                            "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
                    }},
                },
            }},
        }],
    },
}


def crd_established(k8s: K8s, name: str) -> bool:
    """True once the CRD reports Established=True."""
    r = k8s.raw.request("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
    conds = ((r.body or {}).get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conds)


def ensure_crd(k8s: K8s, crd: dict[str, Any]) -> None:
    """Create crd unless present, wait until Established and its resource is served."""
    name = crd["metadata"]["name"]
    r = k8s.raw.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", body=crd)
    assert r.status in (201, 409), r.text
    wait_for(lambda: crd_established(k8s, name), timeout=30, what=f"CRD {name} Established")
    group, version = crd["spec"]["group"], crd["spec"]["versions"][0]["name"]
    plural = crd["spec"]["names"]["plural"]
    wait_for(lambda: k8s.raw.request("GET", f"/apis/{group}/{version}/{plural}").status == 200,
             timeout=30, what=f"{plural}.{group} served")
    time.sleep(0.2)


@pytest.fixture(scope="session")
def widgets(k8s: K8s) -> K8s:
    """k8s with the Widget test CRD (status subresource, schema, map-list conditions) registered."""
    gate(k8s.api, CRD, "no CustomResourceDefinitions")
    ensure_crd(k8s, WIDGET_CRD)
    return k8s


def widget(name: str, size: int = 1, **spec: Any) -> dict[str, Any]:
    """A Widget object body."""
    return {"apiVersion": f"{WIDGET_GROUP}/{WIDGET_VERSION}", "kind": "Widget",
            "metadata": {"name": name}, "spec": {"size": size, **spec}}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say loudly which servers the contract suite ran against and which it did not."""
    if not (_RAN or _NOT_RUN or _FAILED_START):
        return
    if os.environ.get("LBS_CONTRACT_KUBECONFIG") != "1":
        _NOT_RUN.setdefault("kubeconfig", "not requested (set LBS_CONTRACT_KUBECONFIG=1 and KUBECONFIG)")
    tr = terminalreporter
    tr.section("API contract servers")
    labels = {"embedded": "embedded API server", "kube-apiserver-1.20": "real kube-apiserver 1.20",
              "apiextensions-1.36": "real apiextensions-apiserver 1.36",
              "kubeconfig": "cluster from KUBECONFIG"}
    for name in SERVER_NAMES:
        if name in _FAILED_START:
            tr.write_line(f"contract: {labels[name]} FAILED TO START: {_FAILED_START[name]}", red=True)
        elif name in _RAN:
            tr.write_line(f"contract: {labels[name]} RAN")
        elif name in _NOT_RUN:
            tr.write_line(f"contract: {labels[name]} NOT RUN: {_NOT_RUN[name]}",
                          yellow=name != "kubeconfig", bold=name != "kubeconfig")

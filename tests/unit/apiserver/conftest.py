"""Fixtures: a fresh embedded API server per test, a kubeconfig, the official client, raw HTTP."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from kubernetes import client, config

from lbspeaker.apiserver.server import EmbeddedServer


@pytest.fixture
def srv() -> Iterator[EmbeddedServer]:
    s = EmbeddedServer(bookmark_interval=0.2)
    s.start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def kubeconfig(srv: EmbeddedServer, tmp_path: Path) -> Path:
    p = tmp_path / "kubeconfig"
    srv.write_kubeconfig(p)
    return p


@pytest.fixture
def api(kubeconfig: Path) -> Iterator[client.ApiClient]:
    c = config.new_client_from_config(str(kubeconfig))
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def v1(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


class Raw:
    """Minimal HTTP helper returning (status, headers, decoded JSON or text)."""

    def __init__(self, url: str) -> None:
        u = urlsplit(url)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80

    def __call__(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        ctype: str = "application/json",
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
            hdrs = {"Content-Type": ctype, **(headers or {})}
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            text = resp.read()
            h = {k.lower(): v for k, v in resp.getheaders()}
            try:
                out: Any = json.loads(text)
            except ValueError:
                out = text.decode(errors="replace")
            return resp.status, h, out
        finally:
            conn.close()


@pytest.fixture
def raw(srv: EmbeddedServer) -> Raw:
    return Raw(srv.url)


def svc_body(name: str, *, stype: str = "ClusterIP", port: int = 80, **spec: Any) -> dict[str, Any]:
    """A Service manifest."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"type": stype, "ports": [{"port": port}], **spec},
    }


WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                    {"name": "First", "type": "string", "jsonPath": ".spec.addresses[0]"},
                ],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 1, "maximum": 10},
                                    "color": {"type": "string", "enum": ["red", "blue"], "default": "red"},
                                    "label": {"type": "string", "minLength": 2, "maxLength": 5},
                                    "addresses": {
                                        "type": "array",
                                        "maxItems": 3,
                                        "items": {"type": "string", "pattern": "^[0-9.]+$"},
                                    },
                                    "port": {"x-kubernetes-int-or-string": True},
                                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                                    "opt": {"type": "string", "nullable": True},
                                },
                            },
                            "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
                        },
                    }
                },
            }
        ],
    },
}


def widget(name: str, **spec: Any) -> dict[str, Any]:
    """A Widget custom resource."""
    return {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec}

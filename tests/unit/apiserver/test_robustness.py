"""Malformed requests never crash the server or hang a connection."""

from __future__ import annotations

import http.client
import json
import socket
from urllib.parse import urlsplit

from lbspeaker.apiserver.http import MAX_BODY
from lbspeaker.apiserver.server import EmbeddedServer
from tests.unit.apiserver.conftest import Raw, svc_body

PATH = "/api/v1/namespaces/default/services"


def test_bad_bodies(raw: Raw) -> None:
    assert raw("POST", PATH, raw=b"{not json")[0] == 400
    assert raw("POST", PATH, raw=b"[1,2]")[0] == 400
    assert raw("POST", PATH, raw=b"")[0] == 400
    body = svc_body("x")
    body["kind"] = "ConfigMap"
    code, _, st = raw("POST", PATH, body)
    assert code == 400 and st["kind"] == "Status"
    body = svc_body("x")
    body["apiVersion"] = "v2"
    assert raw("POST", PATH, body)[0] == 400
    body = svc_body("x")
    body["metadata"]["namespace"] = "kube-system"
    assert raw("POST", PATH, body)[0] == 400
    raw("POST", PATH, svc_body("y"))
    code, _, st = raw("PUT", PATH + "/y", svc_body("z"))
    assert code == 400 and "does not match the name" in st["message"]
    assert (
        raw(
            "POST",
            PATH,
            raw=b"metadata: {name: fromyaml}\nspec: {ports: [{port: 1}]}\n",
            ctype="application/yaml",
        )[0]
        == 201
    )


def test_body_too_large_is_413(raw: Raw) -> None:
    big = json.dumps({"metadata": {"name": "big"}, "data": {"k": "x" * (MAX_BODY + 10)}}).encode()
    code, _, st = raw("POST", "/api/v1/namespaces/default/configmaps", raw=big)
    assert code == 413 and st["reason"] == "RequestEntityTooLarge"


def test_keep_alive_serves_many_requests_on_one_connection(srv: EmbeddedServer) -> None:
    u = urlsplit(srv.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
    try:
        socks = set()
        for _ in range(20):
            conn.request("GET", "/api/v1/namespaces/default/services/nope")
            resp = conn.getresponse()
            assert resp.status == 404 and json.loads(resp.read())["code"] == 404
            socks.add(id(conn.sock))
        assert len(socks) == 1
    finally:
        conn.close()


def test_garbage_request_line_does_not_kill_server(srv: EmbeddedServer, raw: Raw) -> None:
    u = urlsplit(srv.url)
    with socket.create_connection((u.hostname, u.port), timeout=5) as s:
        s.sendall(b"\x00\x01garbage\r\n\r\n")
        s.recv(4096)
    assert raw("GET", "/version")[0] == 200


def test_handler_bug_becomes_500_status(srv: EmbeddedServer, raw: Raw, monkeypatch) -> None:
    from lbspeaker.apiserver import resources

    def boom(*a, **k):
        raise RuntimeError("kaput")

    monkeypatch.setattr(resources, "_list", boom)
    code, _, st = raw("GET", "/api/v1/configmaps")
    assert code == 500 and st["kind"] == "Status" and "kaput" in st["message"]
    assert raw("GET", "/version")[0] == 200


def test_head_and_options_are_405(raw: Raw) -> None:
    assert raw("OPTIONS", PATH)[0] == 405


def test_protobuf_bodies(raw: Raw) -> None:
    pb = "application/vnd.kubernetes.protobuf"
    assert raw("POST", "/api/v1/namespaces", raw=b"not protobuf", ctype=pb)[0] == 400
    assert raw("POST", "/api/v1/namespaces", raw=b"k8s\x00\x0a\xff", ctype=pb)[0] == 400
    # TypeMeta{apiVersion: v1, kind: Pod} → a kind this server cannot decode from protobuf
    unknown = b"k8s\x00" + b"\x0a\x09\x0a\x02v1\x12\x03Pod" + b"\x12\x00"
    code, _, st = raw("POST", "/api/v1/namespaces/default/pods", raw=unknown, ctype=pb)
    assert code == 415 and st["reason"] == "UnsupportedMediaType"
    # Namespace{metadata{name: "pbns"}}
    ns = b"k8s\x00" + b"\x0a\x0f\x0a\x02v1\x12\x09Namespace" + b"\x12\x08\x0a\x06\x0a\x04pbns"
    code, _, obj = raw("POST", "/api/v1/namespaces", raw=ns, ctype=pb)
    assert code == 201 and obj["metadata"]["name"] == "pbns"


WEIRD_PATHS = [
    "/api",
    "/api/v2",
    "/api/v1/namespaces/default/services/a/b/c",
    "/api/v1/namespaces//services",
    "/api/v1/namespaces/default/services/x/scale",
    "/api/v1/services/x",
    "/api/v1/nodes/x/status/y",
    "/api/v1/namespaces/default/nodes",
    "/apis/",
    "/apis/discovery.k8s.io/v1/endpointslices?limit=abc",
    "/api/v1/configmaps?continue=%%%",
    "/api/v1/configmaps?watch=1&resourceVersion=abc",
    "/api/v1/watch/namespaces/default/configmaps?timeoutSeconds=1",
    "/openapi/v3/api",
    "/%00",
]


def test_weird_paths_never_500(raw: Raw) -> None:
    for path in WEIRD_PATHS:
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            code, _, body = raw(method, path, {"metadata": {"name": "x"}}, ctype="application/merge-patch+json")
            assert code != 500 and 200 <= code < 600, (method, path, code, body)
    assert raw("GET", "/version")[0] == 200

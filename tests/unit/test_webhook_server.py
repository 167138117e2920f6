"""The webhook HTTPS server on loopback: reviews, garbage, bounded bodies, certificate reload."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from controller.certs import CertSet, generate
from controller.webhook import WebhookServer, parse_listen
from lbspeaker.core.loader import RawConfig
from tests.unit.test_admission import body, pool

NAMES = ("127.0.0.1",)


def make_certs() -> CertSet:
    return generate(NAMES, now=datetime.now(UTC), validity=timedelta(hours=1))


@pytest.fixture
def server() -> Iterator[WebhookServer]:
    live = RawConfig.of({"IPAddressPool": [pool("a", "192.0.2.0/28")]})
    srv = WebhookServer("127.0.0.1", 0, config=lambda: live, namespace="lbspeaker-system")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def client(srv: WebhookServer, ca: bytes) -> http.client.HTTPSConnection:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "ca.crt"
        path.write_bytes(ca)
        ctx = ssl.create_default_context(cafile=str(path))
    return http.client.HTTPSConnection("127.0.0.1", srv.port, context=ctx, timeout=5)


def post(conn: http.client.HTTPSConnection, data: bytes, *, path: str = "/validate",
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, object]]:
    conn.request("POST", path, body=data, headers=headers or {"Content-Type": "application/json"})
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read())


def once(srv: WebhookServer, ca: bytes, data: bytes) -> int:
    conn = client(srv, ca)
    try:
        return post(conn, data)[0]
    finally:
        conn.close()


def test_review_over_tls_keeps_the_connection(server: WebhookServer) -> None:
    cs = make_certs()
    server.load(cs.cert, cs.key)
    conn = client(server, cs.ca)
    code, out = post(conn, body(pool("lab", "192.0.2.40-192.0.2.10")))
    assert code == 200
    assert out["response"] == {"uid": "u-1", "allowed": False, "status": {  # type: ignore[comparison-overlap]
        "status": "Failure", "code": 422, "reason": "Invalid",
        "message": "parsing IPAddressPool 'lab': spec.addresses[0]: '192.0.2.40-192.0.2.10': start after end"}}
    code, out = post(conn, body(pool("b", "192.0.2.100/32")))  # same keep-alive connection
    assert code == 200 and out["response"]["allowed"] is True  # type: ignore[index]
    assert (server.reviews, server.refused) == (2, 1)
    conn.close()


def test_garbage_answered_and_server_survives(server: WebhookServer) -> None:
    cs = make_certs()
    server.load(cs.cert, cs.key)
    conn = client(server, cs.ca)
    assert post(conn, b"not json")[0] == 400
    assert post(conn, b"{}", path="/other")[0] == 404
    conn.request("GET", "/validate")
    assert conn.getresponse().status == 405
    conn.close()
    conn = client(server, cs.ca)
    code, out = post(conn, b"", headers={"Content-Length": str(10**9)})  # claims a body it never sends
    assert code == 413 and "exceeds" in str(out["message"])
    conn.close()
    # not TLS at all, then a TLS client that hangs up mid-handshake
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"POST /validate HTTP/1.1\r\n\r\n")
        try:
            assert s.recv(100) == b""  # closed (or reset: the server hung up with our bytes unread)
        except ConnectionResetError:
            pass
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"\x16\x03\x01\x00\x05hello")
    assert once(server, cs.ca, body(pool("b", "192.0.2.100/32"))) == 200


def test_no_certificate_yet_closes_connections(server: WebhookServer) -> None:
    assert not server.ready
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        assert s.recv(100) == b""


def test_certificate_reload_without_restart(server: WebhookServer) -> None:
    old, new = make_certs(), make_certs()
    assert server.load(old.cert, old.key) is True
    assert server.load(old.cert, old.key) is False  # the same: nothing to do
    assert once(server, old.ca, body(pool("b", "192.0.2.100/32"))) == 200
    assert server.load(new.cert, new.key) is True
    assert once(server, new.ca, body(pool("b", "192.0.2.100/32"))) == 200
    with pytest.raises(ssl.SSLCertVerificationError):
        once(server, old.ca, body(pool("b", "192.0.2.100/32")))


def test_bad_certificate_is_refused_and_the_old_one_kept(server: WebhookServer) -> None:
    cs = make_certs()
    server.load(cs.cert, cs.key)
    with pytest.raises(ssl.SSLError):
        server.load(cs.cert, make_certs().key)
    assert once(server, cs.ca, body(pool("b", "192.0.2.100/32"))) == 200


@pytest.mark.parametrize(("value", "want"), [
    ("127.0.0.1:9443", ("127.0.0.1", 9443)), (":9443", ("0.0.0.0", 9443)), ("[::1]:0", ("::1", 0)),
])
def test_parse_listen(value: str, want: tuple[str, int]) -> None:
    assert parse_listen(value) == want


@pytest.mark.parametrize("value", ["9443", "host:", "host:x", "h:70000"])
def test_parse_listen_errors(value: str) -> None:
    with pytest.raises(ValueError, match="want HOST:PORT"):
        parse_listen(value)

"""The lean HTTP path of the k8s layer: same header parsing as email, framing, reuse, TLS checks."""

from __future__ import annotations

import io
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lbspeaker.core.errors import ApiError, NotFoundError
from lbspeaker.k8s.client import Kube
from lbspeaker.k8s.fasthttp import fast_parse_headers, orig_parse_headers

Reply = Callable[[bytes], bytes | None]
"""Given a request head, the raw bytes to answer (None: close without answering)."""


def _same(block: bytes) -> None:
    fast, orig = fast_parse_headers(io.BytesIO(block)), orig_parse_headers(io.BytesIO(block))
    assert fast.items() == orig.items()
    assert fast.get_payload() == orig.get_payload()
    assert [type(d) for d in fast.defects] == [type(d) for d in orig.defects]


@pytest.mark.parametrize(
    "block",
    [
        b"Content-Type: application/json\r\nContent-Length: 12\r\nX-A:\r\nX-B:  \t v  \r\n\r\n",
        b"A: b\r\n c\r\nD: e\r\n\r\n",  # folded: original parser
        b"Bad Name: x\r\nOk: y\r\n\r\n",  # not a token: original parser
        b"X: \xe9\xff\r\n\r\n",
        b"X:y\nZ: w\n\n",
        b"Set-Cookie: a\r\nSet-Cookie: b\r\n\r\n",
        b"X: a\rb\r\n\r\n",
        b"\r\n",
        b"",
    ],
)
def test_fast_header_parser_matches_email_parser(block: bytes) -> None:
    _same(block)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"a", b"B", b":", b" ", b"\t", b"\r", b"\n", b"\r\n", b"\xe9", b"From "]), max_size=9))
def test_fast_header_parser_matches_email_parser_on_noise(parts: list[bytes]) -> None:
    _same(b"".join(parts) + b"\r\n\r\n")


class RawServer:
    """A loopback server answering each request head with reply(head); records connections."""

    def __init__(self, reply: Reply, ctx: ssl.SSLContext | None = None) -> None:
        self.reply = reply
        self.ctx = ctx
        self.connections = 0
        self.heads: list[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sock.settimeout(0.05)  # so the accept loop notices close()
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._stop = False
        self._t = threading.Thread(target=self._accept, daemon=True)
        self._t.start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.ctx is not None:
                try:
                    c = self.ctx.wrap_socket(c, server_side=True)
                except (OSError, ssl.SSLError):
                    c.close()
                    continue
            self.connections += 1
            self._conns.append(c)
            t = threading.Thread(target=self._serve, args=(c,), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, c: socket.socket) -> None:
        with c, c.makefile("rb") as f:
            while True:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = f.readline()
                    if not line:
                        return
                    head += line
                for h in head.split(b"\r\n"):
                    if h.lower().startswith(b"content-length:"):
                        f.read(int(h.split(b":")[1]))
                self.heads.append(head)
                out = self.reply(head)
                if out is None:
                    return
                c.sendall(out)
                if b"Connection: close" in out:
                    return

    def close(self) -> None:
        self._stop = True
        self.sock.close()
        for c in self._conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self._threads:
            t.join(2)
        self._t.join(2)


def _kube(tmp_path: Path, url: str, ca: Path | None = None) -> Kube:
    cluster = f"    server: {url}\n" + (f"    certificate-authority: {ca}\n" if ca else "")
    kc = tmp_path / "kc"
    kc.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: t\n"
        f"clusters:\n- name: t\n  cluster:\n{cluster}"
        "contexts:\n- name: t\n  context: {cluster: t, user: t}\n"
        "users:\n- name: t\n  user: {token: abc}\n"
    )
    return Kube.from_kubeconfig(str(kc))


def _json(body: bytes, *, status: str = "200 OK", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 " + status.encode() + b"\r\nContent-Type: application/json\r\n" + extra + (
        b"Content-Length: %d\r\n\r\n" % len(body)
    ) + body


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Callable[[Reply], tuple[RawServer, Kube]]]:
    made: list[tuple[RawServer, Kube]] = []

    def make(reply: Reply) -> tuple[RawServer, Kube]:
        srv = RawServer(reply)
        kube = _kube(tmp_path, f"http://127.0.0.1:{srv.port}")
        made.append((srv, kube))
        return srv, kube

    try:
        yield make
    finally:
        for srv, kube in made:
            kube.close()
            srv.close()


def test_keep_alive_reuses_one_connection_and_sends_auth(served: Callable[[Reply], tuple[RawServer, Kube]]) -> None:
    srv, kube = served(lambda head: _json(b'{"n":1}'))
    assert [kube.request("GET", "/api/v1/x") for _ in range(5)] == [{"n": 1}] * 5
    assert srv.connections == 1
    assert b"authorization: bearer abc" in srv.heads[0].lower()
    assert srv.heads[0].startswith(b"GET /api/v1/x HTTP/1.1\r\nHost: 127.0.0.1:")


def test_chunked_continue_and_close_framing(served: Callable[[Reply], tuple[RawServer, Kube]]) -> None:
    replies = iter(
        [
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"4\r\n{\"a\"\r\n3;x=y\r\n:1}\r\n0\r\nT: v\r\n\r\n",
            _json(b'{"b":2}', extra=b"Connection: close\r\n"),
            _json(b'{"c":3}'),
        ]
    )
    srv, kube = served(lambda head: next(replies))
    assert kube.request("PATCH", "/p", body={"x": 1}) == {"a": 1}
    assert kube.request("GET", "/q") == {"b": 2}
    assert kube.request("GET", "/r") == {"c": 3}
    assert srv.connections == 2  # the server closed after the second reply
    assert b"Content-Length: 7\r\n" in srv.heads[0]


def test_idle_connection_closed_by_server_is_not_reused(served: Callable[[Reply], tuple[RawServer, Kube]]) -> None:
    count = iter(range(100))

    def reply(head: bytes) -> bytes:
        n = next(count)
        return _json(b'{"n":%d}' % n)

    srv, kube = served(reply)
    assert kube.request("GET", "/a") == {"n": 0}
    for c in srv._conns:
        c.shutdown(socket.SHUT_RDWR)  # server drops the idle keep-alive connection
    deadline = 50
    while deadline and srv._threads[0].is_alive():
        srv._threads[0].join(0.05)
        deadline -= 1
    assert kube.request("GET", "/b") == {"n": 1}
    assert srv.connections == 2


def test_errors_keep_their_type_and_message(served: Callable[[Reply], tuple[RawServer, Kube]]) -> None:
    body = b'{"kind":"Status","reason":"NotFound","message":"services \\"x\\" not found"}'
    _, kube = served(lambda head: None if b"/gone" in head else _json(body, status="404 Not Found"))
    with pytest.raises(NotFoundError, match='GET /api/v1/x: 404 NotFound: services "x" not found'):
        kube.request("GET", "/api/v1/x")
    with pytest.raises(ApiError, match=r"GET /gone: .*closed"):
        kube.request("GET", "/gone")
    with pytest.raises(ApiError, match="invalid request target"):
        kube.request("GET", "/a b")


def test_want_body_false_skips_decoding(served: Callable[[Reply], tuple[RawServer, Kube]]) -> None:
    _, kube = served(lambda head: _json(b"not json at all"))
    assert kube.request("POST", "/e", body={}, want_body=False) == {}
    with pytest.raises(ValueError):
        kube.request("POST", "/e", body={})


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl binary")
def test_tls_verifies_the_configured_ca(tmp_path: Path) -> None:
    def cert(name: str) -> tuple[Path, Path]:
        crt, key = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={name}",
             "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(crt)],
            check=True,
            capture_output=True,
        )
        return crt, key

    good, key = cert("server")
    other, _ = cert("other")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(good, key)
    srv = RawServer(lambda head: _json(b'{"tls":true}'), ctx)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    ok = _kube(tmp_path / "a", f"https://127.0.0.1:{srv.port}", good)
    bad = _kube(tmp_path / "b", f"https://127.0.0.1:{srv.port}", other)
    try:
        assert ok.request("GET", "/x") == {"tls": True}
        assert ok.request("GET", "/y") == {"tls": True}
        with pytest.raises(ApiError, match="certificate verify failed"):
            bad.request("GET", "/x")
    finally:
        ok.close()
        bad.close()
        srv.close()

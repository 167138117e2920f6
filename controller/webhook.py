"""The validating admission webhook's HTTPS server (POST /validate), one thread per connection.

Invariants:
- The serving certificate can be replaced while running (``load``): every new connection is
  wrapped with the newest TLS context; open connections finish on the one they started with.
- Until a certificate is loaded no connection is accepted into TLS (they are closed at once).
- A request never crashes the server: the TLS handshake and the handler run in the
  connection's thread with a socket timeout, bodies are bounded (``admission.MAX_BODY``), and an
  unexpected fault in the review becomes HTTP 500.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import ssl
import tempfile
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from controller.admission import MAX_BODY, Reply, review
from lbspeaker.core.loader import RawConfig

log = logging.getLogger(__name__)

PATH = "/validate"
SOCKET_TIMEOUT = 10.0
"""Seconds a connection may stall in the handshake or between reads (the API server waits 10 s at most)."""


def tls_context(cert: bytes, key: bytes) -> ssl.SSLContext:
    """A server TLS context (TLS 1.2+) for a PEM certificate and key."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    # ssl loads keys only from files: a private folder, removed at once
    d = tempfile.mkdtemp(prefix="lbs-webhook-")
    try:
        cpath, kpath = os.path.join(d, "tls.crt"), os.path.join(d, "tls.key")
        for path, data in ((cpath, cert), (kpath, key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        ctx.load_cert_chain(cpath, kpath)
    finally:
        for name in ("tls.crt", "tls.key"):
            try:
                os.unlink(os.path.join(d, name))
            except FileNotFoundError:
                pass
        os.rmdir(d)
    return ctx


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` as (host, port); raises ValueError."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"parsing listen address '{value}': want HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, addr: tuple[str, int], handler: Any, owner: WebhookServer) -> None:
        self.address_family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        self.owner = owner
        super().__init__(addr, handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        ctx = self.owner.context
        if ctx is None:
            return  # no certificate yet: the connection is closed
        request.settimeout(SOCKET_TIMEOUT)
        try:
            tls = ctx.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError) as err:
            log.debug("webhook_handshake_failed peer=%s err=%s", client_address, err)
            return
        handler: Any = self.RequestHandlerClass
        try:
            handler(tls, client_address, self)
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.warning("webhook_connection_failed peer=%s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        try:
            n = int(self.headers.get("Content-Length") or "")
        except ValueError:
            self.close_connection = True
            self._send(Reply(411, {"message": "reviewing admission request: Content-Length required"}))
            return
        if n < 0 or n > MAX_BODY:
            self.close_connection = True  # the body is not read: the connection cannot be reused
            self._send(Reply(413, {"message": f"reviewing admission request: body of {n} bytes exceeds {MAX_BODY}"}))
            return
        body = self.rfile.read(n)
        if self.path.split("?", 1)[0] != PATH:
            self._send(Reply(404, {"message": f"no such path '{self.path}' (want {PATH})"}))
            return
        self._send(self.server.owner.handle(body))

    def do_GET(self) -> None:
        self._send(Reply(405, {"message": f"POST an AdmissionReview to {PATH}"}))

    def _send(self, reply: Reply) -> None:
        data = json.dumps(reply.body, separators=(",", ":")).encode()
        self.send_response(reply.code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("webhook_http " + format, *args)


class WebhookServer:
    """Serves the validating webhook on host:port once a certificate is loaded."""

    def __init__(self, host: str, port: int, *, config: Callable[[], RawConfig | None], namespace: str) -> None:
        self.config = config
        self.namespace = namespace
        self.context: ssl.SSLContext | None = None
        self.loaded: tuple[bytes, bytes] | None = None
        """The PEM certificate and key in use."""
        self.reviews = 0
        self.refused = 0
        self._srv = _Server((host, port), _Handler, self)
        self.port = int(self._srv.server_address[1])
        self._thread = threading.Thread(target=self._srv.serve_forever, name="webhook", daemon=True)

    def load(self, cert: bytes, key: bytes) -> bool:
        """Serve new connections with this certificate; False if it is the one in use."""
        if self.loaded == (cert, key):
            return False
        self.context = tls_context(cert, key)
        self.loaded = (cert, key)
        log.info("webhook_certificate_loaded port=%d", self.port)
        return True

    def handle(self, body: bytes) -> Reply:
        """One review (any fault becomes HTTP 500)."""
        try:
            reply = review(body, config=self.config, namespace=self.namespace)
        except Exception as err:  # a bug must cost one answer, not the server
            log.exception("webhook_review_failed")
            return Reply(500, {"message": f"reviewing admission request: internal error: {err}"})
        self.reviews += 1
        if reply.allowed is False:
            self.refused += 1
            log.info("webhook_refused message=%s", reply.body["response"]["status"]["message"])
        elif reply.code != 200:
            log.info("webhook_bad_request code=%d message=%s", reply.code, reply.body.get("message"))
        return reply

    @property
    def ready(self) -> bool:
        """True once a certificate is loaded."""
        return self.context is not None

    def start(self) -> None:
        """Start serving in a background thread."""
        self._thread.start()
        log.info("webhook_listening port=%d path=%s", self.port, PATH)

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self._thread.is_alive():
            self._srv.shutdown()
        self._srv.server_close()
        self._thread.join(timeout=5)

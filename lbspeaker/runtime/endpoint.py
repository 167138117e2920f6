"""The HTTP endpoint every daemon serves: Prometheus /metrics, /healthz (alive), /readyz (ready)."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class Endpoint:
    """Serves metrics and health checks in a background thread."""

    def __init__(self, host: str, port: int, *, ready: Callable[[], bool] = lambda: True,
                 registry: CollectorRegistry = REGISTRY) -> None:
        self.ready = ready
        self.registry = registry
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, generate_latest(outer.registry), CONTENT_TYPE_LATEST)
                elif path in ("/healthz", "/livez"):
                    self._send(200, b"ok\n")
                elif path == "/readyz":
                    ok = outer._is_ready()
                    self._send(200 if ok else 503, b"ok\n" if ok else b"not ready\n")
                else:
                    self._send(404, b"not found\n")

            def _send(self, code: int, body: bytes, ctype: str = "text/plain") -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("http " + format, *args)

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        _Server.address_family = family
        self._srv = _Server((host, port), Handler)
        self.port = int(self._srv.server_address[1])
        self._thread = threading.Thread(target=self._srv.serve_forever, name="endpoint", daemon=True)

    def _is_ready(self) -> bool:
        try:
            return bool(self.ready())
        except Exception:
            return False

    def start(self) -> None:
        """Start serving."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving."""
        self._srv.shutdown()
        self._srv.server_close()

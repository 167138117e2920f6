"""HTTP/1.1 front end: request parsing, routing, faults, error bodies, keep-alive.

Invariants: every request gets either a JSON answer (a Status for every error; handler bugs
become a short 500 Status, logged) or, for a watch, a chunked stream of one JSON event per line;
bodies above ``MAX_BODY`` are refused with 413 and the connection closed. Resource requests are
delegated to :mod:`lbspeaker.apiserver.resources`.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from lbspeaker.apiserver import discovery
from lbspeaker.apiserver.faults import Faults
from lbspeaker.apiserver.status import ApiStatusError, status_body
from lbspeaker.apiserver.store import Store
from lbspeaker.apiserver.watch import dumps

log = logging.getLogger(__name__)
MAX_BODY = 3 * 1024 * 1024
DRAIN_LIMIT = 64 * 1024 * 1024
JsonObj = dict[str, Any]


class ApiHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that knows its store, its faults, and every open connection."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr: tuple[str, int], *, store: Store, faults: Faults, bookmark_interval: float) -> None:
        self.store = store
        self.faults = faults
        self.bookmark_interval = bookmark_interval
        self.stopping = threading.Event()
        self.conns: set[socket.socket] = set()
        self.threads: set[threading.Thread] = set()
        self.conn_lock = threading.Lock()
        super().__init__(addr, Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve each connection in a tracked daemon thread."""
        t = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name="apiserver-conn",
            daemon=True,
        )
        with self.conn_lock:
            self.threads.add(t)
            self.conns.add(request)
        t.start()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Run one connection, then forget it."""
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.conn_lock:
                self.conns.discard(request)
                self.threads.discard(threading.current_thread())

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection died outside a handler (client reset, ...): log quietly, keep serving."""
        log.debug("apiserver.connection_error client=%s", client_address, exc_info=True)

    def drop_all(self, timeout: float = 5.0) -> None:
        """Shut every connection and join their threads (bounded)."""
        self.stopping.set()
        self.store.close_watchers()
        with self.conn_lock:
            conns, threads = list(self.conns), list(self.threads)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))


class DropConnection(Exception):
    """Close the connection without answering (blackout)."""


class Handler(BaseHTTPRequestHandler):
    """One connection; requests on it are served in order (HTTP/1.1 keep-alive)."""

    protocol_version = "HTTP/1.1"
    server_version = "lbspeaker-apiserver"
    sys_version = ""
    server: ApiHTTPServer
    timeout = 300  # seconds a connection may sit idle (or stall mid-request) before it is closed

    def setup(self) -> None:
        """Disable Nagle: headers and body go out as separate writes."""
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol-level errors (bad request line, headers too long) as a Status, then close."""
        self.close_connection = True
        try:
            body = dumps(status_body(code, message or explain or "bad request"))
            self.send_response(code, message)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD" and code >= 200 and code not in (204, 304):
                self.wfile.write(body)
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        """Access log at DEBUG only."""
        log.debug("http.request client=%s " + format, self.client_address[0], *args)

    def do_GET(self) -> None:
        """GET."""
        self._handle("GET")

    def do_POST(self) -> None:
        """POST."""
        self._handle("POST")

    def do_PUT(self) -> None:
        """PUT."""
        self._handle("PUT")

    def do_PATCH(self) -> None:
        """PATCH."""
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        """DELETE."""
        self._handle("DELETE")

    def do_HEAD(self) -> None:
        """HEAD is not served."""
        self._handle("HEAD")

    def do_OPTIONS(self) -> None:
        """OPTIONS is not served."""
        self._handle("OPTIONS")

    # ---- plumbing ----------------------------------------------------------------------------
    def _handle(self, method: str) -> None:
        from lbspeaker.apiserver import resources

        self.method = method
        try:
            self._wait_out_blackout()
            lat = self.server.faults.latency_ms
            if lat:
                time.sleep(min(lat, 60_000) / 1000.0)
            url = urlsplit(self.path)
            self.query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
            self.body_bytes = self._read_body()
            if not self._route_static(method, url.path):
                resources.serve(self, method, url.path)
        except DropConnection:
            self.close_connection = True
        except ApiStatusError as err:
            self.send_json(err.code, err.body())
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as err:  # a bug: answer a short 500 Status, never a traceback
            log.exception("apiserver.handler_error method=%s path=%s", method, self.path)
            try:
                self.send_json(500, status_body(500, f"Internal error occurred: {type(err).__name__}: {err}"[:300]))
            except OSError:
                self.close_connection = True

    def _wait_out_blackout(self) -> None:
        left = self.server.faults.blackout_left()
        if left <= 0:
            return
        end = time.monotonic() + left
        while time.monotonic() < end and not self.server.stopping.is_set():
            time.sleep(min(0.05, max(0.0, end - time.monotonic())))
        raise DropConnection()

    def _read_body(self) -> bytes:
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks: list[bytes] = []
            total = 0
            while True:
                line = self.rfile.readline(64)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline(64)
                    break
                total += size
                if total > MAX_BODY:
                    self.close_connection = True
                    raise _too_large()
                chunks.append(self.rfile.read(size))
                self.rfile.readline(64)
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            if length <= DRAIN_LIMIT:
                left = length
                while left > 0:
                    got = self.rfile.read(min(left, 1 << 16))
                    if not got:
                        break
                    left -= len(got)
            else:
                self.close_connection = True
            raise _too_large()
        return self.rfile.read(length) if length > 0 else b""

    def json_body(self) -> Any:
        """The request body decoded as JSON (400 when malformed)."""
        if not self.body_bytes:
            raise ApiStatusError(400, "the request body is empty")
        try:
            return json.loads(self.body_bytes)
        except (ValueError, UnicodeDecodeError) as err:
            raise ApiStatusError(400, f"the body of the request could not be decoded as JSON: {err}") from err

    def send_raw(
        self, code: int, body: bytes, ctype: str = "application/json", headers: dict[str, str] | None = None
    ) -> None:
        """Send a complete response."""
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.method != "HEAD":
            self.wfile.write(body)

    def send_json(self, code: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        """Send a JSON response."""
        self.send_raw(code, dumps(obj), headers=headers)

    def start_chunked(self) -> None:
        """Begin a chunked streaming response (watch)."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.wfile.flush()

    def write_chunk(self, data: bytes) -> None:
        """Write one chunk and flush it."""
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

    def end_chunked(self) -> None:
        """Terminate a chunked response."""
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # ---- non-resource paths ------------------------------------------------------------------
    def _route_static(self, method: str, path: str) -> bool:
        srv = self.server
        reg = srv.store.registry
        path = path.rstrip("/") or "/"
        if path in ("/healthz", "/readyz", "/livez"):
            self.send_raw(200, b"ok", "text/plain; charset=utf-8")
            return True
        if path.startswith("/lbspeaker-admin/faults"):
            if method == "POST":
                self.send_json(200, srv.faults.apply(self.json_body()))
            elif method == "GET":
                self.send_json(200, srv.faults.state())
            else:
                raise ApiStatusError(405, f"method {method} not allowed on {path}")
            return True
        if method != "GET":
            if path in ("/", "/version", "/api", "/apis") or path.startswith("/openapi"):
                raise ApiStatusError(405, "the server does not allow this method on the requested resource")
            return False
        if path == "/version":
            self.send_json(200, discovery.K8S_VERSION)
        elif path == "/api":
            self.send_json(200, discovery.api_versions(host_port(srv)))
        elif path == "/apis":
            self.send_json(200, discovery.api_groups(reg))
        elif path == "/":
            self.send_json(
                200,
                {
                    "paths": [
                        "/api",
                        "/api/v1",
                        "/apis",
                        "/healthz",
                        "/livez",
                        "/openapi/v2",
                        "/openapi/v3",
                        "/readyz",
                        "/version",
                    ]
                },
            )
        elif path == "/openapi/v2":
            if "protobuf" in (self.headers.get("Accept") or ""):
                self.send_raw(200, b"", "application/com.github.proto-openapi.spec.v2@v1.0+protobuf")
            else:
                self.send_json(200, discovery.OPENAPI_V2_JSON)
        elif path == "/openapi/v3":
            self.send_json(200, discovery.openapi_v3_index(reg))
        elif path.startswith("/openapi/v3/"):
            parts = path[len("/openapi/v3/") :].split("/")
            doc = None
            if parts[0] == "api" and len(parts) == 2:
                doc = discovery.openapi_v3_doc(reg, "", parts[1])
            elif parts[0] == "apis" and len(parts) == 3:
                doc = discovery.openapi_v3_doc(reg, parts[1], parts[2])
            if doc is None:
                raise _unknown_path()
            self.send_json(200, doc)
        elif path == "/api/v1":
            self.send_json(200, discovery.resource_list(reg, "", "v1"))
        elif path.startswith("/apis/") and path.count("/") == 2:
            g = discovery.api_group(reg, path.split("/")[2])
            if g is None:
                raise _unknown_path()
            self.send_json(200, g)
        elif path.startswith("/apis/") and path.count("/") == 3:
            _, _, grp, ver = path.split("/")
            rl = discovery.resource_list(reg, grp, ver)
            if rl is None:
                raise _unknown_path()
            self.send_json(200, rl)
        else:
            return False
        return True


def _too_large() -> ApiStatusError:
    return ApiStatusError(413, f"the request body is too large: limit is {MAX_BODY} bytes")


def _unknown_path() -> ApiStatusError:
    return ApiStatusError(404, "the server could not find the requested resource", reason="NotFound")


def host_port(srv: ApiHTTPServer) -> str:
    """``host:port`` of a listening server (IPv6 bracketed)."""
    host, port = srv.server_address[:2]
    text = host.decode() if isinstance(host, bytes) else str(host)
    return f"[{text}]:{port}" if ":" in text else f"{text}:{port}"

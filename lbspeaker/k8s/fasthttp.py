"""A lean HTTP/1.1 keep-alive path for small, non-streaming Kubernetes API requests.

Why: at 10k Services the controller spent about half its CPU in urllib3 and http.client per
request (URL parsing, pool-key normalisation, header dicts, email-based header parsing), more
than in its own logic. A JSON request/response pair needs none of that, so this module frames
HTTP/1.1 itself over sockets that urllib3 opened: TLS, client certificates, CA and hostname
checks stay exactly as the kubernetes client configured its pool. Streaming watches and proxied
setups keep using urllib3 (``FastHTTP.for_pool_manager`` returns None for proxies).

Invariants:
- A connection is reused only after a complete response with known framing (Content-Length or
  chunked) and no ``Connection: close``; anything unexpected closes it.
- An idle connection that became readable (the server closed it) is discarded before reuse,
  as urllib3 does; connect failures are retried twice, a sent request never is.
- At most ``maxsize`` idle connections are kept; a burst beyond opens and closes extra ones.

Also here: :func:`fast_parse_headers`, an email-free http.client header parser for the
connections that still go through urllib3 (watches).
"""

from __future__ import annotations

import email.parser
import http.client
import re
import select
import threading
import weakref
from typing import Any

import urllib3

_HEADER_LINE = re.compile(rb"([!-9;-~]+):[ \t]*([^\r\n]*?)\r?\n")
"""One unfolded header line: token name, value (email's compat32 parse strips leading blanks)."""
_BAD_TARGET = re.compile(r"[\x00-\x20\x7f]")
_MAX_LINE = 65536
_MAX_HEADERS = 100
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
orig_parse_headers = http.client.parse_headers
_install_lock = threading.Lock()


def fast_parse_headers(fp: Any, _class: type[http.client.HTTPMessage] = http.client.HTTPMessage) -> Any:
    """http.client.parse_headers without email.parser for plain header blocks.

    Plain ``Name: value`` lines give the same HTTPMessage as the email parser (value stripped of
    leading blanks and the line end); anything else (folded lines, odd names, a bad line) goes to
    the original parser, so only the speed differs.
    """
    lines = http.client._read_headers(fp)  # type: ignore[attr-defined]
    msg = _class()
    match = _HEADER_LINE.fullmatch
    for line in lines[:-1]:
        m = match(line)
        if m is None:
            text = b"".join(lines).decode("iso-8859-1")
            return email.parser.Parser(_class=_class).parsestr(text)
        msg.set_raw(m[1].decode("ascii"), m[2].decode("iso-8859-1"))
    msg.set_payload("")
    return msg


def install_fast_header_parser() -> None:
    """Make http.client use :func:`fast_parse_headers` (HTTPResponse.begin looks it up as a global).

    Idempotent and process-wide; the original stays reachable as ``orig_parse_headers``.
    """
    with _install_lock:
        if http.client.parse_headers is orig_parse_headers:
            http.client.parse_headers = fast_parse_headers  # type: ignore[assignment]


class _Conn:
    """One open connection: the urllib3 connection (for close), its socket and a reader."""

    __slots__ = ("conn", "rfile", "sock")

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.sock = conn.sock
        self.rfile = self.sock.makefile("rb")

    def dropped(self) -> bool:
        """True when the idle connection is readable: the server closed it (or sent junk)."""
        p = select.poll()
        p.register(self.sock, select.POLLIN)
        return bool(p.poll(0))

    def close(self) -> None:
        """Close reader and connection, ignoring errors."""
        try:
            self.rfile.close()
        finally:
            self.conn.close()


def _close_all(idle: list[_Conn], lock: threading.Lock) -> None:
    with lock:
        conns = idle[:]
        idle.clear()
    for c in conns:
        c.close()


def _read_response(rfile: Any, method: str) -> tuple[int, bytes, bool]:
    """Read one response; returns (status, body, reusable)."""
    while True:
        line = rfile.readline(_MAX_LINE + 1)
        if not line:
            raise http.client.RemoteDisconnected("server closed the connection without a response")
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise http.client.BadStatusLine(line.decode("iso-8859-1").rstrip())
        status = int(parts[1])
        keep = parts[0] != b"HTTP/1.0"
        length: int | None = None
        chunked = False
        for _ in range(_MAX_HEADERS + 1):
            h = rfile.readline(_MAX_LINE + 1)
            if h in (b"\r\n", b"\n"):
                break
            if not h or len(h) > _MAX_LINE:
                raise http.client.HTTPException("reading response headers: truncated or too long")
            name, _, value = h.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value.strip())
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                v = value.strip().lower()
                keep = v == b"keep-alive" or (keep and v != b"close")
        else:
            raise http.client.HTTPException(f"got more than {_MAX_HEADERS} headers")
        if not 100 <= status < 200:
            break
    if method == "HEAD" or status in (204, 304):
        return status, b"", keep
    if chunked:
        return status, _read_chunked(rfile), keep
    if length is not None:
        body = rfile.read(length)
        if len(body) != length:
            raise http.client.IncompleteRead(body, length - len(body))
        return status, body, keep
    return status, rfile.read(), False  # delimited by close


def _read_chunked(rfile: Any) -> bytes:
    out: list[bytes] = []
    while True:
        size = int(rfile.readline(_MAX_LINE + 1).split(b";", 1)[0].strip(), 16)
        if size == 0:
            for _ in range(_MAX_HEADERS + 1):  # trailers
                if rfile.readline(_MAX_LINE + 1) in (b"\r\n", b"\n", b""):
                    break
            return b"".join(out)
        chunk = rfile.read(size)
        if len(chunk) != size:
            raise http.client.IncompleteRead(chunk, size - len(chunk))
        out.append(chunk)
        rfile.readline(_MAX_LINE + 1)


class FastHTTP:
    """A keep-alive pool of raw HTTP/1.1 connections to one API server."""

    def __init__(self, pool: Any, *, maxsize: int = 32) -> None:
        self._pool = pool
        host = f"[{pool.host}]" if ":" in str(pool.host) else str(pool.host)
        self._host = host if pool.port is None else f"{host}:{pool.port}"
        self._maxsize = maxsize
        self._idle: list[_Conn] = []
        self._lock = threading.Lock()
        # like urllib3's pools: a FastHTTP dropped without close() still closes its sockets
        self._finalizer = weakref.finalize(self, _close_all, self._idle, self._lock)

    @classmethod
    def for_pool_manager(cls, pm: Any, url: str, *, maxsize: int = 32) -> FastHTTP | None:
        """A FastHTTP on pm's pool for url, or None when pm is not a plain (proxy-less) PoolManager."""
        if type(pm) is not urllib3.PoolManager:
            return None
        pool = pm.connection_from_url(url)
        if not hasattr(pool, "_new_conn"):
            return None
        return cls(pool, maxsize=maxsize)

    def _connect(self, connect_timeout: float) -> _Conn:
        for attempt in range(3):
            conn = self._pool._new_conn()  # configured exactly as urllib3 would (TLS, certs)
            conn.timeout = connect_timeout
            try:
                conn.connect()
                return _Conn(conn)
            except urllib3.exceptions.ConnectTimeoutError:  # includes NewConnectionError
                conn.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _get(self, connect_timeout: float) -> _Conn:
        while True:
            with self._lock:
                c = self._idle.pop() if self._idle else None
            if c is None:
                return self._connect(connect_timeout)
            if not c.dropped():
                return c
            c.close()

    def _put(self, c: _Conn) -> None:
        with self._lock:
            if len(self._idle) < self._maxsize:
                self._idle.append(c)
                return
        c.close()

    def request(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes | None,
        *,
        timeout: float | tuple[float, float],
    ) -> tuple[int, bytes]:
        """Send one request and read the whole response; returns (status, body)."""
        if _BAD_TARGET.search(target) or _BAD_TARGET.search(method):
            raise http.client.InvalidURL(f"invalid request target {target!r}")
        lines = [f"{method} {target} HTTP/1.1\r\nHost: {self._host}\r\n"]
        for k, v in headers.items():
            if "\r" in v or "\n" in v:
                raise ValueError(f"invalid value for header {k}")
            lines.append(f"{k}: {v}\r\n")
        if body is not None or method in _BODY_METHODS:
            lines.append(f"Content-Length: {len(body or b'')}\r\n")
        lines.append("\r\n")
        head = "".join(lines).encode("latin-1")
        connect_t, read_t = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        c = self._get(connect_t)
        try:
            c.sock.settimeout(read_t)
            c.sock.sendall(head + body if body else head)
            status, data, keep = _read_response(c.rfile, method)
        except BaseException:
            c.close()
            raise
        if keep:
            self._put(c)
        else:
            c.close()
        return status, data

    def close(self) -> None:
        """Close all idle connections."""
        _close_all(self._idle, self._lock)

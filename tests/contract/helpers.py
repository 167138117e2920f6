"""Small helpers for the contract checks: raw HTTP through the client's own connection pool,
bounded watch reading, polling, and unique names.

Raw requests reuse the official client's configuration (host, CA, bearer token), so the bytes on the
wire are exactly what the test wrote (bad JSON, odd content types) while auth stays the same.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import urllib3
from kubernetes import client

MERGE = "application/merge-patch+json"
JSONPATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"


def uniq(prefix: str) -> str:
    """A DNS-1123 name unique to this run."""
    return f"{prefix}-{secrets.token_hex(4)}"


@dataclass
class Resp:
    """One HTTP answer."""

    status: int
    body: Any
    text: str
    headers: dict[str, str]

    def status_obj(self) -> dict[str, Any]:
        """The body, asserted to be a meta/v1 Status."""
        assert isinstance(self.body, dict), f"not a JSON object: {self.text[:300]!r}"
        assert self.body.get("kind") == "Status", f"not a Status: {self.text[:300]!r}"
        assert self.body.get("apiVersion") == "v1", self.body
        assert self.body.get("code") == self.status, self.body
        return self.body


class Raw:
    """Raw HTTP to the server a kubernetes ApiClient points at."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.cfg = api_client.configuration
        self.pool: urllib3.PoolManager = api_client.rest_client.pool_manager

    def _headers(self, content_type: str | None, accept: str) -> dict[str, str]:
        h = {"Accept": accept}
        auth = self.cfg.auth_settings().get("BearerToken")
        if auth and auth.get("value"):
            h["Authorization"] = auth["value"]
        if content_type:
            h["Content-Type"] = content_type
        return h

    def url(self, path: str, query: dict[str, Any] | None = None) -> str:
        """Absolute URL for a path and query."""
        q = f"?{urlencode(query)}" if query else ""
        return f"{self.cfg.host}{path}{q}"

    def request(self, method: str, path: str, *, body: Any = None, query: dict[str, Any] | None = None,
                content_type: str | None = "application/json", accept: str = "application/json",
                timeout: float = 15) -> Resp:
        """Send one request; dict/list bodies are JSON-encoded, str/bytes are sent as they are."""
        data: bytes | None
        if body is None:
            data, content_type = None, (content_type if method in ("POST", "PUT", "PATCH") else None)
        elif isinstance(body, bytes):
            data = body
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = json.dumps(body).encode()
        r = self.pool.request(method, self.url(path, query), body=data,
                              headers=self._headers(content_type, accept),
                              timeout=urllib3.Timeout(connect=5, read=timeout), retries=False)
        text = r.data.decode(errors="replace")
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = None
        return Resp(r.status, parsed, text, dict(r.headers))

    def watch(self, path: str, *, query: dict[str, Any], max_events: int = 100,
              timeout: float = 10) -> tuple[int, list[tuple[str, dict[str, Any]]], bool]:
        """Read a watch: (http status, events, ended_by_server) within timeout seconds.

        Stops after max_events; ended_by_server is True when the server closed the stream.
        """
        q = dict(query)
        q["watch"] = "true"
        r = self.pool.request("GET", self.url(path, q), headers=self._headers(None, "application/json"),
                              timeout=urllib3.Timeout(connect=5, read=timeout), retries=False,
                              preload_content=False)
        events: list[tuple[str, dict[str, Any]]] = []
        ended = False
        deadline = time.monotonic() + timeout
        try:
            if r.status != 200:
                body = r.read().decode(errors="replace")
                return r.status, [("HTTP", json.loads(body) if body.startswith("{") else {"raw": body})], True
            buf = b""
            while len(events) < max_events and time.monotonic() < deadline:
                chunk = r.read1(65536) if hasattr(r, "read1") else r.read(65536)
                if not chunk:
                    ended = True
                    break
                buf += chunk
                while b"\n" in buf and len(events) < max_events:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        ev = json.loads(line)
                        events.append((ev["type"], ev["object"]))
        except (urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.ProtocolError):
            pass
        finally:
            r.close()
        return 200, events, ended


def wait_for(pred: Callable[[], Any], *, timeout: float = 20, what: str = "condition") -> Any:
    """Poll pred every 0.1 s until it returns something truthy; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}: last={last!r}")


def api_error(fn: Callable[[], Any]) -> client.ApiException:
    """Run fn, which must raise ApiException; return it with .body parsed into .status_body."""
    try:
        fn()
    except client.ApiException as err:
        try:
            err.status_body = json.loads(err.body) if err.body else None
        except ValueError:
            err.status_body = None
        return err
    raise AssertionError("expected an ApiException, the call succeeded")


def causes(status: dict[str, Any]) -> list[dict[str, Any]]:
    """details.causes of a Status (empty when absent)."""
    return list((status.get("details") or {}).get("causes") or [])


def cause_fields(status: dict[str, Any]) -> set[str]:
    """The field paths named in a Status's causes."""
    return {c.get("field", "") for c in causes(status)}

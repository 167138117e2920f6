"""Fault hooks: Python API and the admin HTTP endpoint."""

from __future__ import annotations

import http.client
import time
from urllib.parse import urlsplit

import pytest
from kubernetes import client

from lbspeaker.apiserver.server import EmbeddedServer
from tests.unit.apiserver.conftest import Raw
from tests.unit.apiserver.test_watch import stream


@pytest.mark.parametrize("code", [409, 500, 503])
def test_fail_next_writes(srv: EmbeddedServer, v1: client.CoreV1Api, code: int) -> None:
    srv.faults.fail_next_writes(2, code=code)
    for _ in range(2):
        with pytest.raises(client.ApiException) as err:
            v1.create_namespaced_config_map("default", {"metadata": {"name": "f"}})
        assert err.value.status == code
    v1.read_namespace("default")  # reads are not affected
    assert v1.create_namespaced_config_map("default", {"metadata": {"name": "f"}}).metadata.name == "f"


def test_latency(srv: EmbeddedServer, raw: Raw) -> None:
    srv.faults.set_latency(300)
    t0 = time.monotonic()
    raw("GET", "/version")
    assert time.monotonic() - t0 >= 0.29
    srv.faults.set_latency(0)


def test_expire_next_watches(srv: EmbeddedServer) -> None:
    srv.faults.expire_next_watches(1)
    _, evs = stream(srv, "/api/v1/configmaps?watch=1&timeoutSeconds=1")
    assert evs[0]["type"] == "ERROR" and evs[0]["object"]["code"] == 410
    _, evs = stream(srv, "/api/v1/configmaps?watch=1&timeoutSeconds=1")
    assert evs == []


def test_blackout_holds_then_drops(srv: EmbeddedServer) -> None:
    u = urlsplit(srv.url)
    srv.faults.blackout(1.0)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
    t0 = time.monotonic()
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        conn.request("GET", "/version")
        conn.getresponse()
    assert time.monotonic() - t0 >= 0.9
    conn.close()
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
    conn.request("GET", "/version")
    assert conn.getresponse().status == 200
    conn.close()


def test_blackout_freezes_then_drops_open_watch(srv: EmbeddedServer, v1: client.CoreV1Api) -> None:
    u = urlsplit(srv.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
    conn.request("GET", "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=0")
    resp = conn.getresponse()
    srv.faults.blackout(0.8)
    time.sleep(0.3)
    with pytest.raises(http.client.IncompleteRead):
        resp.read()
    conn.close()


def test_admin_endpoint(srv: EmbeddedServer, raw: Raw) -> None:
    code, _, st = raw(
        "POST",
        "/lbspeaker-admin/faults",
        {"failNextWrites": {"count": 1, "code": 500}, "expireNextWatches": 2, "latencyMs": 0},
    )
    assert code == 200 and st["failNextWrites"] == {"count": 1, "code": 500} and st["expireNextWatches"] == 2
    assert raw("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "x"}})[0] == 500
    assert raw("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "x"}})[0] == 201
    code, _, st = raw("POST", "/lbspeaker-admin/faults", {"closeWatches": True, "clear": True})
    assert code == 200 and st["expireNextWatches"] == 0 and "closedWatches" in st
    assert raw("POST", "/lbspeaker-admin/faults", {"failNextWrites": {"code": 418}})[0] == 400
    assert raw("GET", "/lbspeaker-admin/faults")[0] == 200

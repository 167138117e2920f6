"""Benchmark the embedded API server; prints one JSON object.

The server runs in a subprocess (``lbctl apiserver`` entry point) on loopback so its RSS is its
own. Services are IPv6 single-stack LoadBalancers without node ports (2001:db8::/32 service range;
the IPv4 default range is a /24) so 10,000 fit.

Figures:
- creates_per_s: Services created through the official python client (one thread);
- watch_events_per_s: events a single raw-HTTP watcher receives and decodes, replaying the history;
- list_ms_10k: one LIST of 10,000 Services over raw HTTP until the body is read (best of 3);
- list_ms_10k_decoded: the same plus json.loads in the client;
- list_ms_10k_client: the same LIST through the python client (model deserialisation included);
- rss_mb: server RSS after all of the above.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from typing import Any

from kubernetes import client

CREATES = int(os.environ.get("BENCH_CREATES", "2000"))
TOTAL = int(os.environ.get("BENCH_TOTAL", "10000"))
DEADLINE = time.monotonic() + float(os.environ.get("BENCH_MAX_S", "240"))


def svc(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"bench-{i}", "labels": {"bench": "yes"}},
        "spec": {
            "type": "LoadBalancer",
            "ipFamilies": ["IPv6"],
            "allocateLoadBalancerNodePorts": False,
            "selector": {"app": f"a{i}"},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
        },
    }


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    code = "from lbspeaker.cli.apiserver_cmd import apiserver; apiserver()"
    args = [
        sys.executable,
        "-c",
        code,
        "--listen",
        "127.0.0.1:0",
        "--history",
        str(TOTAL + 1000),
        "--service-cidr",
        "198.51.100.0/24",
        "--service-cidr",
        "2001:db8:b::/104",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        url = line.split()[-1]
        host, port = url.removeprefix("http://").rsplit(":", 1)
        api = client.ApiClient(client.Configuration(host=url))
        v1 = client.CoreV1Api(api)
        meta = v1.list_namespaced_service("default").metadata
        start_rv = meta.resource_version if meta else "0"

        t0 = time.monotonic()
        done = 0
        for i in range(CREATES):
            if time.monotonic() > DEADLINE:
                break
            body: Any = svc(i)
            v1.create_namespaced_service("default", body)
            done += 1
        creates_per_s = done / (time.monotonic() - t0)

        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        for i in range(done, TOTAL):
            if time.monotonic() > DEADLINE:
                break
            conn.request(
                "POST", "/api/v1/namespaces/default/services", json.dumps(svc(i)), {"Content-Type": "application/json"}
            )
            r = conn.getresponse()
            r.read()
            if r.status != 201:
                raise SystemExit(f"bench: creating service {i}: HTTP {r.status}")

        list_ms = decoded_ms = 0.0
        n_listed = 0
        for _ in range(3):
            t0 = time.monotonic()
            conn.request("GET", "/api/v1/namespaces/default/services")
            body = conn.getresponse().read()
            t1 = time.monotonic()
            n_listed = len(json.loads(body)["items"])
            list_ms = min(list_ms or 1e9, (t1 - t0) * 1000)
            decoded_ms = min(decoded_ms or 1e9, (time.monotonic() - t0) * 1000)

        t0 = time.monotonic()
        n_client = len(v1.list_namespaced_service("default").items)
        list_client_ms = (time.monotonic() - t0) * 1000

        wconn = http.client.HTTPConnection(host, int(port), timeout=60)
        wconn.request("GET", f"/api/v1/services?watch=1&resourceVersion={start_rv}&timeoutSeconds=30")
        resp = wconn.getresponse()
        want = n_listed - 1 if n_listed else 0
        got = 0
        t0 = time.monotonic()
        while got < want and time.monotonic() < DEADLINE:
            raw = resp.readline()
            if not raw:
                break
            json.loads(raw)
            got += 1
        watch_rate = got / max(1e-9, time.monotonic() - t0)
        wconn.close()
        conn.close()
        api.close()  # type: ignore[no-untyped-call]
        print(
            json.dumps(
                {
                    "creates_per_s": round(creates_per_s, 1),
                    "creates": done,
                    "watch_events_per_s": round(watch_rate, 1),
                    "watch_events": got,
                    "list_ms_10k": round(list_ms, 1),
                    "list_ms_10k_decoded": round(decoded_ms, 1),
                    "list_bytes": len(body),
                    "list_ms_10k_client": round(list_client_ms, 1),
                    "listed": n_listed,
                    "listed_client": n_client,
                    "rss_mb": round(rss_mb(proc.pid), 1),
                }
            )
        )
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stdout:
            proc.stdout.close()


if __name__ == "__main__":
    main()

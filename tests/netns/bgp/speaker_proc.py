"""A speaker's BGP side (exabgp driver + BFD) in its own process, run inside the speaker namespace.

Tests and the bench talk to it with JSON lines on stdin/stdout, and can freeze the whole speaker
side (this process and its exabgp) with SIGSTOP, the way a hung node looks to a router.
Commands: {"op": "apply", "peers": [...], "advertisements": [...], "bfd_profiles": [...],
"communities": [...], "node": {"name": ..., "addresses": [...]}, "ips": [...], "passwords": {...}};
{"op": "status"}; {"op": "stop", "graceful_restart": bool}. Each gets one JSON reply line.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from lbspeaker.core.bgp.config import SecretRef, parse_bgp
from lbspeaker.core.bgp.exabgp import DEFAULT_BATCH
from lbspeaker.core.bgp.routes import desired_routes, sessions_for_node
from lbspeaker.core.config import Config
from lbspeaker.core.node import NodeInfo, ServiceEndpoints
from lbspeaker.core.service import ServiceRef
from lbspeaker.speaker.bgp.exabgp_driver import DEFAULT_EXABGP, ExabgpDriver
from lbspeaker.speaker.bgp.manager import BgpManager
from tests.netns.bgp.scenario import POOLS


async def _apply(mgr: BgpManager, cmd: dict[str, Any]) -> None:
    res = parse_bgp(
        peers=cmd.get("peers", []),
        advertisements=cmd.get("advertisements", []),
        bfd_profiles=cmd.get("bfd_profiles", []),
        communities=cmd.get("communities", []),
        pools=POOLS,
    )
    if res.errors:
        raise ValueError("; ".join(map(str, res.errors)))
    n = cmd["node"]
    node = NodeInfo(n["name"], addresses=tuple(ipaddress.ip_address(a) for a in n["addresses"]))
    passwords = {SecretRef(*k.split("/", 1)): v for k, v in cmd.get("passwords", {}).items()}
    sessions, skipped = sessions_for_node(res.config, node, passwords=passwords)
    if skipped:
        raise ValueError(f"skipped peers: {skipped}")
    etp = cmd.get("etp", "Cluster")
    svcs = [
        ServiceRef("default", f"s{i}", type="LoadBalancer", external_traffic_policy=etp,
                   ingress_ips=(ipaddress.ip_address(a),))
        for i, a in enumerate(cmd.get("ips", []))
    ]  # fmt: skip
    ready = cmd.get("ready_nodes", [node.name])
    eps = {s.key: ServiceEndpoints(s.key, frozenset(ready)) for s in svcs}
    routes = desired_routes(Config(pools=POOLS), res.config, node=node, services=svcs, endpoints=eps, sessions=sessions)
    await mgr.apply(sessions, routes)


def _status(mgr: BgpManager) -> dict[str, Any]:
    peers = {}
    for name, st in mgr.status().items():
        bfd = mgr.bfd.state(st.address)
        peers[name] = {"state": st.state, "prefixes": st.prefixes, "last_error": st.last_error,
                       "bfd": bfd.name if bfd is not None else None}  # fmt: skip
    return {"ok": True, "pid": os.getpid(), "exabgp_pid": mgr.driver.pid, "peers": peers,
            "bfd_teardowns": mgr.bfd_teardowns, "restarts": mgr.driver.restarts}  # fmt: skip


async def main(workdir: Path) -> None:
    batch = int(os.environ.get("LBT_BGP_BATCH", "0")) or DEFAULT_BATCH
    exabgp = os.environ.get("LBT_BGP_EXABGP")  # experiments: a wrapper (profiling, other versions)
    driver = ExabgpDriver(workdir=workdir, batch=batch, exabgp=Path(exabgp) if exabgp else DEFAULT_EXABGP)
    mgr = BgpManager(driver=driver)
    await mgr.start()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while line := await reader.readline():
            cmd = json.loads(line)
            try:
                if cmd["op"] == "apply":
                    await _apply(mgr, cmd)
                elif cmd["op"] == "stop":
                    await mgr.stop(graceful_restart=bool(cmd.get("graceful_restart")))
                    print(json.dumps({"ok": True}), flush=True)
                    return
                print(json.dumps(_status(mgr)), flush=True)
            except Exception as exc:
                print(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"}), flush=True)
    finally:
        await mgr.stop()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(main(Path(sys.argv[1])))

"""The lab's BGP side: a BIRD 2 router peering with every node, a WAN client behind it, the BGP config objects.

The router (``{prefix}router``, 192.0.2.1 on the LAN, AS 64512) runs eBGP to every node (AS
64513) and installs the service routes into its kernel with ``merge paths``, so one /32 becomes an
ECMP route with one next hop per announcing node. The WAN client (``{prefix}wan-client``,
198.51.100.10) has only a default route to the router: it reaches the BGP pool (203.0.113.0/24,
on no link) only through those routes. Invariants: BIRD lives inside the router namespace, so
deleting the lab namespaces (``lab.down``) also ends it, after a crash too; its pid is recorded
like every other lab process.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lbspeaker.core.errors import LabError
from lbspeaker.k8s.client import JSON
from lbspeaker.lab import procs
from lbspeaker.lab.netns import add_namespace, ip, run, sysctl, veth
from lbspeaker.lab.topology import (
    BGP_POOL_V4,
    NODE_ASN,
    ROUTER_ASN,
    WAN_CLIENT,
    WAN_ROUTER,
    WAN_V4,
    Topology,
)

SPEAKER_NS = "lbspeaker-system"
BGP_POOL = "bgp"


def bird_config(topo: Topology) -> str:
    """BIRD 2 configuration: one eBGP session per node, ECMP into the kernel."""
    r = topo.router
    lines = [
        f'log "{topo.bird_dir / "bird.log"}" all;',
        f"router id {r.v4.ip};",
        "protocol device { scan time 10; }",
        "protocol kernel kernel4 { ipv4 { export where source = RTS_BGP; }; merge paths on limit 16; }",
        "protocol kernel kernel6 { ipv6 { export where source = RTS_BGP; }; merge paths on limit 16; }",
        "template bgp lbnode {",
        f"  local {r.v4.ip} as {ROUTER_ASN};",
        "  hold time 9; connect retry time 1; error wait time 1, 10; graceful restart aware;",
        "  ipv4 { import all; export none; };",
        "}",
    ]
    for m in topo.node_members:
        lines.append(f"protocol bgp {m.name} from lbnode {{ neighbor {m.v4.ip} as {NODE_ASN}; }}")
    return "\n".join(lines) + "\n"


def bgp_objects(topo: Topology) -> list[JSON]:
    """The BGP pool, the BGPPeer toward the router and the BGPAdvertisement of the pool."""
    meta = {"namespace": SPEAKER_NS}
    return [
        {
            "apiVersion": "lbspeaker.io/v1beta1",
            "kind": "IPAddressPool",
            "metadata": {"name": BGP_POOL, **meta},
            "spec": {"addresses": [BGP_POOL_V4], "autoAssign": topo.mode == "bgp"},
        },
        {
            "apiVersion": "lbspeaker.io/v1beta1",
            "kind": "BGPPeer",
            "metadata": {"name": "lab-router", **meta},
            "spec": {
                "myASN": NODE_ASN,
                "peerASN": ROUTER_ASN,
                "peerAddress": str(topo.router.v4.ip),
                "holdTime": "9s",
                "keepaliveTime": "3s",
                "connectTime": "1s",
            },
        },
        {
            "apiVersion": "lbspeaker.io/v1beta1",
            "kind": "BGPAdvertisement",
            "metadata": {"name": BGP_POOL, **meta},
            "spec": {"ipAddressPools": [BGP_POOL]},
        },
    ]


def build_router(topo: Topology) -> None:
    """Forwarding in the router, the WAN link and client, node routes back to the WAN."""
    r = topo.router.ns
    for key in ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"):
        sysctl(r, key, "1")
    sysctl(r, "net.ipv4.fib_multipath_hash_policy", "1")  # spread flows by ports too, not only by address
    add_namespace(topo.wan_client_ns)
    veth(r, "wan0", topo.wan_client_ns, "eth0")
    ip("addr", "add", str(WAN_ROUTER), "dev", "wan0", ns=r)
    ip("addr", "add", str(WAN_CLIENT), "dev", "eth0", ns=topo.wan_client_ns)
    ip("route", "add", "default", "via", str(WAN_ROUTER.ip), ns=topo.wan_client_ns)
    for m in topo.node_members:  # replies to the WAN client go back through the router
        ip("route", "replace", str(WAN_V4), "via", str(topo.router.v4.ip), ns=m.ns)


def start_bird(topo: Topology) -> int:
    """Start BIRD in the router namespace (daemonised, pid recorded); returns its pid."""
    d = topo.bird_dir
    d.mkdir(parents=True, exist_ok=True)
    conf, pidfile = d / "bird.conf", d / "bird.pid"
    conf.write_text(bird_config(topo))
    pidfile.unlink(missing_ok=True)
    run(["bird", "-c", str(conf), "-s", str(topo.bird_socket), "-P", str(pidfile)], ns=topo.router.ns)
    if not procs.wait_until(lambda: pidfile.exists() and pidfile.read_text().strip().isdigit(), 10.0):
        raise LabError(f"starting BIRD in '{topo.router.ns}': no pid file after 10s ({d / 'bird.log'})")
    pid = int(pidfile.read_text().strip())
    (topo.state_dir / "pids").mkdir(parents=True, exist_ok=True)
    (topo.state_dir / "pids" / "bird.pid").write_text(str(pid))
    return pid


def start_router(topo: Topology) -> None:
    """The router namespace's links and routes, then BIRD."""
    build_router(topo)
    start_bird(topo)


def birdc(topo: Topology, *args: str, check: bool = True) -> str:
    """Run one birdc command against the lab router (birdc exits 1 on "Network not found")."""
    return run(["birdc", "-s", str(topo.bird_socket), *args], timeout=10.0, check=check)


@dataclass(frozen=True)
class RouterSession:
    """One BGP protocol of the lab router."""

    name: str
    state: str
    info: str


def router_sessions(topo: Topology) -> dict[str, RouterSession]:
    """The router's BGP sessions (protocol name = node name) and their state."""
    out: dict[str, RouterSession] = {}
    for line in birdc(topo, "show", "protocols").splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[1] == "BGP":
            info = parts[5] if len(parts) > 5 else ""
            out[parts[0]] = RouterSession(parts[0], parts[3], info)
    return out


def next_hops(topo: Topology, prefix: str) -> set[str]:
    """Next hops the router's BGP table holds for prefix (one per announcing node)."""
    text = birdc(topo, "show", "route", "for", prefix, "all", check=False)
    return set(re.findall(r"via (\S+) on", text))


def kernel_next_hops(topo: Topology, prefix: str) -> set[str]:
    """Next hops of prefix in the router's kernel FIB (what forwarding really uses)."""
    text = run(["ip", "-n", topo.router.ns, "route", "show", prefix], check=False)
    return set(re.findall(r"via (\S+)", text))

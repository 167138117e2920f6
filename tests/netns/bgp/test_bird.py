"""exabgp driver against BIRD 2: IPv4 and IPv6 sessions, next hops, attributes, batching, changes, crashes."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import signal

import pytest

from lbspeaker.core.node import NodeInfo
from tests.netns.bgp.peers import Bird, Lab
from tests.netns.bgp.scenario import bgp_config, driver, obj, plan, poll, services

pytestmark = pytest.mark.netns

BIRD_CONF = """
router id 192.0.2.1;
protocol device {}
protocol direct { ipv4; ipv6; }
protocol bgp s4 { local 192.0.2.1 as 64512; neighbor 192.0.2.2 as 64513; error wait time 1, 10;
  ipv4 { import all; export none; }; }
protocol bgp s6 { local 2001:db8::1 as 64512; neighbor 2001:db8::2 as 64513; error wait time 1, 10;
  ipv6 { import all; export none; }; }
protocol bgp i4 { local 192.0.2.11 as 64513; neighbor 192.0.2.3 as 64513; direct; error wait time 1, 10;
  ipv4 { import all; export none; gateway direct; }; }
"""

R4 = obj("r4", myASN=64513, peerASN=64512, peerAddress="192.0.2.1", holdTime="9s")
R6 = obj("r6", myASN=64513, peerASN=64512, peerAddress="2001:db8::1", holdTime="9s")
RI = obj("ri", myASN=64513, peerASN=64513, peerAddress="192.0.2.11", sourceAddress="192.0.2.3", holdTime="9s")
NODE = NodeInfo("n1", addresses=(ipaddress.ip_address("192.0.2.2"), ipaddress.ip_address("2001:db8::2")))


def topology(lab: Lab) -> tuple[str, Bird]:
    """Router and speaker namespaces on one link; returns the speaker namespace and BIRD."""
    r, s = lab.ns("r"), lab.ns("s")
    dr, ds = lab.link(r, s, ("192.0.2.1/24", "192.0.2.2/24"), ("2001:db8::1/64", "2001:db8::2/64"))
    lab.addr(r, dr, "192.0.2.11/24")
    lab.addr(s, ds, "192.0.2.3/24")
    return s, Bird(lab, r, BIRD_CONF)


def test_v4_v6_ibgp_routes_attributes_and_withdraw(lab: Lab) -> None:
    s, bird = topology(lab)
    cfg = bgp_config(
        peers=[R4, R6, RI],
        communities=[obj("c", communities=[{"name": "edge", "value": "large:64513:1:2"}])],
        advertisements=[
            obj("plain", ipAddressPools=["v4", "v6"], peers=["r4", "r6"], communities=["65000:100", "edge"]),
            obj("ibgp", ipAddressPools=["v4"], peers=["ri"], localPref=250),
        ],
    )
    ips4 = [f"203.0.113.{i}" for i in range(1, 41)]
    ips6 = [f"2001:db8:5::{i:x}" for i in range(1, 41)]

    async def scenario() -> None:
        drv = driver(lab.dir / "drv", s, batch=7)
        await drv.start()
        try:
            sessions, routes = plan(cfg, NODE, services(*ips4, *ips6))
            await drv.apply(sessions, routes)
            await poll(
                lambda: (bird.count("s4"), bird.count("s6"), bird.count("i4")) == (40, 40, 40),
                timeout=15,
                what="routes at BIRD",
            )
            r4, r6, ri = bird.routes("s4"), bird.routes("s6"), bird.routes("i4")
            assert {r.next_hop for r in r4.values()} == {"192.0.2.2"}
            assert {r.next_hop for r in r6.values()} == {"2001:db8::2"}
            assert {r.next_hop for r in ri.values()} == {"192.0.2.3"}
            assert r4["203.0.113.1/32"].communities == ("65000:100",)
            assert r4["203.0.113.1/32"].large_communities == ("64513:1:2",)
            assert r6["2001:db8:5::1/128"].communities == ("65000:100",)
            assert {r.local_pref for r in ri.values()} == {250}
            assert not ri["203.0.113.1/32"].communities
            await poll(lambda: all(st.established for st in drv.status().values()), timeout=10, what="status up")
            assert {n: st.prefixes for n, st in drv.status().items()} == {"r4": 40, "r6": 40, "ri": 40}

            # withdraw half, keep the rest untouched
            sessions, routes = plan(cfg, NODE, services(*ips4[:20], *ips6[:20]))
            await drv.apply(sessions, routes)
            await poll(
                lambda: (bird.count("s4"), bird.count("s6"), bird.count("i4")) == (20, 20, 20),
                timeout=15,
                what="withdrawals at BIRD",
            )
            assert set(bird.routes("s6")) == {f"{a}/128" for a in ips6[:20]}
        finally:
            await drv.stop()

    asyncio.run(scenario())


def test_crash_replays_state_and_peer_changes_keep_other_sessions(lab: Lab) -> None:
    s, bird = topology(lab)
    adv = obj("all", ipAddressPools=["v4", "v6"])
    ips = [f"203.0.113.{i}" for i in range(1, 11)] + [f"2001:db8:5::{i:x}" for i in range(1, 11)]

    async def scenario() -> None:
        drv = driver(lab.dir / "drv", s)
        await drv.start()
        try:
            cfg = bgp_config(peers=[R4], advertisements=[adv])
            await drv.apply(*plan(cfg, NODE, services(*ips)))
            await poll(lambda: bird.count("s4") == 10, timeout=15, what="v4 routes")
            since4 = bird.cli("show", "protocols", "s4")

            # add the v6 peer: the v4 session must not reset
            cfg = bgp_config(peers=[R4, R6], advertisements=[adv])
            await drv.apply(*plan(cfg, NODE, services(*ips)))
            await poll(lambda: bird.count("s6") == 10, timeout=15, what="v6 routes after adding a peer")
            assert bird.cli("show", "protocols", "s4") == since4, "adding a peer reset an unrelated session"

            # change the v6 peer (hold time): only it re-establishes, its routes come back
            r6b = obj("r6", myASN=64513, peerASN=64512, peerAddress="2001:db8::1", holdTime="12s")
            cfg = bgp_config(peers=[R4, r6b], advertisements=[adv])
            await drv.apply(*plan(cfg, NODE, services(*ips)))
            await poll(
                lambda: bird.count("s6") == 10 and bird.state("s6") == "Established",
                timeout=15,
                what="v6 routes after changing the peer",
            )
            assert bird.cli("show", "protocols", "s4") == since4, "changing a peer reset an unrelated session"

            # exabgp crashes: the driver restarts it and replays everything
            pid = drv.pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            await poll(lambda: drv.pid not in (None, pid), timeout=10, what="exabgp restarted")
            await poll(lambda: bird.count("s4") == 10 and bird.count("s6") == 10, timeout=15, what="replay")
            assert drv.restarts == 1

            # remove the v4 peer: its session closes, its routes go
            cfg = bgp_config(peers=[r6b], advertisements=[adv])
            await drv.apply(*plan(cfg, NODE, services(*ips)))
            await poll(lambda: bird.count("s4") == 0, timeout=15, what="v4 routes gone with the peer")
            assert bird.count("s6") == 10
        finally:
            await drv.stop()

    asyncio.run(scenario())


def test_unreachable_peer_is_reported_not_fatal(lab: Lab) -> None:
    s, bird = topology(lab)
    ghost = obj("ghost", myASN=64513, peerASN=64512, peerAddress="192.0.2.99", holdTime="9s")
    cfg = bgp_config(peers=[R4, ghost], advertisements=[obj("all", ipAddressPools=["v4"])])

    async def scenario() -> None:
        drv = driver(lab.dir / "drv", s)
        await drv.start()
        try:
            await drv.apply(*plan(cfg, NODE, services("203.0.113.7")))
            await poll(lambda: bird.count("s4") == 1, timeout=15, what="route via the good peer")
            st = drv.status()
            assert st["r4"].established and not st["ghost"].established
            assert st["ghost"].prefixes == 1  # queued in exabgp, sent once the peer answers
        finally:
            await drv.stop()

    asyncio.run(scenario())

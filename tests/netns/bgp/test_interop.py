"""The same scenarios against BIRD 2 and FRR 8.4: IPv4/IPv6 sessions, next hops, communities,
local-pref (iBGP), aggregation, ETP Local, TCP-MD5, eBGP multihop, graceful restart."""

from __future__ import annotations

import threading
import time

import pytest

from tests.netns.bgp.peers import Lab, SpeakerProc, run, wait_until
from tests.netns.bgp.routers import Nbr, make_router, route
from tests.netns.bgp.scenario import obj

pytestmark = pytest.mark.netns
ROUTERS = ["bird", "frr"]
NODE = {"name": "n1", "addresses": ["192.0.2.2", "2001:db8::2"]}


def direct(lab: Lab) -> tuple[str, str]:
    r, s = lab.ns("r"), lab.ns("s")
    dr, ds = lab.link(r, s, ("192.0.2.1/24", "192.0.2.2/24"), ("2001:db8::1/64", "2001:db8::2/64"))
    lab.addr(r, dr, "192.0.2.11/24")
    lab.addr(s, ds, "192.0.2.3/24")
    return r, s


@pytest.mark.parametrize("kind", ROUTERS)
def test_sessions_next_hops_attributes_aggregation_md5_etp(lab: Lab, kind: str) -> None:
    r, s = direct(lab)
    router = make_router(
        kind,
        lab,
        r,
        [
            Nbr("192.0.2.1", "192.0.2.2", 64513, password="s3cret;x"),
            Nbr("2001:db8::1", "2001:db8::2", 64513),
            Nbr("192.0.2.11", "192.0.2.3", 64512),
        ],
    )
    peers = [
        obj("r4", myASN=64513, peerASN=64512, peerAddress="192.0.2.1", password="s3cret;x", holdTime="9s"),
        obj("r6", myASN=64513, peerASN=64512, peerAddress="2001:db8::1", holdTime="9s"),
        obj(
            "ri",
            myASN=64512,
            peerASN=64512,
            peerAddress="192.0.2.11",
            sourceAddress="192.0.2.3",
            holdTime="9s",
        ),
    ]
    advs = [
        obj("ext", peers=["r4", "r6"], communities=["65000:100", "edge"]),
        obj("agg", peers=["ri"], ipAddressPools=["v4"], aggregationLength=28, localPref=250),
    ]
    communities = [obj("c", communities=[{"name": "edge", "value": "large:64513:1:2"}])]
    ips = ["203.0.113.1", "203.0.113.2", "2001:db8:5::1"]
    sp = SpeakerProc(lab, s)
    kw = {"peers": peers, "advertisements": advs, "communities": communities, "node": NODE, "ips": ips}
    sp.request(op="apply", **kw)
    want4, want6 = {"203.0.113.1/32", "203.0.113.2/32"}, {"2001:db8:5::1/128"}
    wait_until(
        lambda: (
            set(router.table("192.0.2.2")) == want4
            and set(router.table("2001:db8::2")) == want6
            and set(router.table("192.0.2.3")) == {"203.0.113.0/28"}
        ),
        timeout=30,
        what=f"routes at {kind}",
    )
    assert router.established("192.0.2.2"), "TCP-MD5 session"
    v4 = route(router, "192.0.2.2", "203.0.113.1/32")
    assert (v4.next_hop, v4.communities, v4.large_communities) == (
        "192.0.2.2",
        ("65000:100",),
        ("64513:1:2",),
    )
    v6 = route(router, "2001:db8::2", "2001:db8:5::1/128")
    assert (v6.next_hop, v6.communities) == ("2001:db8::2", ("65000:100",))
    agg = route(router, "192.0.2.3", "203.0.113.0/28")
    assert (agg.next_hop, agg.local_pref, agg.communities) == ("192.0.2.3", 250, ())
    status = sp.request(op="status")["peers"]
    assert {n: (p["state"], p["prefixes"]) for n, p in status.items()} == {
        "r4": ("up", 2),
        "r6": ("up", 1),
        "ri": ("up", 1),
    }

    # externalTrafficPolicy Local without a local endpoint: withdrawn everywhere; with one: back
    sp.request(op="apply", etp="Local", ready_nodes=["n2"], **kw)
    wait_until(lambda: not router.table("192.0.2.2") and not router.table("2001:db8::2"), timeout=15, what="ETP")
    assert not router.table("192.0.2.3")
    sp.request(op="apply", etp="Local", ready_nodes=["n1"], **kw)
    wait_until(lambda: set(router.table("192.0.2.2")) == want4, timeout=15, what="ETP Local with endpoint")


@pytest.mark.parametrize("kind", ROUTERS)
def test_wrong_md5_password_never_establishes_and_is_reported(lab: Lab, kind: str) -> None:
    r, s = direct(lab)
    router = make_router(kind, lab, r, [Nbr("192.0.2.1", "192.0.2.2", 64513, password="right")])
    sp = SpeakerProc(lab, s)
    peers = [obj("r4", myASN=64513, peerASN=64512, peerAddress="192.0.2.1", password="wrong", holdTime="9s")]
    sp.request(op="apply", peers=peers, advertisements=[obj("a")], node=NODE, ips=["203.0.113.1"])
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        assert not router.established("192.0.2.2")
        time.sleep(0.2)
    assert sp.request(op="status")["peers"]["r4"]["state"] != "up"


def multihop_topology(lab: Lab) -> tuple[str, str]:
    """speaker 192.0.2.66 -- .65 middle .129 -- .130 router (two /26 links, static routes)."""
    r, m, s = lab.ns("r"), lab.ns("m"), lab.ns("s")
    lab.link(m, s, ("192.0.2.65/26", "192.0.2.66/26"))
    lab.link(m, r, ("192.0.2.129/26", "192.0.2.130/26"))
    run("ip", "-n", s, "route", "add", "192.0.2.128/26", "via", "192.0.2.65")
    run("ip", "-n", r, "route", "add", "192.0.2.64/26", "via", "192.0.2.129")
    return r, s


@pytest.mark.parametrize("kind", ROUTERS)
def test_ebgp_multihop(lab: Lab, kind: str) -> None:
    r, s = multihop_topology(lab)
    router = make_router(kind, lab, r, [Nbr("192.0.2.130", "192.0.2.66", 64513, multihop=True)])
    sp = SpeakerProc(lab, s)
    node = {"name": "n1", "addresses": ["192.0.2.66"]}
    base = {"myASN": 64513, "peerASN": 64512, "peerAddress": "192.0.2.130", "holdTime": "9s"}
    # single-hop eBGP (TTL 1) cannot cross the middle router
    sp.request(op="apply", peers=[obj("far", **base)], advertisements=[obj("a")], node=node, ips=["203.0.113.9"])
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert not router.established("192.0.2.66")
        time.sleep(0.2)
    sp.request(
        op="apply", peers=[obj("far", ebgpMultiHop=True, **base)], advertisements=[obj("a")], node=node,
        ips=["203.0.113.9"],
    )  # fmt: skip
    wait_until(lambda: "203.0.113.9/32" in router.table("192.0.2.66"), timeout=30, what="multihop route")
    assert route(router, "192.0.2.66", "203.0.113.9/32").next_hop == "192.0.2.66"


@pytest.mark.parametrize("kind", ROUTERS)
def test_graceful_restart_keeps_routes_while_speaker_restarts(lab: Lab, kind: str) -> None:
    r, s = direct(lab)
    router = make_router(kind, lab, r, [Nbr("192.0.2.1", "192.0.2.2", 64513), Nbr("2001:db8::1", "2001:db8::2", 64513)])
    peers = [
        obj(
            "r4",
            myASN=64513,
            peerASN=64512,
            peerAddress="192.0.2.1",
            holdTime="9s",
            enableGracefulRestart=True,
        ),
        obj(
            "r6",
            myASN=64513,
            peerASN=64512,
            peerAddress="2001:db8::1",
            holdTime="9s",
            enableGracefulRestart=True,
        ),
    ]
    kw = {"peers": peers, "advertisements": [obj("a")], "node": NODE, "ips": ["203.0.113.1", "2001:db8:5::1"]}
    sp = SpeakerProc(lab, s, "speaker1")
    sp.request(op="apply", **kw)

    def both() -> bool:
        v4, v6 = router.table("192.0.2.2"), router.table("2001:db8::2")
        return "203.0.113.1/32" in v4 and "2001:db8:5::1/128" in v6

    wait_until(both, timeout=30, what="routes")

    missing: list[float] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            if not both():
                missing.append(time.monotonic())
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        sp.request(op="stop", graceful_restart=True)
        wait_until(lambda: not router.established("192.0.2.2"), timeout=15, what="session down at the router")
        assert both(), "routes must be kept (stale) while the speaker restarts"
        time.sleep(1.0)
        sp2 = SpeakerProc(lab, s, "speaker2")
        sp2.request(op="apply", **kw)
        wait_until(
            lambda: router.established("192.0.2.2") and router.established("2001:db8::2"),
            timeout=30,
            what="sessions back",
        )
        wait_until(
            lambda: (
                not route(router, "192.0.2.2", "203.0.113.1/32").stale
                and not route(router, "2001:db8::2", "2001:db8:5::1/128").stale
            ),
            timeout=15,
            what="routes refreshed (not stale)",
        )
    finally:
        stop.set()
        watcher.join(5)
    assert missing == [], f"routes vanished from the router {len(missing)} time(s) during the restart"

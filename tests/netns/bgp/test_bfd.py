"""BFD interop with BIRD and FRR: sessions come Up, a hung speaker side loses its routes through BFD
(not the hold timer), a hung router makes our BFD tear the BGP session down."""

from __future__ import annotations

import os
import signal

import pytest

from tests.netns.bgp.peers import Bird, Frr, Lab, SpeakerProc, wait_until
from tests.netns.bgp.routers import Nbr, freeze, make_router
from tests.netns.bgp.scenario import obj

pytestmark = pytest.mark.netns

NODE = {"name": "n1", "addresses": ["192.0.2.2", "2001:db8::2"]}
PROFILE = obj("fast", receiveInterval=100, transmitInterval=100, detectMultiplier=3)
PEERS = [
    obj("r4", myASN=64513, peerASN=64512, peerAddress="192.0.2.1", holdTime="30s", bfdProfile="fast"),
    obj("r6", myASN=64513, peerASN=64512, peerAddress="2001:db8::1", holdTime="30s", bfdProfile="fast"),
]
ADVS = [obj("all", ipAddressPools=["v4", "v6"])]
IPS = ["203.0.113.10", "203.0.113.11", "2001:db8:5::10"]

BIRD_CONF = """
router id 192.0.2.1;
protocol device {}
protocol bfd { interface "*" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }; }
protocol bgp s4 { local 192.0.2.1 as 64512; neighbor 192.0.2.2 as 64513; error wait time 1, 10; bfd on;
  hold time 30; ipv4 { import all; export none; }; }
protocol bgp s6 { local 2001:db8::1 as 64512; neighbor 2001:db8::2 as 64513; error wait time 1, 10; bfd on;
  hold time 30; ipv6 { import all; export none; }; }
"""

FRR_CONF = """
frr defaults traditional
hostname r
!
bfd
 profile fast
  receive-interval 100
  transmit-interval 100
  detect-multiplier 3
 !
!
router bgp 64512
 bgp router-id 192.0.2.1
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor 192.0.2.2 remote-as 64513
 neighbor 192.0.2.2 timers 10 30
 neighbor 192.0.2.2 bfd profile fast
 neighbor 2001:db8::2 remote-as 64513
 neighbor 2001:db8::2 timers 10 30
 neighbor 2001:db8::2 bfd profile fast
 address-family ipv6 unicast
  neighbor 2001:db8::2 activate
 exit-address-family
!
"""


def topology(lab: Lab) -> tuple[str, str]:
    r, s = lab.ns("r"), lab.ns("s")
    lab.link(r, s, ("192.0.2.1/24", "192.0.2.2/24"), ("2001:db8::1/64", "2001:db8::2/64"))
    return r, s


def test_bird_bfd_hung_speaker_and_hung_router(lab: Lab) -> None:
    r, s = topology(lab)
    bird = Bird(lab, r, BIRD_CONF)
    sp = SpeakerProc(lab, s)
    sp.request(op="apply", peers=PEERS, advertisements=ADVS, bfd_profiles=[PROFILE], node=NODE, ips=IPS)
    wait_until(lambda: bird.count("s4") == 2 and bird.count("s6") == 1, timeout=20, what="routes at BIRD")
    wait_until(lambda: bird.cli("show", "bfd", "sessions").count(" Up ") == 2, timeout=20, what="BIRD BFD Up")
    st = wait_until(
        lambda: (x := sp.request(op="status"))["peers"]["r4"]["bfd"] == "UP" and x["peers"]["r6"]["bfd"] == "UP" and x,
        timeout=10,
        what="our BFD Up",
    )
    assert st["peers"]["r4"]["state"] == "up"

    # the speaker side hangs: BIRD drops the routes on BFD, long before the 30 s hold timer
    sp.signal(signal.SIGSTOP)
    wait_until(lambda: bird.count("s4") == 0 and bird.count("s6") == 0, timeout=10, what="routes gone")
    info = bird.cli("show", "protocols", "all", "s4")
    assert "BFD session down" in info, info
    sp.signal(signal.SIGCONT)
    wait_until(lambda: bird.count("s4") == 2 and bird.count("s6") == 1, timeout=30, what="routes back")

    # the router hangs: our BFD goes Down and tears the BGP session down. BGP may be back before
    # BFD (BIRD does not hold BGP back for BFD, DESIGN.md trap 6): wait for BFD Up on both ends.
    wait_until(lambda: bird.cli("show", "bfd", "sessions").count(" Up ") == 2, timeout=20, what="BIRD BFD Up again")
    wait_until(
        lambda: all(p["bfd"] == "UP" for p in sp.request(op="status")["peers"].values()),
        timeout=20,
        what="our BFD Up again",
    )
    before = sp.request(op="status")["bfd_teardowns"]
    pid = int((bird.dir / "bird.pid").read_text())
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_until(lambda: sp.request(op="status")["bfd_teardowns"] >= before + 2, timeout=5, what="teardowns")
        st = sp.request(op="status")
        assert st["peers"]["r4"]["bfd"] == "DOWN" and st["peers"]["r4"]["state"] != "up", st
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_until(lambda: sp.request(op="status")["peers"]["r4"]["bfd"] == "UP", timeout=20, what="BFD back Up")


def test_bird_bfd_hung_exabgp_alone(lab: Lab) -> None:
    """Only exabgp freezes (the speaker lives): the driver sees it hung, BFD goes silent, BIRD drops it."""
    r, s = topology(lab)
    bird = Bird(lab, r, BIRD_CONF)
    sp = SpeakerProc(lab, s)
    sp.request(op="apply", peers=PEERS, advertisements=ADVS, bfd_profiles=[PROFILE], node=NODE, ips=IPS)
    wait_until(lambda: bird.count("s4") == 2 and bird.count("s6") == 1, timeout=20, what="routes at BIRD")
    wait_until(lambda: bird.cli("show", "bfd", "sessions").count(" Up ") == 2, timeout=20, what="BIRD BFD Up")
    assert sp.exabgp_pid is not None
    os.kill(sp.exabgp_pid, signal.SIGSTOP)
    try:
        wait_until(lambda: bird.count("s4") == 0 and bird.count("s6") == 0, timeout=5, what="routes gone")
        assert "BFD session down" in bird.cli("show", "protocols", "all", "s4")
    finally:
        os.kill(sp.exabgp_pid, signal.SIGCONT)
    wait_until(lambda: bird.count("s4") == 2 and bird.count("s6") == 1, timeout=30, what="routes back")
    assert sp.request(op="status")["restarts"] == 0


def test_frr_bfd_hung_speaker(lab: Lab) -> None:
    r, s = topology(lab)
    frr = Frr(lab, r, FRR_CONF)
    sp = SpeakerProc(lab, s)
    sp.request(op="apply", peers=PEERS, advertisements=ADVS, bfd_profiles=[PROFILE], node=NODE, ips=IPS)
    wait_until(lambda: len(frr.routes("ipv4")) == 2 and len(frr.routes("ipv6")) == 1, timeout=30, what="FRR routes")
    wait_until(
        lambda: sum(p.get("status") == "up" for p in frr.json("show bfd peers")) == 2,
        timeout=20,
        what="FRR BFD up",
    )
    sp.signal(signal.SIGSTOP)
    wait_until(lambda: not frr.routes("ipv4") and not frr.routes("ipv6"), timeout=10, what="FRR routes gone")
    nb = frr.json("show bgp neighbors 192.0.2.2")["192.0.2.2"]
    assert "BFD" in str(nb.get("lastResetDueTo", "")) or nb.get("bgpState") != "Established", nb
    sp.signal(signal.SIGCONT)


@pytest.mark.parametrize("kind", ["bird", "frr"])
def test_router_hangs_our_bfd_tears_the_session_down(lab: Lab, kind: str) -> None:
    r, s = topology(lab)
    router = make_router(kind, lab, r, [Nbr("192.0.2.1", "192.0.2.2", 64513, bfd=True, hold=30)])
    sp = SpeakerProc(lab, s)
    sp.request(op="apply", peers=PEERS[:1], advertisements=ADVS, bfd_profiles=[PROFILE], node=NODE, ips=IPS[:1])
    wait_until(lambda: "203.0.113.10/32" in router.table("192.0.2.2"), timeout=30, what="route at the router")
    wait_until(lambda: sp.request(op="status")["peers"]["r4"]["bfd"] == "UP", timeout=20, what="our BFD Up")
    freeze(router.pids(), signal.SIGSTOP)
    try:
        wait_until(lambda: sp.request(op="status")["bfd_teardowns"] >= 1, timeout=5, what="BFD teardown")
        st = sp.request(op="status")["peers"]["r4"]
        assert st["bfd"] != "UP" and st["state"] != "up", st
    finally:
        freeze(router.pids(), signal.SIGCONT)
    wait_until(lambda: "203.0.113.10/32" in router.table("192.0.2.2"), timeout=40, what="route back")

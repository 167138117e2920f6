"""The ARP/NDP responder against real Linux kernels in network namespaces (root).

Each test builds its own client/node/switch namespaces (``lbt-arp<N>-<pid>-*``) and removes them,
also on failure. Kernel clients are checked through their neighbour table and a TCP connect.
"""

from __future__ import annotations

import ipaddress
import json
import random
import shutil
import threading
import time

import pytest

from lbspeaker.core.arp import BROADCAST_MAC, build_garp, build_request
from lbspeaker.core.ndp import NA_OVERRIDE, NA_SOLICITED, UNSPECIFIED, build_ns, solicited_node
from lbspeaker.core.service import IPAddress
from tests.netns.l2_lab import CLIENT4, VIP4, VIP6, L2Lab, Prober, l2_lab

pytestmark = pytest.mark.netns

BOTH: list[IPAddress] = [VIP4, VIP6]


def _prober(lab: L2Lab) -> Prober:
    prober = lab.client_thread.call(Prober, "eth0")
    lab.lab.defer(prober.close)
    return prober


@pytest.mark.parametrize("vip", BOTH, ids=["ipv4", "ipv6"])
def test_kernel_client_resolves_and_reaches_vip(vip: IPAddress) -> None:
    with l2_lab(f"arp1{vip.version}") as lab:
        node = lab.nodes[0]
        node.responder.set_owned([vip])
        lab.listen(node, vip)
        lab.connect(vip)
        mac, states = lab.lab.neigh(lab.client, str(vip))
        assert mac == node.mac, states
        stats = node.responder.stats
        assert stats["responses_sent"] >= 1 and stats["requests_received"] >= 1
        assert stats["owned"] == 1 and node.responder.healthy


def test_unicast_request_and_probe_are_answered() -> None:
    with l2_lab("arp2") as lab:
        node = lab.nodes[0]
        node.responder.set_owned([VIP4])
        prober = _prober(lab)
        node_mac = bytes.fromhex(node.mac.replace(":", ""))
        assert prober.arp(VIP4, eth_dst=node_mac) == [node.mac]
        assert prober.arp(VIP4, sender=ipaddress.IPv4Address("0.0.0.0")) == [node.mac]
        assert node.responder.stats["dropped_gratuitous"] == 0
        prober.send(build_garp(prober.mac, CLIENT4))  # someone else's GARP: ignored, not answered
        deadline = time.monotonic() + 2
        while node.responder.stats["dropped_gratuitous"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert node.responder.stats["dropped_gratuitous"] == 1


def test_dad_probe_is_defended() -> None:
    with l2_lab("arp3") as lab:
        node = lab.nodes[0]
        node.responder.set_owned([VIP6])
        prober = _prober(lab)
        answers = prober.ns(VIP6, src=UNSPECIFIED)  # may also catch takeover NAs, which look the same
        assert set(answers) == {(node.mac, "ff02::1", NA_OVERRIDE)}
        assert node.responder.stats["requests_received"] == 1
        # a real kernel trying to configure the VIP sees it taken
        lab.lab.ip(lab.client, "addr", "add", f"{VIP6}/64", "dev", "eth0")
        deadline = time.monotonic() + 5
        flags: list[str] = []
        while time.monotonic() < deadline:
            info = json.loads(lab.lab.ip(lab.client, "-j", "-6", "addr", "show", "dev", "eth0").stdout)
            flags = [k for a in info[0]["addr_info"] if a.get("local") == str(VIP6) for k in a if a[k] is True]
            if "dadfailed" in flags:
                break
            time.sleep(0.05)
        assert "dadfailed" in flags
        assert node.responder.stats["requests_received"] >= 2


@pytest.mark.parametrize("vip", BOTH, ids=["ipv4", "ipv6"])
def test_takeover_moves_client_entry(vip: IPAddress) -> None:
    with l2_lab(f"arp4{vip.version}", nodes=2) as lab:
        a, b = lab.nodes
        a.responder.set_owned([vip])
        lab.listen(a, vip)
        lab.connect(vip)
        mac, states = lab.lab.neigh(lab.client, str(vip))
        assert mac == a.mac and states and states[0] in ("REACHABLE", "STALE", "DELAY")
        a.responder.stop()  # node A dies: nothing answers for it any more
        lab.listen(b, vip)
        b.responder.set_owned([vip])
        mac, states = lab.wait_neigh(vip, b.mac, timeout=1.5)
        assert mac == b.mac, states
        lab.connect(vip)
        assert b.responder.stats["gratuitous_sent"] >= 1


def test_takeover_burst_is_repeated_and_released_ips_are_not_announced() -> None:
    with l2_lab("arp5") as lab:
        node = lab.nodes[0]
        node.responder.set_owned(BOTH)
        deadline = time.monotonic() + 5
        while node.responder.stats["gratuitous_sent"] < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert node.responder.stats["gratuitous_sent"] == 10  # 5 rounds x 2 IPs
        node.responder.set_owned([])
        node.responder.set_owned([VIP4])
        node.responder.set_owned([])  # released before the burst ran: its repeats are skipped
        time.sleep(2.5)
        sent = node.responder.stats["gratuitous_sent"]
        assert sent <= 11
        node.responder.set_owned([VIP6])
        node.responder.announce()  # a second burst on request (e.g. after a link flap)
        deadline = time.monotonic() + 5
        while node.responder.stats["gratuitous_sent"] < sent + 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert node.responder.stats["gratuitous_sent"] == sent + 10


def test_release_stops_answering_and_reown_resumes() -> None:
    with l2_lab("arp6") as lab:
        node = lab.nodes[0]
        prober = _prober(lab)
        node.responder.set_owned(BOTH)
        assert prober.arp(VIP4) == [node.mac]
        assert [m for m, _, _ in prober.ns(VIP6)] == [node.mac]
        node.responder.set_owned([])
        assert prober.arp(VIP4) == []
        assert prober.ns(VIP6) == []
        assert node.responder.stats["dropped_not_owned"] >= 2
        if shutil.which("arping"):
            res = lab.lab.exec(lab.client, "arping", "-c", "2", "-w", "2", "-i", "eth0", str(VIP4), check=False)
            assert res.returncode != 0, res.stdout
        node.responder.set_owned([VIP4])
        assert prober.arp(VIP4) == [node.mac]


@pytest.mark.skipif(
    not (shutil.which("arping") and shutil.which("ndisc6")),
    reason="arping and ndisc6 (Debian packages) are not installed",
)
def test_arping_and_ndisc6_see_the_node() -> None:
    with l2_lab("arp7") as lab:
        node = lab.nodes[0]
        node.responder.set_owned(BOTH)
        out = lab.lab.exec(lab.client, "arping", "-c", "1", "-w", "3", "-i", "eth0", str(VIP4)).stdout
        assert node.mac in out.lower()
        probe = lab.lab.exec(lab.client, "arping", "-0", "-c", "1", "-w", "3", "-i", "eth0", str(VIP4)).stdout
        assert node.mac in probe.lower()  # an RFC 5227 probe (sender 0.0.0.0) sees the VIP taken
        out = lab.lab.exec(lab.client, "ndisc6", "-r", "2", "-w", "1000", str(VIP6), "eth0").stdout
        assert node.mac.upper() in out.upper()


def _garbage(prober_mac: bytes, rng: random.Random) -> list[bytes]:
    frames: list[bytes] = []
    good_arp = build_request(prober_mac, CLIENT4, target=VIP4)
    good_ns = build_ns(prober_mac, ipaddress.IPv6Address("2001:db8::1"), target=VIP6)
    for i in range(1500):
        kind = i % 5
        if kind == 0:
            frames.append(BROADCAST_MAC + prober_mac + b"\x08\x06" + rng.randbytes(rng.randrange(0, 60)))
        elif kind == 1:
            frames.append(good_arp[: rng.randrange(14, 42)])
        elif kind == 2:
            cut = bytearray(good_ns[: rng.randrange(57, len(good_ns) + 1)])
            cut[rng.randrange(56, len(cut))] ^= 0xFF
            frames.append(bytes(cut))
        elif kind == 3:
            head = bytearray(good_ns[:54])
            head[18:20] = rng.randrange(0, 65536).to_bytes(2, "big")
            frames.append(bytes(head) + bytes([135]) + rng.randbytes(rng.randrange(0, 1400)))
        else:
            tail = rng.randbytes(rng.randrange(0, 1400))
            frames.append(good_arp[:14] + rng.randbytes(6) + good_arp[20:] + tail)
    return frames


def test_garbage_frames_do_not_crash_and_filter_drops_other_traffic() -> None:
    with l2_lab("arp8") as lab:
        node = lab.nodes[0]
        node.responder.set_owned(BOTH)
        prober = _prober(lab)
        rng = random.Random(5)
        for i, frame in enumerate(_garbage(prober.mac, rng)):
            prober.send(frame)
            if i % 50 == 49:
                time.sleep(0.002)  # stay under the veth backlog (1000 frames) so the frames arrive
        ipv4_udp = BROADCAST_MAC + prober.mac + b"\x08\x00" + rng.randbytes(60)
        for _ in range(300):
            prober.send(ipv4_udp)
        assert prober.arp(VIP4) == [node.mac]
        assert [m for m, _, f in prober.ns(VIP6)] == [node.mac]
        stats = node.responder.stats
        assert node.responder.healthy
        assert stats["dropped_malformed"] >= 1400  # 1500 sent, all malformed; a few may be lost in transit
        assert stats["dropped_not_ndp"] == 0 and stats["dropped_not_arp"] == 0  # the BPF filter kept them out
        assert stats["socket_errors"] == 0


def test_duplicate_announcer_triggers_on_conflict() -> None:
    with l2_lab("arp9", nodes=2) as lab:
        a, b = lab.nodes
        seen: list[tuple[IPAddress, str]] = []
        fired = threading.Event()

        def on_conflict(ip: IPAddress, mac: str) -> None:
            seen.append((ip, mac))
            if len(seen) >= 2:
                fired.set()

        a.responder.on_conflict = on_conflict
        a.responder.set_owned(BOTH)
        b.responder.set_owned(BOTH)  # B's takeover burst claims A's IPs
        assert fired.wait(3.0), seen
        assert set(seen[:2]) == {(VIP4, b.mac), (VIP6, b.mac)}
        time.sleep(2.5)  # B repeats its burst; the callback is held off per (ip, mac)
        assert len(seen) <= 6
        assert a.responder.stats["conflicts"] >= 4


def test_snooping_bridge_delivers_ns_after_mld_join() -> None:
    with l2_lab("arp10", snooping=True) as lab:
        node = lab.nodes[0]
        node.responder.set_owned([VIP6])
        group = str(solicited_node(VIP6))
        deadline = time.monotonic() + 5
        mdb = ""
        while time.monotonic() < deadline:
            mdb = lab.lab.exec(lab.sw, "bridge", "mdb", "show", "dev", "br0").stdout
            if group in mdb and node.port in mdb:
                break
            time.sleep(0.05)
        assert group in mdb and node.port in mdb, mdb
        lab.listen(node, VIP6)
        lab.connect(VIP6)
        assert lab.lab.neigh(lab.client, str(VIP6))[0] == node.mac
        node.responder.set_owned([])  # leaving the group is reported too
        deadline = time.monotonic() + 5
        while group in lab.lab.exec(lab.sw, "bridge", "mdb", "show", "dev", "br0").stdout:
            assert time.monotonic() < deadline, "group not left"
            time.sleep(0.05)


def test_health_follows_link_and_stop_is_idempotent() -> None:
    with l2_lab("arp11") as lab:
        node = lab.nodes[0]
        r = node.responder
        assert r.healthy
        lab.lab.ip(node.ns, "link", "set", "eth0", "down")
        assert not r.healthy
        lab.lab.ip(node.ns, "link", "set", "eth0", "up")
        deadline = time.monotonic() + 3
        while not r.healthy and time.monotonic() < deadline:
            time.sleep(0.02)
        assert r.healthy
        r.set_owned([VIP4])
        prober = _prober(lab)
        assert prober.arp(VIP4) == [node.mac]  # still answering after the flap
        r.stop()
        r.stop()
        assert not r.healthy


def test_solicited_na_flags_and_na_source() -> None:
    with l2_lab("arp12") as lab:
        node = lab.nodes[0]
        node.responder.set_owned([VIP6])
        prober = _prober(lab)
        answers = prober.ns(VIP6)
        assert answers == [(node.mac, "2001:db8::1", NA_SOLICITED | NA_OVERRIDE)]

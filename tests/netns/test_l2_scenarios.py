"""Issue 5 acceptance in the full lab: real kernels (neighbour table, arping, ndisc6, HTTP) as clients.

One private lab (prefix ``lbt-l2s-``) runs API server, controller, three speakers and kube-proxy
stand-ins; each scenario creates its own Service and undoes its node/link changes in ``finally``.
Who answers is read three independent ways: the client kernel's neighbour entry after real traffic,
the real tools (arping, ndisc6), and a raw-socket prober that sees every reply (so two answerers
would show). The only time assertions are the issue's functional deadlines (failover within 2 s).
Spoofed/replayed membership packets are covered by tests/netns/test_membership.py.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import time
from collections.abc import Iterator

import pytest

from lbspeaker.core.ndp import solicited_node
from lbspeaker.core.node import EXCLUDE_LABEL
from lbspeaker.k8s.client import L2ADVERTISEMENTS, SERVICES
from lbspeaker.lab import procs
from lbspeaker.speaker.responder import Responder
from tests.netns.lab_fixture import SPEAKER_NS, LabView, l2adv, pool, running_lab, wait_for

pytestmark = [pytest.mark.netns, pytest.mark.slow]

NODE_LABEL = "l2s.lbspeaker.io/announce"
SVC_LABEL = "l2s.lbspeaker.io/announced"
CONFIG = [
    pool("v6", ["2001:db8:100::200-2001:db8:100::2ff"]),
    l2adv("v6", ["v6"]),
    pool("dual", ["192.0.2.180-192.0.2.189", "2001:db8:100::300-2001:db8:100::3ff"]),
    l2adv("dual", ["dual"]),
    pool("sel", ["192.0.2.170-192.0.2.179"]),
    l2adv("sel", ["sel"], nodeSelectors=[{"matchLabels": {NODE_LABEL: "yes"}}],
          serviceSelectors=[{"matchLabels": {SVC_LABEL: "yes"}}]),
    pool("ifc", ["192.0.2.160-192.0.2.169"]),
    l2adv("ifc", ["ifc"], interfaces=["nonexistent0"]),
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabView]:
    with running_lab(tmp_path_factory.mktemp("l2s"), prefix="lbt-l2s-", mgmt_index=3, config=CONFIG) as view:
        yield view


def _owner_by_traffic(lab: LabView, vip: str) -> str:
    """Reach vip over HTTP; the node the client kernel resolved it to, which must be the one that served.

    Waits for a stable single answerer first, so a speaker still settling cannot fool the check.
    """
    stable = lab.wait_sole_answerer(vip)
    body = lab.fetch(vip)
    node, _ = lab.neigh(vip)
    assert node == stable, f"client resolved {vip} to {node}, the prober saw {stable} answer"
    assert body == f"hello from {node}"
    return node


def _silent(lab: LabView, vip: str) -> None:
    """Nobody answers vip: the real arping gets no reply and the prober sees none either."""
    rc, nodes = lab.arping(vip, count=3)
    assert rc != 0 and not nodes, f"{vip}: arping answered by {nodes}"
    assert lab.collect_answerers(vip, probes=5) == [[]] * 5


def test_ipv6_vip_resolved_and_reached(lab: LabView) -> None:
    lab.service("v6web", pool="v6", families=["IPv6"], policy="SingleStack")
    [vip] = lab.ingress("v6web")
    assert ipaddress.IPv6Address(vip) in ipaddress.IPv6Network("2001:db8:100::200/120")  # the pool's range
    owner = _owner_by_traffic(lab, vip)  # the client kernel ran NDP and reached the owner over HTTP
    assert lab.ndisc6(vip) == owner
    group = str(solicited_node(ipaddress.IPv6Address(vip)))  # the owner joined it with an MLD report
    assert wait_for(lambda: lab.port_of(owner) in lab.mdb_ports(group), 10), lab.mdb_ports(group)
    assert set(lab.answerers(vip)) == {owner}
    assert wait_for(lambda: lab.l2status("v6web").get("node") == owner, 10)
    assert lab.l2status("v6web")["ips"] == [vip]


@pytest.mark.parametrize("policy", ["RequireDualStack", "PreferDualStack"])
def test_dual_stack_both_families_on_one_node(lab: LabView, policy: str) -> None:
    name = f"dual-{policy.lower()}"
    lab.service(name, pool="dual", families=["IPv4", "IPv6"], policy=policy)
    ips = lab.ingress(name, count=2)
    v4 = next(i for i in ips if ipaddress.ip_address(i).version == 4)
    v6 = next(i for i in ips if ipaddress.ip_address(i).version == 6)
    owner4, owner6 = _owner_by_traffic(lab, v4), _owner_by_traffic(lab, v6)
    assert owner4 == owner6
    assert set(lab.answerers(v4)) == {owner4} and set(lab.answerers(v6)) == {owner4}
    assert lab.ndisc6(v6) == owner4
    assert wait_for(lambda: lab.l2status(name).get("node") == owner4, 10)
    assert sorted(lab.l2status(name)["ips"]) == sorted(ips)


def test_etp_local_follows_the_ready_endpoint(lab: LabView) -> None:
    lab.service("local", etp="Local", endpoints=["node2"])
    [vip] = lab.ingress("local")
    assert lab.wait_sole_answerer(vip) == "node2"
    assert _owner_by_traffic(lab, vip) == "node2"
    lab.set_ready_endpoints("local", ["node3"])
    # no client traffic meanwhile: only node3's takeover announcement can move the kernel's entry
    assert wait_for(lambda: lab.neigh(vip)[0] == "node3", 10), f"client entry: {lab.neigh(vip)}"
    assert lab.wait_sole_answerer(vip) == "node3"
    assert lab.fetch(vip) == "hello from node3"
    assert wait_for(lambda: lab.l2status("local").get("node") == "node3", 10), lab.l2status("local")
    lab.set_ready_endpoints("local", [])
    assert wait_for(lambda: not any(lab.collect_answerers(vip, probes=3)), 10)
    _silent(lab, vip)
    assert wait_for(lambda: lab.l2status("local") == {}, 10), lab.l2status("local")  # nobody announces it


def test_node_and_service_selectors(lab: LabView) -> None:
    try:
        lab.label_node("node3", NODE_LABEL, "yes")
        lab.service("sel", pool="sel")  # lacks the label the serviceSelector asks for
        [vip] = lab.ingress("sel")
        time.sleep(1.0)
        _silent(lab, vip)
        lab.kube.patch(SERVICES, "sel", {"metadata": {"labels": {SVC_LABEL: "yes"}}}, "default")
        assert lab.wait_sole_answerer(vip) == "node3"  # the only node the nodeSelector picks
        assert _owner_by_traffic(lab, vip) == "node3"
        lab.label_node("node1", NODE_LABEL, "yes")
        lab.label_node("node3", NODE_LABEL, None)
        # no probes meanwhile: only node1's takeover announcement can move the kernel's entry
        assert wait_for(lambda: lab.neigh(vip)[0] == "node1", 10), f"client entry: {lab.neigh(vip)}"
        assert lab.wait_sole_answerer(vip, not_="node3") == "node1"
        lab.label_node("node1", NODE_LABEL, None)
        assert wait_for(lambda: not any(lab.collect_answerers(vip, probes=3)), 10)
        _silent(lab, vip)
    finally:
        lab.restore_nodes((NODE_LABEL,))


def test_exclusion_label_and_network_unavailable_move_the_ip(lab: LabView) -> None:
    lab.service("excl")
    [vip] = lab.ingress("excl")
    owner = _owner_by_traffic(lab, vip)
    try:
        lab.label_node(owner, EXCLUDE_LABEL, "true")
        assert wait_for(lambda: lab.neigh(vip)[0] not in (owner, "?"), 10), f"client entry: {lab.neigh(vip)}"
        moved = lab.neigh(vip)[0]  # moved by the takeover announcement (no probes meanwhile)
        assert lab.wait_sole_answerer(vip, not_=owner) == moved
        assert lab.fetch(vip) == f"hello from {moved}"
        assert wait_for(lambda: lab.l2status("excl").get("node") == moved, 10), lab.l2status("excl")
        lab.restore_nodes()
        back = lab.wait_sole_answerer(vip)
        assert back == owner  # same eligible set, same winner
        assert wait_for(lambda: lab.l2status("excl").get("node") == owner, 10), lab.l2status("excl")
        assert wait_for(lambda: lab.neigh(vip)[0] == owner, 10), f"client entry: {lab.neigh(vip)}"
        lab.set_conditions(back, network_unavailable=True)
        assert wait_for(lambda: lab.neigh(vip)[0] not in (back, "?"), 10), f"client entry: {lab.neigh(vip)}"
        moved = lab.neigh(vip)[0]
        assert lab.wait_sole_answerer(vip, not_=back) == moved
        assert lab.fetch(vip) == f"hello from {moved}"
        assert wait_for(lambda: lab.l2status("excl").get("node") == moved, 10), lab.l2status("excl")
    finally:
        lab.restore_nodes()


def test_interfaces_nonexistent_nobody_answers(lab: LabView) -> None:
    lab.service("ifc", pool="ifc")
    [vip] = lab.ingress("ifc")
    time.sleep(1.0)
    _silent(lab, vip)
    adv = lab.kube.get(L2ADVERTISEMENTS, "ifc", SPEAKER_NS)
    try:  # the same advertisement naming the real interface announces it: the silence was the selector's
        lab.kube.patch(L2ADVERTISEMENTS, "ifc", {"spec": {"interfaces": ["eth0"]}}, SPEAKER_NS)
        owner = lab.wait_sole_answerer(vip)
        assert _owner_by_traffic(lab, vip) == owner
    finally:
        lab.kube.patch(L2ADVERTISEMENTS, "ifc", {"spec": {"interfaces": adv["spec"]["interfaces"]}}, SPEAKER_NS)


@pytest.mark.parametrize("family", [4, 6])
def test_link_down_steps_down_and_link_up_converges(lab: LabView, family: int) -> None:
    name = f"flap{family}"
    if family == 4:
        lab.service(name)
    else:
        lab.service(name, pool="v6", families=["IPv6"], policy="SingleStack")
    [vip] = lab.ingress(name)
    owner = _owner_by_traffic(lab, vip)
    assert lab.wait_sole_answerer(vip) == owner
    lab.link(owner, "down")  # the speaker keeps running
    try:
        t0 = time.monotonic()
        other: list[str] = []
        while time.monotonic() - t0 < 2.0 and not other:
            other = [n for n in lab.answerers(vip, timeout=0.05) if n != owner]
        took = time.monotonic() - t0
        assert other, f"no other node answered for {vip} within 2 s of {owner}'s link going down"
        print(f"step-down: {owner} -> {other[0]} answered after {took * 1000:.0f} ms")
        assert wait_for(lambda: lab.neigh(vip)[0] == other[0], 10), f"client entry: {lab.neigh(vip)}"
        assert lab.fetch(vip) == f"hello from {other[0]}"
        assert wait_for(lambda: lab.l2status(name).get("node") == other[0], 10), lab.l2status(name)
    finally:
        lab.link(owner, "up")
    assert lab.wait_sole_answerer(vip, timeout=20) == owner  # same alive set again, same winner
    window = lab.collect_answerers(vip, probes=30)
    assert all(len(w) <= 1 for w in window), f"two answers to one probe: {window}"
    assert {n for w in window for n in w} == {owner}, window
    if family == 4:
        rc, nodes = lab.arping(vip, count=5, dup=True)
        assert rc == 0 and set(nodes) == {owner}, (rc, nodes)
    else:
        assert lab.ndisc6(vip) == owner
    assert wait_for(lambda: lab.neigh(vip)[0] == owner, 10), f"client entry: {lab.neigh(vip)}"
    assert lab.fetch(vip) == f"hello from {owner}"
    assert wait_for(lambda: lab.l2status(name).get("node") == owner, 10), lab.l2status(name)


def _touch(vips: list[str]) -> None:
    """From the client: one TCP connection per VIP, so the kernel holds a neighbour entry for each."""
    for vip in vips:
        with socket.create_connection((vip, 80), timeout=2.0):
            pass


def test_link_flap_claims_no_foreign_ip(lab: LabView) -> None:
    """A node whose link comes back must not announce (GARP) IPs whose owners never went away.

    While cut off, the node's membership view lost every peer; their heartbeats come back one by
    one, and an election run on that partial view would hand it other nodes' IPs for a moment —
    enough for its gratuitous ARPs to move clients' entries to it, where they stay.
    """
    names = [f"many{i}" for i in range(18)]
    for n in names:
        lab.service(n)
    vips = {n: lab.ingress(n)[0] for n in names}
    owners = {n: lab.wait_sole_answerer(v) for n, v in vips.items()}
    flapped = "node1"
    lab.client_thread.call(_touch, list(vips.values()))
    assert {n: lab.neigh(v)[0] for n, v in vips.items()} == owners
    lab.link(flapped, "down")
    try:
        time.sleep(1.0)
    finally:
        lab.link(flapped, "up")
    time.sleep(2.0)  # no client traffic meanwhile: only announcements can move the entries
    moved = {n: (owners[n], lab.neigh(v)[0]) for n, v in vips.items()
             if owners[n] != flapped and lab.neigh(v)[0] != owners[n]}
    assert not moved, f"after {flapped}'s link flap, client entries moved away from live owners: {moved}"
    for n, v in vips.items():
        assert lab.wait_sole_answerer(v) == owners[n]


@pytest.mark.parametrize("family", [4, 6])
def test_duplicate_announcer_raises_metric_and_warning(lab: LabView, family: int) -> None:
    name = f"dup{family}"
    if family == 4:
        lab.service(name)
    else:
        lab.service(name, pool="v6", families=["IPv6"], policy="SingleStack")
    [vip] = lab.ingress(name)
    owner = lab.wait_sole_answerer(vip)
    before = lab.metric(owner, "lbspeaker_l2_conflicts_total")
    # gratuitous ARPs / unsolicited NAs from a foreign MAC for an owned IP, repeated for about 3 s
    schedule = tuple(0.3 * i for i in range(11))
    rogue = lab.client_thread.call(Responder, "eth0", announce_schedule=schedule)
    try:
        rogue.start()
        rogue.set_owned([ipaddress.ip_address(vip)])
        assert wait_for(lambda: lab.metric(owner, "lbspeaker_l2_conflicts_total") > before, 15, 0.5)
        warnings = wait_for(lambda: [e for e in lab.events(name, "DuplicateAnnouncer") if e.get("type") == "Warning"],
                            15, 0.5)
        assert warnings, f"no Warning event DuplicateAnnouncer on default/{name}"
        assert vip in warnings[0]["message"] and owner in warnings[0]["message"]
        time.sleep(max(0.0, schedule[-1] + 1.0))  # let the whole burst arrive
    finally:
        rogue.stop()
    assert lab.metric(owner, "lbspeaker_l2_conflicts_total") >= before + 3  # every claim is counted...
    assert len(lab.events(name, "DuplicateAnnouncer")) == 1  # ...but one ongoing conflict is one Event


def _reach(vip: str, deadline: float) -> tuple[float, str]:
    """From the client: retry a one-shot HTTP GET until it answers; (monotonic time of the answer, body)."""
    last = ""
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((vip, 80), timeout=0.2) as s:
                s.settimeout(0.5)
                s.sendall(b"GET / HTTP/1.0\r\nHost: vip\r\n\r\n")
                data = b""
                while chunk := s.recv(4096):
                    data += chunk
            return time.monotonic(), data.decode(errors="replace").split("\r\n\r\n", 1)[-1].strip()
        except OSError as err:
            last = str(err)
            time.sleep(0.01)
    raise AssertionError(f"{vip} unreachable until the deadline: {last}")


def test_api_down_failover_and_status_after_recovery(lab: LabView) -> None:
    lab.service("apidown")
    [vip] = lab.ingress("apidown")
    owner = _owner_by_traffic(lab, vip)
    assert wait_for(lambda: lab.l2status("apidown").get("node") == owner, 10)
    api = procs.recorded_pids(lab.topo.state_dir)["apiserver"]
    try:
        os.kill(api, signal.SIGSTOP)
        try:
            procs.kill_one(lab.topo.state_dir, f"speaker-{owner}", signal.SIGKILL)
            lab.link(owner, "down")
            t0 = time.monotonic()
            t1, body = lab.client_thread.call(_reach, vip, t0 + 5.0)
            print(f"api-down failover: reached {vip} again after {(t1 - t0) * 1000:.0f} ms: {body}")
            new_owner = body.removeprefix("hello from ")
            assert new_owner != owner and new_owner in lab.macs
            assert t1 - t0 <= 2.0, f"client reached {vip} only {t1 - t0:.2f}s after the owner died"
            assert lab.neigh(vip)[0] == new_owner
        finally:
            os.kill(api, signal.SIGCONT)
        assert wait_for(lambda: lab.l2status("apidown").get("node") == new_owner, 30, 0.5), lab.l2status("apidown")
    finally:
        lab.link(owner, "up")
        lab.respawn_speaker(owner)
    assert lab.wait_sole_answerer(vip, timeout=20) == owner  # back with the same alive set
    assert wait_for(lambda: lab.neigh(vip)[0] == owner, 10), f"client entry: {lab.neigh(vip)}"
    assert wait_for(lambda: lab.l2status("apidown").get("node") == owner, 15, 0.5), lab.l2status("apidown")

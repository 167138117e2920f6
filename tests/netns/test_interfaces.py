"""Automatic interface selection on VirtualBox-shaped nodes (enp0s3 = NAT, enp0s8 = host-only LAN).

One private 2-NIC lab (prefix ``lbt-ifs-``) whose speakers get no ``--interface``. Who answers is
seen from both networks: the LAN client (raw prober + its kernel's neighbour table + HTTP) and a
probe namespace on the NAT network. Each test deletes its Services and restores its links.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from lbspeaker.core.errors import ApiError
from lbspeaker.k8s.client import ENDPOINTSLICES, SERVICES
from lbspeaker.lab.netns import ip
from lbspeaker.lab.topology import LAN_IF_VBOX, NAT_IF
from tests.netns.lab_fixture import LabView, l2adv, pool, wait_for
from tests.netns.vbox_lab import NatSide, l2_metric, vbox_lab

pytestmark = [pytest.mark.netns, pytest.mark.slow]

CONFIG = [
    pool("natif", ["192.0.2.150-192.0.2.159"]),
    l2adv("natif", ["natif"], interfaces=[NAT_IF]),
    pool("v6", ["2001:db8:100::200-2001:db8:100::2ff"]),
    l2adv("v6", ["v6"]),
    pool("natv6", ["2001:db8:51::200-2001:db8:51::2ff"]),
    l2adv("natv6", ["natv6"]),
]


@pytest.fixture(scope="module")
def labs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LabView, NatSide]]:
    with vbox_lab(tmp_path_factory.mktemp("ifs"), prefix="lbt-ifs-", mgmt_index=7, config=CONFIG) as got:
        yield got


@contextlib.contextmanager
def service(lab: LabView, name: str, **kw: object) -> Iterator[str]:
    """A LoadBalancer Service (deleted on exit, so its VIP stops counting for health); yields its VIP."""
    lab.service(name, **kw)  # type: ignore[arg-type]
    try:
        [vip] = lab.ingress(name)
        yield vip
    finally:
        for res in (SERVICES, ENDPOINTSLICES):
            with contextlib.suppress(ApiError):
                lab.kube.delete(res, name, "default")


def _never(probe: object, *, probes: int = 5) -> None:
    """No answer in ``probes`` bounded probes (each waits 0.3 s)."""
    got = [probe() for _ in range(probes)]  # type: ignore[operator]
    assert got == [[]] * probes, f"expected silence, got answers {got}"


def _l2_interfaces(lab: LabView, name: str, node: str) -> list[str]:
    st: list[str] = wait_for(lambda: lab.l2status(name).get("node") == node and lab.l2status(name).get("interfaces"),
                             15) or []
    return list(lab.l2status(name).get("interfaces") or st)


def test_lan_vip_answered_on_the_lan_nic_only(labs: tuple[LabView, NatSide]) -> None:
    lab, nat = labs
    with service(lab, "lanweb") as vip:
        owner = lab.wait_sole_answerer(vip)  # by the LAN-NIC MAC (LabView maps enp0s8 MACs)
        assert lab.fetch(vip) == f"hello from {owner}"
        assert lab.neigh(vip)[0] == owner  # the client kernel resolved it to the LAN-NIC MAC
        assert nat.answerers(str(lab.topo.nat_v4(lab.topo.node(1)).ip)), "control: NAT probe hears the NAT side"
        _never(lambda: nat.answerers(vip))
        assert _l2_interfaces(lab, "lanweb", owner) == [LAN_IF_VBOX]
        announced = wait_for(lambda: l2_metric(lab.topo, owner, "lbspeaker_l2_announced").get(LAN_IF_VBOX) == 1
                             and l2_metric(lab.topo, owner, "lbspeaker_l2_announced"), 10)
        assert announced == {LAN_IF_VBOX: 1.0}, announced


def test_l2advertisement_interfaces_move_answers_to_the_nat_nic(labs: tuple[LabView, NatSide]) -> None:
    lab, nat = labs
    with service(lab, "natweb", pool="natif") as vip:
        assert vip.startswith("192.0.2.15")
        owners = wait_for(lambda: sorted(set(nat.answerers(vip))), 15)
        assert len(owners) == 1 and owners[0] != "?", owners
        _never(lambda: lab.answerers(vip))  # the LAN, where its subnet is, hears nothing
        assert _l2_interfaces(lab, "natweb", owners[0]) == [NAT_IF]


def test_ipv6_vip_goes_to_the_nic_with_the_matching_64(labs: tuple[LabView, NatSide]) -> None:
    lab, nat = labs
    with service(lab, "lan6", pool="v6", families=["IPv6"], policy="SingleStack") as vip:
        owner = lab.wait_sole_answerer(vip)
        assert lab.fetch(vip) == f"hello from {owner}"
        _never(lambda: nat.answerers(vip))
        assert _l2_interfaces(lab, "lan6", owner) == [LAN_IF_VBOX]
    with service(lab, "nat6", pool="natv6", families=["IPv6"], policy="SingleStack") as vip:
        owners = wait_for(lambda: sorted(set(nat.answerers(vip))), 15)
        assert len(owners) == 1 and owners[0] != "?", owners
        _never(lambda: lab.answerers(vip))
        assert _l2_interfaces(lab, "nat6", owners[0]) == [NAT_IF]


def test_nat_nic_down_keeps_the_vip_lan_nic_down_moves_it(labs: tuple[LabView, NatSide]) -> None:
    lab, _nat = labs
    with service(lab, "health") as vip:
        owner = lab.wait_sole_answerer(vip)
        ns = lab.topo.node_ns(owner)
        try:
            ip("link", "set", NAT_IF, "down", ns=ns)
            seen = lab.collect_answerers(vip, probes=10, interval=0.3)  # ~3 s: more than a resync
            assert seen == [[owner]] * 10, f"{owner} stepped down for its NAT NIC: {seen}"
            assert lab.speaker_ready(owner)
            ip("link", "set", LAN_IF_VBOX, "down", ns=ns)
            other = lab.wait_sole_answerer(vip, timeout=5, not_=owner)
            assert other != owner
            assert wait_for(lambda: not lab.speaker_ready(owner), 5), f"{owner} still ready with its LAN NIC down"
        finally:
            for dev in (NAT_IF, LAN_IF_VBOX):
                ip("link", "set", dev, "up", ns=ns)
        lab.wait_settled()

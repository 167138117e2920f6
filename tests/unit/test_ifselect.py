"""Automatic interface selection: the subnet rule, exclusions, L2Advertisement restriction, fixed lists."""

from __future__ import annotations

import ipaddress

import pytest

from lbspeaker.core.config import Config, L2Advertisement, Pool
from lbspeaker.core.ifselect import LinkInfo, advertised_interfaces, excluded, select_interfaces
from lbspeaker.core.labels import parse_selector
from lbspeaker.core.ranges import IPRange


def link(name: str, *addrs: str, up: bool = True) -> LinkInfo:
    return LinkInfo(name, up, tuple(ipaddress.ip_interface(a) for a in addrs))


VBOX = (
    link("lo", "127.0.0.1/8", "::1/128"),
    link("enp0s3", "10.0.2.15/24", "2001:db8:51::15/64"),  # NAT
    link("enp0s8", "192.0.2.11/24", "2001:db8:100::11/64"),  # host-only LAN
    link("kube-ipvs0", "192.0.2.200/32", "203.0.113.9/32"),  # VIPs bound by kube-proxy
    link("cni0", "10.244.0.1/24"),
)


@pytest.mark.parametrize(("name", "out"), [
    ("lo", True), ("cni0", True), ("veth1a2b", True), ("docker0", True), ("kube-ipvs0", True),
    ("cali123", True), ("flannel.1", True), ("vxlan.calico", True), ("tunl0", True), ("br-1f2e", True),
    ("eth0", False), ("enp0s8", False), ("bond0", False), ("wlan0", False), ("lowpan0", False),
])
def test_excluded(name: str, out: bool) -> None:
    assert excluded(name) is out


@pytest.mark.parametrize(("vip", "links", "restrict", "fixed", "want"), [
    ("192.0.2.200", VBOX, (), (), ("enp0s8",)),  # LAN subnet; kube-ipvs0's /32 is no subnet
    ("2001:db8:100::200", VBOX, (), (), ("enp0s8",)),  # IPv6 goes to the matching /64
    ("2001:db8:51::9", VBOX, (), (), ("enp0s3",)),
    ("10.0.2.99", VBOX, (), (), ("enp0s3",)),
    ("10.244.0.50", VBOX, (), (), ("enp0s3", "enp0s8")),  # only an excluded link holds it: fallback
    ("203.0.113.9", VBOX, (), (), ("enp0s3", "enp0s8")),  # no subnet anywhere: every usable up link
    ("203.0.113.9", (link("a", up=False), link("b"), link("lo")), (), (), ("b",)),  # fallback skips down
    ("192.0.2.200", (link("enp0s3", "10.0.2.15/24"), link("enp0s8", "192.0.2.11/24", up=False)), (), (),
     ("enp0s8",)),  # a down LAN NIC stays selected: the node must step down, not move to NAT
    ("192.0.2.200", (link("e1", "192.0.2.1/25"), link("e2", "192.0.2.129/25")), (), (), ("e2",)),
    ("192.0.2.200", (link("e1", "192.0.2.1/24"), link("e2", "192.0.2.2/24")), (), (), ("e1", "e2")),
    ("192.0.2.200", VBOX, ("enp0s3",), (), ("enp0s3",)),  # restriction beats the subnet
    ("192.0.2.200", VBOX, ("nonexistent0", "enp0s8"), (), ("enp0s8",)),
    ("192.0.2.200", VBOX, ("nonexistent0",), (), ()),
    ("192.0.2.200", VBOX, ("cni0",), (), ("cni0",)),  # named explicitly: exclusions do not apply
    ("192.0.2.200", (), (), ("eth0", "eth1"), ("eth0", "eth1")),  # fixed list: links not consulted
    ("192.0.2.200", VBOX, ("eth1",), ("eth0", "eth1"), ("eth1",)),
    ("192.0.2.200", VBOX, ("enp0s8",), ("eth0",), ()),
])
def test_select_interfaces(vip: str, links: tuple[LinkInfo, ...], restrict: tuple[str, ...],
                           fixed: tuple[str, ...], want: tuple[str, ...]) -> None:
    assert select_interfaces(ipaddress.ip_address(vip), links, restrict=restrict, fixed=fixed) == want


def _config() -> Config:
    def pool(name: str, start: str, end: str) -> Pool:
        return Pool(name, (IPRange(ipaddress.ip_address(start), ipaddress.ip_address(end)),))

    zone_a = parse_selector({"matchLabels": {"zone": "a"}}, kind="L2Advertisement", name="t", field="nodeSelectors")
    return Config(
        pools={"lan": pool("lan", "192.0.2.200", "192.0.2.210"), "nat": pool("nat", "203.0.113.1", "203.0.113.5"),
               "dark": pool("dark", "203.0.113.20", "203.0.113.25")},
        l2_advertisements=(
            L2Advertisement("all", frozenset({"lan"})),
            L2Advertisement("nat-a", frozenset({"nat"}), node_selectors=(zone_a,), interfaces=("enp0s3",)),
            L2Advertisement("nat-b", frozenset({"nat"}), interfaces=("enp0s9",)),
        ),
    )


@pytest.mark.parametrize(("vip", "labels", "want"), [
    ("192.0.2.201", {}, ()),
    ("203.0.113.2", {"zone": "a"}, ("enp0s3", "enp0s9")),
    ("203.0.113.2", {"zone": "b"}, ("enp0s9",)),
    ("203.0.113.21", {}, None),  # pool without an advertisement
    ("198.51.100.1", {}, None),  # in no pool
])
def test_advertised_interfaces(vip: str, labels: dict[str, str], want: tuple[str, ...] | None) -> None:
    assert advertised_interfaces(ipaddress.ip_address(vip), _config(), node_labels=labels) == want

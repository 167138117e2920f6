"""The BGP config parser: accepted shapes, and rejections naming object and field."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from lbspeaker.core.bgp.config import SecretRef, parse_bgp
from lbspeaker.core.bgp.values import LargeCommunity, StandardCommunity
from lbspeaker.core.config import IPRange, Pool

NS = "lbspeaker-system"


def obj(kind_name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": kind_name, "namespace": NS}, "spec": spec}


def peer(name: str = "r1", **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"myASN": 64513, "peerASN": 64512, "peerAddress": "192.0.2.1"}
    base.update(spec)
    return obj(name, **base)


POOLS = {
    "v4": Pool(
        "v4",
        (IPRange(ipaddress.ip_address("203.0.113.0"), ipaddress.ip_address("203.0.113.255")),),
        labels=(("tier", "web"),),
    ),
    "small": Pool("small", (IPRange(ipaddress.ip_address("198.51.100.10"), ipaddress.ip_address("198.51.100.11")),)),
    "v6": Pool("v6", (IPRange(ipaddress.ip_address("2001:db8:1::"), ipaddress.ip_address("2001:db8:1::ffff")),)),
}


def test_full_peer_and_defaults() -> None:
    res = parse_bgp(
        peers=[
            peer(
                holdTime="9s",
                keepaliveTime="3s",
                sourceAddress="192.0.2.2",
                routerID="192.0.2.2",
                passwordSecret={"name": "md5"},
                ebgpMultiHop=True,
                nodeSelectors=[{"matchLabels": {"bgp": "yes"}}],
                bfdProfile="fast",
                enableGracefulRestart=True,
            ),
            peer("r2", peerAddress="2001:db8::1"),
        ],
        bfd_profiles=[obj("fast", receiveInterval=100, transmitInterval=100, detectMultiplier=3)],
    )
    assert res.errors == ()
    p = res.config.peers["r1"]
    assert (p.hold_time_s, p.keepalive_time_s, p.ebgp_multihop, p.bfd_profile) == (9, 3, True, "fast")
    assert p.password_secret == SecretRef(NS, "md5")
    assert p.selects_node({"bgp": "yes"}) and not p.selects_node({})
    d = res.config.peers["r2"]
    assert (d.hold_time_s, d.keepalive_time_s, d.peer_port, d.enable_graceful_restart) == (90, 30, 179, False)
    assert res.config.bfd_profiles["fast"].receive_interval_ms == 100


@pytest.mark.parametrize(
    ("spec", "field", "cause"),
    [
        ({"holdTime": "2s"}, "spec.holdTime", "must be 0 or between 3s"),
        ({"holdTime": "3500ms"}, "spec.holdTime", "whole number of seconds"),
        ({"holdTime": "9s", "keepaliveTime": "10s"}, "spec.keepaliveTime", "must not exceed holdTime"),
        ({"holdTime": "9s", "keepaliveTime": "0s"}, "spec.keepaliveTime", "above 0"),
        ({"myASN": 64512, "ebgpMultiHop": True}, "spec.ebgpMultiHop", "only for eBGP"),
        ({"myASN": 0}, "spec.myASN", "outside"),
        ({"peerASN": None}, "spec.peerASN", "missing"),
        ({"peerAddress": "192.0.2.300"}, "spec.peerAddress", "not an IP address"),
        ({"sourceAddress": "2001:db8::2"}, "spec.sourceAddress", "not of the family"),
        ({"routerID": "2001:db8::2"}, "spec.routerID", "must be an IPv4 address"),
        ({"password": "x", "passwordSecret": {"name": "s"}}, "spec.passwordSecret", "mutually exclusive"),
        ({"password": "x" * 81}, "spec.password", "TCP MD5 limit"),
        ({"passwordSecret": {}}, "spec.passwordSecret.name", "non-empty"),
        ({"bfdProfile": "nope"}, "spec.bfdProfile", "does not exist"),
        ({"peerPort": 0}, "spec.peerPort", "1-65535"),
        ({"connectTime": "500ms"}, "spec.connectTime", "between 1s"),
        (
            {"nodeSelectors": [{"matchExpressions": [{"key": "a", "operator": "Is"}]}]},
            "operator",
            "not one of",
        ),
    ],
)
def test_peer_rejected(spec: dict[str, Any], field: str, cause: str) -> None:
    res = parse_bgp(peers=[peer(**spec), peer("ok")])
    assert list(res.config.peers) == ["ok"]
    (err,) = res.errors
    assert err.kind == "BGPPeer" and err.name == f"{NS}/r1"
    assert field in err.field and cause in err.cause
    assert str(err).startswith(f"parsing BGPPeer '{NS}/r1': {err.field}: ")


def test_hold_zero_allows_zero_keepalive() -> None:
    res = parse_bgp(peers=[peer(holdTime=0)])
    assert res.errors == ()
    assert (res.config.peers["r1"].hold_time_s, res.config.peers["r1"].keepalive_time_s) == (0, 0)


@pytest.mark.parametrize(
    ("spec", "field", "cause"),
    [
        ({"receiveInterval": 5}, "spec.receiveInterval", "10-60000"),
        ({"detectMultiplier": 1}, "spec.detectMultiplier", "2-255"),
        ({"passiveMode": "yes"}, "spec.passiveMode", "true or false"),
    ],
)
def test_bfd_rejected(spec: dict[str, Any], field: str, cause: str) -> None:
    res = parse_bgp(bfd_profiles=[obj("p", **spec)], peers=[peer(bfdProfile="p")])
    assert [e.kind for e in res.errors] == ["BFDProfile", "BGPPeer"]
    assert res.errors[0].field == field and cause in res.errors[0].cause
    assert "does not exist" in res.errors[1].cause


def test_advertisement_resolves_names() -> None:
    res = parse_bgp(
        peers=[peer()],
        communities=[obj("c", communities=[{"name": "vpn-only", "value": "large:1:2:3"}])],
        advertisements=[
            obj(
                "a",
                ipAddressPools=["v4"],
                communities=["65000:100", "vpn-only", "65000:100"],
                localPref=200,
                peers=["r1"],
                aggregationLength=24,
            )
        ],
        pools=POOLS,
    )
    assert res.errors == ()
    (adv,) = res.config.advertisements
    assert adv.communities == (StandardCommunity(65000, 100), LargeCommunity(1, 2, 3))
    assert (adv.local_pref, adv.aggregation_length, adv.aggregation_length_v6) == (200, 24, 128)
    assert adv.selects_pool(POOLS["v4"]) and not adv.selects_pool(POOLS["v6"])


@pytest.mark.parametrize(
    ("spec", "field", "cause"),
    [
        ({"communities": ["nope"]}, "spec.communities[0]", "no Community defines 'nope'"),
        ({"communities": ["65536:1"]}, "spec.communities[0]", "16 bits"),
        ({"peers": ["r9"]}, "spec.peers[0]", "BGPPeer 'r9' does not exist"),
        ({"ipAddressPools": ["zz"]}, "spec.ipAddressPools[0]", "IPAddressPool 'zz' does not exist"),
        ({"aggregationLength": 33}, "spec.aggregationLength", "0-32"),
        ({"ipAddressPools": ["small"], "aggregationLength": 24}, "spec.aggregationLength", "outside"),
        ({"ipAddressPools": ["v4"], "aggregationLength": 16}, "spec.aggregationLength", "'203.0.113.0/24'"),
        ({"ipAddressPools": ["v6"], "aggregationLengthV6": 64}, "spec.aggregationLengthV6", "outside"),
        ({"ipAddressPoolSelectors": [{"matchLabels": {"tier": "web"}}], "aggregationLength": 8}, "", "'v4'"),
        ({"localPref": -1}, "spec.localPref", "0-4294967295"),
    ],
)
def test_advertisement_rejected(spec: dict[str, Any], field: str, cause: str) -> None:
    res = parse_bgp(peers=[peer()], advertisements=[obj("a", **spec)], pools=POOLS)
    assert res.config.advertisements == ()
    (err,) = res.errors
    assert err.kind == "BGPAdvertisement" and err.name == f"{NS}/a"
    assert field in err.field and cause in err.cause


def test_aggregation_fits_pool_cidr() -> None:
    res = parse_bgp(advertisements=[obj("a", ipAddressPools=["v4"], aggregationLength=24)], pools=POOLS)
    assert res.errors == ()


@pytest.mark.parametrize(
    ("entries", "field", "cause"),
    [
        ([{"name": "65000:1", "value": "1:1"}], "spec.communities[0].name", "looks like a community value"),
        ([{"name": "x", "value": "bad"}], "spec.communities[0].value", "neither"),
        ([{"name": "x", "value": "1:1"}, {"name": "x", "value": "1:2"}], "spec.communities[1].name", "twice"),
    ],
)
def test_community_rejected(entries: list[dict[str, str]], field: str, cause: str) -> None:
    res = parse_bgp(communities=[obj("c", communities=entries)])
    (err,) = res.errors
    assert (err.kind, err.field) == ("Community", field) and cause in err.cause
    assert res.config.communities == {}


def test_missing_name_and_bad_spec() -> None:
    res = parse_bgp(peers=[{"metadata": {}, "spec": {}}, {"metadata": {"name": "x"}, "spec": []}])
    assert [(e.field, e.cause) for e in res.errors] == [
        ("metadata.name", "missing"),
        ("spec", "must be an object"),
    ]


def test_sample_manifest_is_valid() -> None:
    import pathlib

    import yaml

    path = pathlib.Path(__file__).parents[3] / "config" / "samples" / "bgp.yaml"
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    pools = {
        "bgp": Pool(
            "bgp",
            (
                IPRange(ipaddress.ip_address("203.0.113.0"), ipaddress.ip_address("203.0.113.255")),
                IPRange(ipaddress.ip_address("2001:db8:5::"), ipaddress.ip_address("2001:db8:5::ffff")),
            ),
        )
    }
    res = parse_bgp(
        peers=by_kind["BGPPeer"],
        advertisements=by_kind["BGPAdvertisement"],
        bfd_profiles=by_kind["BFDProfile"],
        communities=by_kind["Community"],
        pools=pools,
    )
    assert res.errors == ()
    assert sorted(res.config.peers) == ["reflector", "tor-v4", "tor-v6"]
    assert len(res.config.advertisements) == 2

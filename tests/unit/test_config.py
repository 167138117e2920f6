"""parse_config: pools, L2Advertisements, and the errors users see."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from lbspeaker.core.config import IPRange, parse_config
from lbspeaker.core.ranges import RangeSyntaxError, count_buggy, is_buggy, parse_range


def pool(
    name: str, *addresses: Any, created: str = "", labels: dict[str, str] | None = None, **spec: Any
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "lbspeaker-system"}
    if created:
        meta["creationTimestamp"] = created
    if labels:
        meta["labels"] = labels
    return {"metadata": meta, "spec": {"addresses": list(addresses), **spec}}


def l2(name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "lbspeaker-system"}, "spec": spec}


def ip(s: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(s)


@pytest.mark.parametrize(
    ("text", "first", "last"),
    [
        ("192.0.2.0/30", "192.0.2.0", "192.0.2.3"),
        ("192.0.2.10-192.0.2.20", "192.0.2.10", "192.0.2.20"),
        (" 192.0.2.10 - 192.0.2.10 ", "192.0.2.10", "192.0.2.10"),
        ("192.0.2.7", "192.0.2.7", "192.0.2.7"),
        ("2001:db8::/64", "2001:db8::", "2001:db8::ffff:ffff:ffff:ffff"),
        ("2001:db8::1-2001:db8::9", "2001:db8::1", "2001:db8::9"),
    ],
)
def test_parse_range_accepts(text: str, first: str, last: str) -> None:
    assert parse_range(text) == IPRange(ip(first), ip(last))


@pytest.mark.parametrize(
    ("text", "cause"),
    [
        ("192.0.2.10-192.0.2.1", "start after end"),
        ("192.0.2.5/24", "host bits set, did you mean '192.0.2.0/24'?"),
        ("192.0.2.1-2001:db8::1", "start and end are of different IP families"),
        ("banana", "'banana' is not an IP address"),
        ("192.0.2.0/33", "not a CIDR"),
        ("", "empty address"),
    ],
)
def test_parse_range_rejects(text: str, cause: str) -> None:
    with pytest.raises(RangeSyntaxError) as err:
        parse_range(text)
    assert str(err.value).startswith(cause)


@pytest.mark.parametrize(
    ("first", "last", "expected"),
    [(0, 255, 2), (1, 254, 0), (255, 256, 2), (254, 257, 2), (0, 0, 1), (256 * 4, 256 * 6 - 1, 4)],
)
def test_count_buggy_matches_enumeration(first: int, last: int, expected: int) -> None:
    assert count_buggy(first, last, 4) == expected == sum(is_buggy(v, 4) for v in range(first, last + 1))


def test_lab_sample_parses() -> None:
    res = parse_config(
        pools=[pool("lab", "192.0.2.200-192.0.2.250")], l2_advertisements=[l2("lab", ipAddressPools=["lab"])]
    )
    assert res.ok and not res.warnings
    p = res.config.pools["lab"]
    assert p.ranges == (IPRange(ip("192.0.2.200"), ip("192.0.2.250")),)
    assert p.auto_assign and not p.avoid_buggy_ips and p.priority is None
    assert res.config.l2_advertisements[0].pools == frozenset({"lab"})


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (
            pool("lab", "192.0.2.1", "192.0.2.10-192.0.2.1"),
            "parsing IPAddressPool 'lab': spec.addresses[1]: '192.0.2.10-192.0.2.1': start after end",
        ),
        (
            pool("lab", "192.0.2.0/28", "192.0.2.8-192.0.2.20"),
            "parsing IPAddressPool 'lab': spec.addresses[1]: '192.0.2.8-192.0.2.20' overlaps '192.0.2.0/28' "
            "(spec.addresses[0])",
        ),
        (pool("lab"), "parsing IPAddressPool 'lab': spec.addresses: must be a non-empty list"),
        (pool("lab", 7), "parsing IPAddressPool 'lab': spec.addresses[0]: must be a string, got '7'"),
        (
            pool("lab", "192.0.2.1", autoAssign="yes"),
            "parsing IPAddressPool 'lab': spec.autoAssign: must be true or false",
        ),
        (
            pool("lab", "192.0.2.1", serviceAllocation={"priority": -1}),
            "parsing IPAddressPool 'lab': spec.serviceAllocation.priority: must be an integer >= 0",
        ),
        (
            pool(
                "lab",
                "192.0.2.1",
                serviceAllocation={"serviceSelectors": [{"matchExpressions": [{"key": "a", "operator": "Is"}]}]},
            ),
            "parsing IPAddressPool 'lab': spec.serviceAllocation.serviceSelectors[0].matchExpressions[0].operator",
        ),
        ({"metadata": {"name": "lab"}}, "parsing IPAddressPool 'lab': spec: must be an object"),
    ],
)
def test_invalid_pool_left_out_with_field_path(obj: dict[str, Any], message: str) -> None:
    res = parse_config(pools=[obj, pool("other", "198.51.100.0/24")], l2_advertisements=[])
    assert list(res.config.pools) == ["other"]
    assert len(res.errors) == 1 and str(res.errors[0]).startswith(message)


def test_overlap_across_pools_rejects_the_newer_naming_both() -> None:
    old = pool("old", "192.0.2.0/24", created="2026-01-01T00:00:00Z")
    new = pool("aaa-new", "198.51.100.0/24", "192.0.2.128/25", created="2026-02-01T00:00:00Z")
    res = parse_config(pools=[new, old], l2_advertisements=[])
    assert list(res.config.pools) == ["old"]
    (err,) = res.errors
    assert (err.kind, err.name, err.field) == ("IPAddressPool", "aaa-new", "spec.addresses[1]")
    assert err.cause == "'192.0.2.128/25' overlaps '192.0.2.0/24' of IPAddressPool 'old'"


def test_ipv4_and_ipv6_do_not_overlap_each_other() -> None:
    res = parse_config(pools=[pool("a", "0.0.0.0/0"), pool("b", "::/0")], l2_advertisements=[])
    assert res.ok and set(res.config.pools) == {"a", "b"}
    assert res.config.pools["a"].families == frozenset({4})


def test_service_allocation_fields() -> None:
    res = parse_config(
        pools=[
            pool(
                "p",
                "192.0.2.0/28",
                avoidBuggyIPs=True,
                autoAssign=False,
                serviceAllocation={
                    "priority": 5,
                    "namespaces": ["a"],
                    "namespaceSelectors": [{"matchLabels": {"team": "x"}}],
                    "serviceSelectors": [{"matchLabels": {"app": "web"}}],
                },
            )
        ],
        l2_advertisements=[],
        namespaces=[{"metadata": {"name": "b", "labels": {"team": "x"}}}],
    )
    p = res.config.pools["p"]
    assert (p.priority, p.auto_assign, p.avoid_buggy_ips, p.namespaces) == (5, False, True, frozenset({"a"}))
    ns = res.config.namespace_labels
    web = {"app": "web"}
    assert p.allows("a", namespace_labels={}, service_labels=web)
    assert p.allows("b", namespace_labels=ns["b"], service_labels=web)
    assert not p.allows("c", namespace_labels={}, service_labels=web)
    assert not p.allows("a", namespace_labels={}, service_labels={"app": "db"})


def test_priority_orders_pools_and_zero_means_none() -> None:
    res = parse_config(
        pools=[
            pool("z", "192.0.2.1", serviceAllocation={"priority": 0}),
            pool("b", "192.0.2.2", serviceAllocation={"priority": 20}),
            pool("a", "192.0.2.3"),
            pool("c", "192.0.2.4", serviceAllocation={"priority": 10}),
        ],
        l2_advertisements=[],
    )
    assert [p.name for p in res.config.ordered_pools()] == ["c", "b", "a", "z"]


@pytest.mark.parametrize(
    ("spec", "pools", "warning"),
    [
        ({}, {"lab", "prod"}, None),
        ({"ipAddressPools": ["lab"]}, {"lab"}, None),
        (
            {"ipAddressPools": ["lab", "gone"]},
            {"lab"},
            "spec.ipAddressPools[1]: IPAddressPool 'gone' does not exist",
        ),
        ({"ipAddressPoolSelectors": [{"matchLabels": {"env": "prod"}}]}, {"prod"}, None),
        ({"ipAddressPools": ["gone"]}, set(), "spec.ipAddressPools[0]"),
    ],
)
def test_l2advertisement_pool_resolution(spec: dict[str, Any], pools: set[str], warning: str | None) -> None:
    res = parse_config(
        pools=[pool("lab", "192.0.2.0/28"), pool("prod", "198.51.100.0/28", labels={"env": "prod"})],
        l2_advertisements=[l2("adv", **spec)],
    )
    assert res.ok
    assert res.config.l2_advertisements[0].pools == frozenset(pools)
    assert [str(w) for w in res.warnings if warning and warning in str(w)] == [str(w) for w in res.warnings]
    assert bool(res.warnings) == bool(warning)


def test_l2advertisement_fields_and_errors() -> None:
    res = parse_config(
        pools=[],
        l2_advertisements=[
            l2(
                "ok",
                interfaces=["eth0"],
                nodeSelectors=[{"matchLabels": {"a": "b"}}],
                serviceSelectors=[{"matchLabels": {"c": "d"}}],
            ),
            l2("bad", interfaces="eth0"),
        ],
    )
    (adv,) = res.config.l2_advertisements
    assert adv.interfaces == ("eth0",) and adv.node_selectors[0].matches({"a": "b"})
    assert adv.service_selectors[0].matches({"c": "d"})
    assert [str(e) for e in res.errors] == [
        "parsing L2Advertisement 'bad': spec.interfaces: must be a list of non-empty strings"
    ]


def test_duplicate_and_missing_names() -> None:
    res = parse_config(pools=[pool("a", "192.0.2.1"), pool("a", "192.0.2.2"), {"spec": {}}], l2_advertisements=[])
    assert sorted(str(e) for e in res.errors) == [
        "parsing IPAddressPool '?': metadata.name: missing",
        "parsing IPAddressPool 'a': metadata.name: duplicate name",
    ]

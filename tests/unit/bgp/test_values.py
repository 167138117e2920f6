"""Durations, ASNs and community values."""

from __future__ import annotations

import pytest

from lbspeaker.core.bgp.values import (
    LargeCommunity,
    StandardCommunity,
    looks_like_community,
    parse_asn,
    parse_community,
    parse_duration_ms,
)


@pytest.mark.parametrize(
    ("raw", "ms"),
    [
        ("90s", 90_000),
        ("1m30s", 90_000),
        ("300ms", 300),
        ("0", 0),
        (0, 0),
        (3, 3000),
        ("1.5s", 1500),
        ("1h", 3_600_000),
    ],
)
def test_duration_ok(raw: object, ms: int) -> None:
    assert parse_duration_ms(raw) == ms


@pytest.mark.parametrize("raw", ["", "90", "s", "10x", "1s 2s", -1, True, None, "1s-"])
def test_duration_bad(raw: object) -> None:
    with pytest.raises(ValueError, match=r"duration|negative"):
        parse_duration_ms(raw)


@pytest.mark.parametrize(("raw", "ok"), [(1, True), (4294967295, True), (0, False), (2**32, False), ("64512", False)])
def test_asn(raw: object, ok: bool) -> None:
    if ok:
        assert parse_asn(raw) == raw
    else:
        with pytest.raises(ValueError):
            parse_asn(raw)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("65000:100", StandardCommunity(65000, 100)),
        ("0:0", StandardCommunity(0, 0)),
        ("large:1:2:3", LargeCommunity(1, 2, 3)),
        ("large:4294967295:0:7", LargeCommunity(4294967295, 0, 7)),
    ],
)
def test_community_ok(raw: str, value: object) -> None:
    assert parse_community(raw) == value
    assert str(value) == raw.removeprefix("large:")


@pytest.mark.parametrize(
    ("raw", "cause"),
    [
        ("65536:1", "does not fit in 16 bits"),
        ("1:2:3", "neither"),
        ("large:1:2", "large community is"),
        ("large:1:2:4294967296", "does not fit in 32 bits"),
        ("a:1", "not a number"),
        (7, "not a string"),
    ],
)
def test_community_bad(raw: object, cause: str) -> None:
    with pytest.raises(ValueError, match=cause):
        parse_community(raw)


@pytest.mark.parametrize(("raw", "value"), [("65000:1", True), ("large:1:2:3", True), ("no-export-ish", False)])
def test_looks_like_community(raw: str, value: bool) -> None:
    assert looks_like_community(raw) is value

"""What a ConfigurationState says (lbspeaker.core.configstate): results, bounds, restart seeding."""

from __future__ import annotations

from typing import Any

from lbspeaker.core import configstate
from lbspeaker.core.lastgood import LastGood
from lbspeaker.core.loader import RawConfig
from lbspeaker.core.ranges import parse_range


def R(text: str) -> str:
    return str(parse_range(text))


def pool(name: str, *addresses: str, uid: str = "", big: str = "") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": uid or f"uid-{name}", "resourceVersion": "7",
                            "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {"team": "x"}}
    if big:
        meta["annotations"] = {"big": big}
    return {"kind": "IPAddressPool", "metadata": meta, "spec": {"addresses": list(addresses), "note": big}}


def raw(*objs: dict[str, Any]) -> RawConfig:
    return RawConfig.of({"IPAddressPool": list(objs)})


def test_valid_stale_invalid() -> None:
    lg = LastGood()
    good = raw(pool("a", "192.0.2.0/28"))
    assert configstate.result_of(lg.update(good)) == "Valid"
    bad = raw(pool("a", "192.0.2.9-192.0.2.1"))
    out = lg.update(bad)
    st = configstate.status_of(out, lg.good, component="speaker", node="n1")
    assert st["result"] == "Stale" and st["node"] == "n1"
    assert st["errors"][0]["field"] == "spec.addresses[0]" and st["errors"][0]["inForce"] is True
    assert configstate.STALE_NOTE in st["errorSummary"]
    assert st["lastGood"][0]["spec"] == {"addresses": ["192.0.2.0/28"], "note": ""}
    assert configstate.result_of(LastGood().update(bad)) == "Invalid"


def test_seed_round_trip_keeps_the_version_in_force_after_restart() -> None:
    lg = LastGood()
    lg.update(raw(pool("a", "192.0.2.0/28")))
    live = raw(pool("a", "192.0.2.9-192.0.2.1"))
    st = configstate.status_of(lg.update(live), lg.good, component="controller")
    restarted = LastGood()
    restarted.seed(configstate.seed_from(st, live))
    out = restarted.update(live)
    assert [str(r) for r in out.loaded.config.pools["a"].ranges] == [R("192.0.2.0/28")] and out.complete


def test_seed_ignores_a_recreated_object_and_garbage() -> None:
    lg = LastGood()
    lg.update(raw(pool("a", "192.0.2.0/28")))
    st = configstate.status_of(lg.update(raw(pool("a", "x"))), lg.good, component="controller")
    recreated = raw(pool("a", "x", uid="other"))
    assert configstate.seed_from(st, recreated) == {}
    for junk in (None, [], {"lastGood": "x"}, {"lastGood": [1, {"kind": "IPAddressPool"}]}):
        assert configstate.seed_from(junk, recreated) == {}


def test_status_is_bounded_for_hostile_objects() -> None:
    big = "x" * 200_000
    objs = [pool(f"p{i}", f"192.0.2.{i}", big=big) for i in range(3)]
    lg = LastGood()
    lg.update(raw(*objs))
    bad = [pool(f"p{i}", "bogus" * 1000, big=big) for i in range(3)] + [pool(f"q{i}", "bad") for i in range(80)]
    st = configstate.status_of(lg.update(raw(*bad)), lg.good, component="controller")
    assert len(st["errors"]) == configstate.MAX_ERRORS
    assert all(len(e["message"]) <= configstate.MAX_MESSAGE for e in st["errors"])
    assert len(st["lastGood"]) == 1  # 200 kB each: only one fits the 256 KiB budget
    assert len(st["errorSummary"]) <= configstate.MAX_SUMMARY


def test_merge_of_a_speakers_parts() -> None:
    lg1, lg2 = LastGood(), LastGood()
    lg1.update(raw(pool("a", "192.0.2.0/28")))
    s1 = configstate.status_of(lg1.update(raw(pool("a", "bad"))), lg1.good, component="speaker")
    s2 = configstate.status_of(lg2.update(raw(pool("a", "bad"))), lg2.good, component="speaker")
    m = configstate.merge([s1, s2])
    assert m["result"] == "Invalid" and len(m["errors"]) == 1 and len(m["lastGood"]) == 1
    assert m["errorSummary"].count("\n") == 1  # one line per part's distinct text

"""Table tests of the shared last-good policy (lbspeaker.core.lastgood) and the loader's edit check."""

from __future__ import annotations

from typing import Any

import pytest

from lbspeaker.core.lastgood import LastGood
from lbspeaker.core.loader import RawConfig, load, validate_change
from lbspeaker.core.ranges import parse_range


def R(text: str) -> str:
    return str(parse_range(text))


def pool(name: str, *addresses: str, created: str = "2026-01-01T00:00:00Z", **spec: Any) -> dict[str, Any]:
    return {
        "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": "lbspeaker-system", "creationTimestamp": created,
                     "uid": f"uid-{name}", "resourceVersion": str(abs(hash((name, addresses))) % 10_000)},
        "spec": {"addresses": list(addresses), **spec},
    }


def peer(name: str, asn: Any = 64512, **spec: Any) -> dict[str, Any]:
    return {
        "kind": "BGPPeer",
        "metadata": {"name": name, "namespace": "lbspeaker-system"},
        "spec": {"myASN": 64512, "peerASN": asn, "peerAddress": "198.51.100.1", **spec},
    }


def bgp_adv(name: str, *peers: str) -> dict[str, Any]:
    return {"kind": "BGPAdvertisement", "metadata": {"name": name, "namespace": "lbspeaker-system"},
            "spec": {"peers": list(peers)}}


def raw(*objs: dict[str, Any]) -> RawConfig:
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for o in objs:
        by_kind.setdefault(o["kind"], []).append(o)
    return RawConfig.of(by_kind)


def ranges(lg: LastGood, r: RawConfig) -> dict[str, list[str]]:
    cfg = lg.update(r).loaded.config
    return {n: [str(x) for x in p.ranges] for n, p in cfg.pools.items()}


A = pool("a", "192.0.2.0/28")
A2 = pool("a", "192.0.2.0/27")
A_BAD = pool("a", "192.0.2.0/28", "192.0.2.40-192.0.2.10")
B = pool("b", "192.0.2.64/28", created="2026-02-01T00:00:00Z")


def test_valid_edit_is_in_force() -> None:
    lg = LastGood()
    lg.update(raw(A))
    out = lg.update(raw(A2))
    assert not out.stale and out.complete
    assert [str(r) for r in out.loaded.config.pools["a"].ranges] == [R("192.0.2.0/27")]


def test_invalid_edit_keeps_the_last_valid_version() -> None:
    lg = LastGood()
    lg.update(raw(A, B))
    out = lg.update(raw(A_BAD, B))
    assert out.stale and out.complete
    assert [str(r) for r in out.loaded.config.pools["a"].ranges] == [R("192.0.2.0/28")]
    (rej,) = out.rejections
    assert rej.key == ("IPAddressPool", "a") and rej.in_force
    assert rej.error.field == "spec.addresses[1]" and "start after end" in rej.error.cause
    assert rej.resource_version == A_BAD["metadata"]["resourceVersion"]
    assert rej.good_resource_version == A["metadata"]["resourceVersion"]
    assert "b" in out.loaded.config.pools


def test_object_never_valid_is_left_out() -> None:
    out = LastGood().update(raw(A_BAD, B))
    assert out.stale and not out.complete
    assert set(out.loaded.config.pools) == {"b"}
    assert [r.in_force for r in out.rejections] == [False]


def test_fixing_the_object_clears_the_rejection() -> None:
    lg = LastGood()
    lg.update(raw(A))
    lg.update(raw(A_BAD))
    out = lg.update(raw(A2))
    assert not out.stale and ranges(lg, raw(A2)) == {"a": [R("192.0.2.0/27")]}


@pytest.mark.parametrize("last", [A, A_BAD], ids=["valid", "invalid"])
def test_deleted_object_is_really_deleted(last: dict[str, Any]) -> None:
    lg = LastGood()
    lg.update(raw(A, B))
    lg.update(raw(last, B))
    out = lg.update(raw(B))
    assert set(out.loaded.config.pools) == {"b"} and not out.stale
    assert ("IPAddressPool", "a") not in lg.good
    # re-created invalid: nothing of the deleted one comes back
    again = lg.update(raw(A_BAD, B))
    assert set(again.loaded.config.pools) == {"b"} and not again.complete


def test_edit_that_breaks_another_object_is_charged_to_the_edited_one() -> None:
    # a is older, so the loader alone would keep a and reject b: the edit of a must be refused instead
    lg = LastGood()
    lg.update(raw(A, B))
    a_grows = pool("a", "192.0.2.0/25")
    out = lg.update(raw(a_grows, B))
    assert ranges(lg, raw(a_grows, B)) == {"a": [R("192.0.2.0/28")], "b": [R("192.0.2.64/28")]}
    (rej,) = out.rejections
    assert rej.key == ("IPAddressPool", "a") and rej.in_force
    assert "would make IPAddressPool 'b' invalid" in str(rej.error)


def test_one_valid_and_one_invalid_edit_at_once() -> None:
    lg = LastGood()
    lg.update(raw(A, B))
    b2 = pool("b", "192.0.2.64/27", created="2026-02-01T00:00:00Z")
    out = lg.update(raw(A_BAD, b2))
    assert ranges(lg, raw(A_BAD, b2)) == {"a": [R("192.0.2.0/28")], "b": [R("192.0.2.64/27")]}
    assert [r.key[1] for r in out.rejections] == ["a"]


def test_new_pool_overlapping_one_in_force_is_rejected_whatever_its_age() -> None:
    lg = LastGood()
    lg.update(raw(B))
    older = pool("z", "192.0.2.64/26", created="2025-01-01T00:00:00Z")  # older than b, overlaps it
    out = lg.update(raw(B, older))
    assert set(out.loaded.config.pools) == {"b"}
    assert [r.key[1] for r in out.rejections] == ["z"] and not out.complete


def test_bgp_peer_invalid_edit_keeps_peer_and_its_advertisement() -> None:
    lg = LastGood()
    lg.update(raw(A, peer("p"), bgp_adv("adv", "p")))
    out = lg.update(raw(A, peer("p", asn=2**32), bgp_adv("adv", "p")))
    bgp = out.loaded.config.bgp
    assert bgp.peers["p"].peer_asn == 64512 and [a.name for a in bgp.advertisements] == ["adv"]
    assert [(r.key, r.error.field) for r in out.rejections] == [(("BGPPeer", "p"), "spec.peerASN")]


def test_deleting_a_referenced_peer_leaves_its_advertisement_out() -> None:
    lg = LastGood()
    lg.update(raw(A, peer("p"), bgp_adv("adv", "p")))
    out = lg.update(raw(A, bgp_adv("adv", "p")))
    assert not out.loaded.config.bgp.peers and not out.loaded.config.bgp.advertisements
    assert [r.key for r in out.rejections] == [("BGPAdvertisement", "adv")]


def test_invalid_pool_edit_keeps_bgp_routes_config() -> None:
    lg = LastGood()
    lg.update(raw(A, peer("p"), bgp_adv("adv", "p")))
    out = lg.update(raw(A_BAD, peer("p"), bgp_adv("adv", "p")))
    assert "a" in out.loaded.config.pools and [a.name for a in out.loaded.config.bgp.advertisements] == ["adv"]


def test_seeded_version_is_in_force_after_a_restart() -> None:
    lg = LastGood()
    lg.seed({("IPAddressPool", "a"): A})
    out = lg.update(raw(A_BAD))
    assert ranges(lg, raw(A_BAD)) == {"a": [R("192.0.2.0/28")]} and out.complete


def test_same_input_same_outcome_without_reloading() -> None:
    calls = []

    def counting(r: RawConfig) -> Any:
        calls.append(1)
        return load(r)

    lg = LastGood(counting)
    first = lg.update(raw(A, B))
    assert lg.update(raw(A, B)) is first and len(calls) == 1


def test_result_does_not_depend_on_event_order() -> None:
    c = pool("c", "192.0.2.128/28", created="2026-03-01T00:00:00Z")
    c_bad = pool("c", "192.0.2.0/24", created="2026-03-01T00:00:00Z")  # overlaps a and b
    one, two = LastGood(), LastGood()
    one.update(raw(A, B, c))
    one.update(raw(A, B, c_bad))
    two.update(raw(A, B, c))
    two.update(raw(A, B))
    two.update(raw(A, B, c))
    assert ranges(one, raw(A, B, c_bad)) == ranges(two, raw(A, B, c_bad))


@pytest.mark.parametrize(
    ("change", "operation", "refused_field"),
    [
        (A_BAD, "UPDATE", "spec.addresses[1]"),
        (pool("n", "192.0.2.8/29"), "CREATE", "spec.addresses[0]"),  # overlaps a
        (pool("a", "192.0.2.0/25"), "UPDATE", "spec"),  # would make b invalid
        (pool("n", "203.0.113.0/28"), "CREATE", None),
        (A_BAD, "DELETE", None),
        (peer("p", asn=0), "CREATE", "spec.peerASN"),
    ],
    ids=["bad-range", "overlap", "breaks-other", "valid", "delete", "bad-asn"],
)
def test_validate_change(change: dict[str, Any], operation: str, refused_field: str | None) -> None:
    errs = validate_change(raw(A, B), change, operation=operation)
    if refused_field is None:
        assert errs == ()
    else:
        assert errs and errs[0].field == refused_field and errs[0].name.endswith(change["metadata"]["name"])

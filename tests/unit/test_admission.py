"""AdmissionReview handling: verdicts with the parser's text, garbage bodies answered, never raised."""

from __future__ import annotations

import json
from typing import Any

import pytest

from controller.admission import MAX_BODY, review
from lbspeaker.core.loader import RawConfig

NS = "lbspeaker-system"


def pool(name: str, *addresses: str, ns: str = NS) -> dict[str, Any]:
    return {"apiVersion": "lbspeaker.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": name, "namespace": ns}, "spec": {"addresses": list(addresses)}}


LIVE = RawConfig.of({"IPAddressPool": [pool("a", "192.0.2.0/28")]})


def body(obj: dict[str, Any] | None, *, op: str = "CREATE", kind: str = "", uid: str = "u-1",
         group: str = "lbspeaker.io") -> bytes:
    k = kind or (obj or {}).get("kind", "")
    req: dict[str, Any] = {"uid": uid, "kind": {"group": group, "version": "v1beta1", "kind": k},
                           "operation": op, "namespace": ((obj or {}).get("metadata") or {}).get("namespace", NS)}
    if obj is not None:
        req["object"] = obj
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req}).encode()


def judge(b: bytes, live: RawConfig | None = LIVE) -> Any:
    return review(b, config=lambda: live, namespace=NS)


def test_valid_create_allowed_and_uid_echoed() -> None:
    r = judge(body(pool("b", "192.0.2.100/32"), uid="abc"))
    assert r.code == 200 and r.allowed is True
    assert r.body["apiVersion"] == "admission.k8s.io/v1" and r.body["kind"] == "AdmissionReview"
    assert r.body["response"]["uid"] == "abc"
    assert "status" not in r.body["response"]


@pytest.mark.parametrize(("obj", "message"), [
    (pool("lab", "192.0.2.100/32", "192.0.2.40-192.0.2.10"),
     "parsing IPAddressPool 'lab': spec.addresses[1]: '192.0.2.40-192.0.2.10': start after end"),
    (pool("b", "192.0.2.8/29"),
     "parsing IPAddressPool 'b': spec.addresses[0]: '192.0.2.8/29' overlaps '192.0.2.0/28' of IPAddressPool 'a'"),
    ({"kind": "L2Advertisement", "metadata": {"name": "l2", "namespace": NS},
      "spec": {"nodeSelectors": [{"matchExpressions": [{"key": "zone", "operator": "In"}]}]}},
     "parsing L2Advertisement 'l2': spec.nodeSelectors[0].matchExpressions[0].values: "
     "must be non-empty for operator 'In'"),
    ({"kind": "BGPPeer", "metadata": {"name": "p", "namespace": NS},
      "spec": {"myASN": 64500, "peerASN": 4294967296, "peerAddress": "192.0.2.1"}},
     "parsing BGPPeer 'lbspeaker-system/p': spec.peerASN: '4294967296' is outside 1-4294967295"),
    ({"kind": "BGPAdvertisement", "metadata": {"name": "ad", "namespace": NS}, "spec": {"peers": ["nope"]}},
     "parsing BGPAdvertisement 'lbspeaker-system/ad': spec.peers[0]: BGPPeer 'nope' does not exist or is invalid"),
])
def test_invalid_refused_with_parser_text(obj: dict[str, Any], message: str) -> None:
    r = judge(body(obj))
    assert r.code == 200 and r.allowed is False
    assert r.body["response"]["status"] == {"status": "Failure", "code": 422, "reason": "Invalid", "message": message}


def test_update_that_invalidates_another_object_is_refused() -> None:
    live = RawConfig.of({"IPAddressPool": [pool("a", "192.0.2.0/28")],
                         "L2Advertisement": [{"kind": "L2Advertisement", "metadata": {"name": "l2"},
                                              "spec": {"ipAddressPools": ["a"]}}]})
    r = judge(body(pool("a", "192.0.2.0/28", "192.0.2.40-192.0.2.10"), op="UPDATE"), live)
    assert r.allowed is False
    assert r.body["response"]["status"]["message"].startswith("parsing IPAddressPool 'a': spec.addresses[1]")


@pytest.mark.parametrize("op", ["DELETE", "CONNECT"])
def test_other_operations_allowed(op: str) -> None:
    assert judge(body(pool("lab", "192.0.2.40-192.0.2.10"), op=op)).allowed is True


def test_other_kinds_and_groups_allowed_without_judging() -> None:
    assert judge(body({"kind": "ServiceL2Status", "metadata": {"name": "x"}})).allowed is True
    assert judge(body(pool("lab", "192.0.2.40-192.0.2.10"), group="example.com")).allowed is True


def test_other_namespace_allowed_with_warning() -> None:
    r = judge(body(pool("lab", "192.0.2.40-192.0.2.10", ns="default")))
    assert r.allowed is True
    assert r.body["response"]["warnings"] == [
        "IPAddressPool 'default/lab' is ignored: lbspeaker reads config objects only from namespace 'lbspeaker-system'"]


def test_not_synced_is_503_so_failure_policy_applies() -> None:
    r = judge(body(pool("b", "192.0.2.100/32")), live=None)
    assert r.code == 503 and r.allowed is None


@pytest.mark.parametrize(("raw", "fragment"), [
    (b"", "body is not JSON"),
    (b"\xff\xfe", "body is not JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b'{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}', "want apiVersion"),
    (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}', "request: missing"),
    (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": 7}}', "request.uid"),
    (b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "u", "kind": 3}}',
     "request.kind"),
    (body(None, kind="IPAddressPool"), "request.object: missing"),
    (b"{" * 100_000, "body is not JSON"),
])
def test_garbage_is_400_with_message(raw: bytes, fragment: str) -> None:
    r = judge(raw)
    assert r.code == 400 and r.body["kind"] == "Status" and r.body["code"] == 400
    assert fragment in r.body["message"]


def test_oversized_body_is_413() -> None:
    r = judge(b" " * (MAX_BODY + 1))
    assert r.code == 413 and "exceeds" in r.body["message"]


def test_garbage_spec_is_refused_not_raised() -> None:
    obj = {"kind": "IPAddressPool", "metadata": {"name": "x", "namespace": NS}, "spec": ["not", "a", "map"]}
    r = judge(body(obj))
    assert r.code == 200 and r.allowed is False
    assert r.body["response"]["status"]["message"].startswith("parsing IPAddressPool 'x': spec")

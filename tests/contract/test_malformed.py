"""Malformed requests get meta/v1 Status errors with the real server's code and reason: bad JSON,
a body of the wrong kind or apiVersion, a namespace mismatch, an invalid name, an oversized body,
an unknown resource, a bad resourceVersion."""

from __future__ import annotations

import pytest

from tests.contract.conftest import WIDGET_GROUP, WIDGET_PLURAL, WIDGET_VERSION, K8s, widget
from tests.contract.helpers import MERGE, cause_fields

pytestmark = pytest.mark.contract


def cms(ns: str) -> str:
    """ConfigMap collection path."""
    return f"/api/v1/namespaces/{ns}/configmaps"


@pytest.mark.parametrize("body", [b"{not json", b"", b"[1,2]", b'"str"'])
def test_bad_json_400(core: K8s, ns: str, body: bytes) -> None:
    r = core.raw.request("POST", cms(ns), body=body)
    st = r.status_obj()
    assert r.status == 400 and st["reason"] == "BadRequest" and st["status"] == "Failure", r.text


def test_bad_json_patch_400(core: K8s, ns: str) -> None:
    core.raw.request("POST", cms(ns), body={"metadata": {"name": "p"}})
    r = core.raw.request("PATCH", f"{cms(ns)}/p", body=b"{oops", content_type=MERGE)
    # 1.20 answers 500 "Invalid JSON Patch" without a reason; 400 BadRequest is what a client expects
    assert r.status in (400, 500) and r.status_obj()["status"] == "Failure", r.text


def test_bad_json_on_cr_400(widgets: K8s, ns: str) -> None:
    r = widgets.raw.request("POST", f"/apis/{WIDGET_GROUP}/{WIDGET_VERSION}/namespaces/{ns}/{WIDGET_PLURAL}",
                            body=b"{nope")
    assert r.status == 400 and r.status_obj()["reason"] == "BadRequest", r.text


def test_wrong_kind_400(core: K8s, ns: str) -> None:
    r = core.raw.request("POST", cms(ns), body={"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "k"}})
    st = r.status_obj()
    assert r.status == 400 and st["reason"] == "BadRequest", r.text


def test_wrong_api_version_400(core: K8s, ns: str) -> None:
    r = core.raw.request("POST", cms(ns), body={"apiVersion": "apps/v1", "kind": "ConfigMap",
                                                "metadata": {"name": "k"}})
    assert r.status == 400 and r.status_obj()["reason"] == "BadRequest", r.text


def test_wrong_kind_on_cr_422(widgets: K8s, ns: str) -> None:
    body = widget("k")
    body["kind"] = "Gizmo"
    r = widgets.raw.request("POST", f"/apis/{WIDGET_GROUP}/{WIDGET_VERSION}/namespaces/{ns}/{WIDGET_PLURAL}",
                            body=body)
    st = r.status_obj()
    assert r.status == 422 and st["reason"] == "Invalid" and "kind" in cause_fields(st), r.text
    assert st["message"] == 'Gizmo.contract.lbspeaker.io "k" is invalid: kind: Invalid value: "Gizmo": must be Widget'



def test_namespace_mismatch_400(core: K8s, ns: str) -> None:
    r = core.raw.request("POST", cms(ns), body={"metadata": {"name": "m", "namespace": "elsewhere"}})
    st = r.status_obj()
    assert r.status == 400 and st["reason"] == "BadRequest"
    assert "does not match the namespace" in st["message"], st["message"]


def test_name_mismatch_on_put_400(core: K8s, ns: str) -> None:
    r = core.raw.request("POST", cms(ns), body={"metadata": {"name": "n1"}})
    body = r.body
    body["metadata"]["name"] = "n2"
    r = core.raw.request("PUT", f"{cms(ns)}/n1", body=body)
    st = r.status_obj()
    assert r.status == 400 and st["reason"] == "BadRequest", r.text
    assert "does not match the name" in st["message"], st["message"]


@pytest.mark.parametrize("name", ["Upper", "under_score", "a" * 254, "-lead"])
def test_invalid_name_422(core: K8s, ns: str, name: str) -> None:
    r = core.raw.request("POST", cms(ns), body={"metadata": {"name": name}})
    st = r.status_obj()
    assert r.status == 422 and st["reason"] == "Invalid" and "metadata.name" in cause_fields(st), r.text


def test_missing_name_422(core: K8s, ns: str) -> None:
    r = core.raw.request("POST", cms(ns), body={"metadata": {}})
    st = r.status_obj()
    assert r.status == 422 and "metadata.name" in cause_fields(st), r.text


def test_oversized_body_413(core: K8s, ns: str) -> None:
    big = "x" * (3 * 1024 * 1024 + 1024)
    r = core.raw.request("POST", cms(ns), body={"metadata": {"name": "big"}, "data": {"k": big}}, timeout=60)
    st = r.status_obj()
    assert r.status == 413 and st["reason"] == "RequestEntityTooLarge", r.text[:300]


def test_unknown_resource_404(core: K8s, ns: str) -> None:
    r = core.raw.request("GET", f"/api/v1/namespaces/{ns}/gizmos")
    assert r.status == 404 and r.status_obj()["reason"] == "NotFound", r.text
    r = core.raw.request("GET", "/apis/nope.example.com/v1/things")
    assert r.status == 404, r.text


def test_unknown_cr_group_404(widgets: K8s) -> None:
    r = widgets.raw.request("GET", f"/apis/{WIDGET_GROUP}/v9/{WIDGET_PLURAL}")
    assert r.status == 404, r.text


@pytest.mark.parametrize("rv", ["abc", "-1"])
def test_bad_resource_version_on_watch(core: K8s, ns: str, rv: str) -> None:
    st, events, _ = core.raw.watch(cms(ns), query={"resourceVersion": rv}, max_events=1, timeout=5)
    if st == 200:
        assert events and events[0][0] == "ERROR", events
        status = events[0][1]
    else:
        status = events[0][1]
    assert status.get("reason") in ("BadRequest", "Invalid", "Expired") or status.get("code") in (400, 410, 500), \
        status


def test_bad_resource_version_on_update_fails(core: K8s, ns: str) -> None:
    r = core.raw.request("POST", cms(ns), body={"metadata": {"name": "rv"}})
    body = r.body
    body["metadata"]["resourceVersion"] = "not-a-number"
    r = core.raw.request("PUT", f"{cms(ns)}/rv", body=body)
    assert r.status in (400, 409, 422, 500), r.text  # 1.20: 500 strconv.ParseUint
    assert r.status_obj()["status"] == "Failure"


def test_delete_collection_not_allowed_on_namespaces_style_path(core: K8s, ns: str) -> None:
    r = core.raw.request("PUT", cms(ns), body={"metadata": {"name": "x"}})
    st = r.status_obj()
    assert r.status == 405 and st["reason"] == "MethodNotAllowed", r.text

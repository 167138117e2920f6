"""CRDs: establishment, discovery, schema validation with field paths, pruning, defaults, cleanup."""

from __future__ import annotations

import copy

import pytest
from kubernetes import client

from tests.unit.apiserver.conftest import WIDGET_CRD, Raw, widget

BASE = "/apis/example.com/v1/namespaces/default/widgets"


@pytest.fixture
def crd(raw: Raw) -> dict:
    code, _, obj = raw("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", WIDGET_CRD)
    assert code == 201, obj
    return obj


def test_crd_established_and_served(crd: dict, raw: Raw) -> None:
    conds = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conds == {"NamesAccepted": "True", "Established": "True"}
    assert crd["status"]["acceptedNames"]["listKind"] == "WidgetList"
    _, _, groups = raw("GET", "/apis")
    assert any(g["name"] == "example.com" for g in groups["groups"])
    _, _, rl = raw("GET", "/apis/example.com/v1")
    names = {r["name"]: r for r in rl["resources"]}
    assert names["widgets"]["shortNames"] == ["wd"] and names["widgets"]["namespaced"] is True
    assert names["widgets/status"]["verbs"] == ["get", "patch", "update"]


def test_python_client_custom_objects(crd: dict, api: client.ApiClient) -> None:
    co = client.CustomObjectsApi(api)
    obj = co.create_namespaced_custom_object("example.com", "v1", "default", "widgets", widget("w1", size=2))
    assert obj["spec"] == {"size": 2, "color": "red"} and obj["metadata"]["generation"] == 1
    st = co.patch_namespaced_custom_object_status(
        "example.com", "v1", "default", "widgets", "w1", {"status": {"ready": True}}
    )
    assert st["status"] == {"ready": True} and st["metadata"]["generation"] == 1
    up = co.patch_namespaced_custom_object("example.com", "v1", "default", "widgets", "w1", {"spec": {"size": 3}})
    assert up["metadata"]["generation"] == 2 and up["status"] == {"ready": True}
    lst = co.list_namespaced_custom_object("example.com", "v1", "default", "widgets")
    assert lst["kind"] == "WidgetList" and lst["apiVersion"] == "example.com/v1" and len(lst["items"]) == 1


@pytest.mark.parametrize(
    ("spec", "field", "reason"),
    [
        ({}, "spec.size", "FieldValueRequired"),
        ({"size": 11}, "spec.size", "FieldValueInvalid"),
        ({"size": "x"}, "spec.size", "FieldValueTypeInvalid"),
        ({"size": 1, "color": "green"}, "spec.color", "FieldValueNotSupported"),
        ({"size": 1, "label": "a"}, "spec.label", "FieldValueInvalid"),
        ({"size": 1, "label": "abcdef"}, "spec.label", "FieldValueTooLong"),
        ({"size": 1, "addresses": ["1.2.3.4", "x"]}, "spec.addresses[1]", "FieldValueInvalid"),
        ({"size": 1, "addresses": ["1", "2", "3", "4"]}, "spec.addresses", "FieldValueTooMany"),
        ({"size": 1, "port": 1.5}, "spec.port", "FieldValueTypeInvalid"),
    ],
)
def test_schema_validation_field_paths(crd: dict, raw: Raw, spec: dict, field: str, reason: str) -> None:
    code, _, st = raw("POST", BASE, widget("bad", **spec))
    assert code == 422 and st["reason"] == "Invalid", st
    assert {"field": field, "reason": reason} in [
        {"field": c["field"], "reason": c["reason"]} for c in st["details"]["causes"]
    ]
    assert st["details"]["group"] == "example.com" and st["details"]["kind"] == "Widget"


def test_pruning_nullable_and_preserve_unknown(crd: dict, raw: Raw) -> None:
    body = widget("p", size=1, unknown=1, port="http", opt=None, extra={"free": {"x": 1}})
    body["junk"] = True
    code, _, obj = raw("POST", BASE, body)
    assert code == 201, obj
    assert "junk" not in obj and "unknown" not in obj["spec"]
    assert obj["spec"]["extra"] == {"free": {"x": 1}} and obj["spec"]["opt"] is None and obj["spec"]["port"] == "http"
    code, _, st = raw("POST", BASE + "?fieldValidation=Strict", widget("q", size=1, unknown=1))
    assert code == 400 and 'unknown field "spec.unknown"' in st["message"]


def test_missing_kind_and_wrong_version(crd: dict, raw: Raw) -> None:
    body = widget("k", size=1)
    del body["kind"]
    assert raw("POST", BASE, body)[0] == 400
    body = widget("k", size=1)
    body["apiVersion"] = "example.com/v2"
    assert raw("POST", BASE, body)[0] == 400


def test_cluster_scoped_crd_and_delete_removes_objects(raw: Raw) -> None:
    crd = copy.deepcopy(WIDGET_CRD)
    crd["spec"]["scope"] = "Cluster"
    assert raw("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)[0] == 201
    assert raw("POST", "/apis/example.com/v1/widgets", widget("c", size=1))[0] == 201
    assert raw("POST", BASE, widget("c2", size=1))[0] == 404
    code, _, _ = raw("DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com")
    assert code == 200
    assert raw("GET", "/apis/example.com/v1/widgets")[0] == 404
    assert raw("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)[0] == 201
    _, _, lst = raw("GET", "/apis/example.com/v1/widgets")
    assert lst["items"] == []


def test_invalid_crd_rejected(raw: Raw) -> None:
    crd = copy.deepcopy(WIDGET_CRD)
    crd["metadata"]["name"] = "wrong.example.com"
    code, _, st = raw("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    assert code == 422 and st["details"]["causes"][0]["field"] == "metadata.name"
    crd = copy.deepcopy(WIDGET_CRD)
    crd["spec"]["versions"][0]["storage"] = False
    assert raw("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)[0] == 422


def test_crd_printer_columns_table(crd: dict, raw: Raw) -> None:
    raw("POST", BASE, widget("t", size=4, addresses=["192.0.2.9"]))
    _, _, tab = raw("GET", BASE, headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"})
    assert [c["name"] for c in tab["columnDefinitions"]] == ["Name", "Size", "First"]
    assert tab["rows"][0]["cells"] == ["t", 4, "192.0.2.9"]


def test_custom_resource_rules_of_a_real_server(crd: dict, raw: Raw) -> None:
    body = widget("k", size=1)
    body["kind"] = "Gizmo"
    code, _, st = raw("POST", BASE, body)
    assert (
        code == 422
        and st["message"] == 'Gizmo.example.com "k" is invalid: kind: Invalid value: "Gizmo": must be Widget'
    )
    _, _, obj = raw("POST", BASE, widget("u", size=1))
    del obj["metadata"]["resourceVersion"]
    code, _, st = raw("PUT", BASE + "/u", obj)
    assert code == 422 and st["details"]["causes"][0]["field"] == "metadata.resourceVersion"

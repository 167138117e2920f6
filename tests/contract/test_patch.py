"""PATCH contract: JSON merge patch, JSON patch (incl. a failed `test` op), strategic merge on
Service ports (merge key `port`) and status conditions (merge key `type`), and 415 for strategic
merge on custom resources. The kubernetes client sends dict bodies on built-in kinds as strategic
merge (DESIGN trap 9), so this is what our own code relies on."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from tests.contract.conftest import WIDGET_GROUP, WIDGET_PLURAL, WIDGET_VERSION, K8s, widget
from tests.contract.helpers import JSONPATCH, MERGE, STRATEGIC

pytestmark = pytest.mark.contract


def svc_path(ns: str, name: str = "", sub: str = "") -> str:
    """Service path."""
    p = f"/api/v1/namespaces/{ns}/services" + (f"/{name}" if name else "")
    return p + (f"/{sub}" if sub else "")


def w_path(ns: str, name: str = "", sub: str = "") -> str:
    """Widget path."""
    p = f"/apis/{WIDGET_GROUP}/{WIDGET_VERSION}/namespaces/{ns}/{WIDGET_PLURAL}" + (f"/{name}" if name else "")
    return p + (f"/{sub}" if sub else "")


def make_svc(core: K8s, ns: str, name: str, ports: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    """Create a Service and return it as JSON."""
    r = core.raw.request("POST", svc_path(ns), body={
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        "spec": {"ports": ports, **spec}})
    assert r.status == 201, r.text
    return dict(r.body)


def test_merge_patch_sets_and_removes_keys(core: K8s, ns: str) -> None:
    core.core.create_namespaced_config_map(ns, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="m", labels={"a": "1", "b": "2"}), data={"x": "1", "y": "2"}))
    r = core.raw.request("PATCH", f"/api/v1/namespaces/{ns}/configmaps/m", content_type=MERGE,
                         body={"metadata": {"labels": {"a": None, "c": "3"}}, "data": {"y": None, "z": "9"}})
    assert r.status == 200, r.text
    assert r.body["metadata"]["labels"] == {"b": "2", "c": "3"}
    assert r.body["data"] == {"x": "1", "z": "9"}


def test_merge_patch_replaces_lists_on_service(core: K8s, ns: str) -> None:
    make_svc(core, ns, "mp", [{"name": "a", "port": 80}, {"name": "b", "port": 81}])
    r = core.raw.request("PATCH", svc_path(ns, "mp"), content_type=MERGE,
                         body={"spec": {"ports": [{"port": 90}]}})
    assert r.status == 200, r.text
    assert [p["port"] for p in r.body["spec"]["ports"]] == [90]


def test_json_patch_ops_and_failed_test_422(core: K8s, ns: str) -> None:
    core.core.create_namespaced_config_map(ns, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="j"), data={"a": "1"}))
    path = f"/api/v1/namespaces/{ns}/configmaps/j"
    r = core.raw.request("PATCH", path, content_type=JSONPATCH, body=[
        {"op": "test", "path": "/data/a", "value": "1"},
        {"op": "add", "path": "/data/b", "value": "2"},
        {"op": "replace", "path": "/data/a", "value": "3"},
        {"op": "add", "path": "/metadata/labels", "value": {"k": "v"}}])
    assert r.status == 200, r.text
    assert r.body["data"] == {"a": "3", "b": "2"} and r.body["metadata"]["labels"] == {"k": "v"}
    rv = r.body["metadata"]["resourceVersion"]
    r = core.raw.request("PATCH", path, content_type=JSONPATCH, body=[
        {"op": "test", "path": "/data/a", "value": "wrong"},
        {"op": "replace", "path": "/data/a", "value": "never"}])
    st = r.status_obj()
    assert r.status == 422 and st["reason"] == "Invalid", r.text
    got = core.core.read_namespaced_config_map("j", ns)
    assert got.data["a"] == "3" and got.metadata.resource_version == rv, "failed patch must change nothing"
    r = core.raw.request("PATCH", path, content_type=JSONPATCH,
                         body=[{"op": "remove", "path": "/data/missing"}])
    assert r.status == 422 and r.status_obj()["reason"] == "Invalid", r.text


def test_json_patch_on_cr(widgets: K8s, ns: str) -> None:
    widgets.raw.request("POST", w_path(ns), body=widget("jp", size=1, tags=["a"]))
    r = widgets.raw.request("PATCH", w_path(ns, "jp"), content_type=JSONPATCH,
                            body=[{"op": "add", "path": "/spec/tags/-", "value": "b"}])
    assert r.status == 200 and r.body["spec"]["tags"] == ["a", "b"], r.text
    r = widgets.raw.request("PATCH", w_path(ns, "jp"), content_type=JSONPATCH,
                            body=[{"op": "test", "path": "/spec/size", "value": 7}])
    assert r.status == 422 and r.status_obj()["reason"] == "Invalid", r.text


def test_strategic_merge_service_ports_by_port(core: K8s, ns: str) -> None:
    make_svc(core, ns, "smp", [{"name": "http", "port": 80, "targetPort": 8080}])
    r = core.raw.request("PATCH", svc_path(ns, "smp"), content_type=STRATEGIC, body={"spec": {"ports": [
        {"name": "https", "port": 443}, {"port": 80, "targetPort": 9090}]}})
    assert r.status == 200, r.text
    ports = {p["port"]: p for p in r.body["spec"]["ports"]}
    assert set(ports) == {80, 443}
    assert ports[80]["targetPort"] == 9090 and ports[80]["name"] == "http"
    assert ports[443]["targetPort"] == 443 and ports[443]["protocol"] == "TCP"
    r = core.raw.request("PATCH", svc_path(ns, "smp"), content_type=STRATEGIC,
                         body={"spec": {"ports": [{"port": 80, "$patch": "delete"}]}})
    assert r.status == 200, r.text
    assert [p["port"] for p in r.body["spec"]["ports"]] == [443]


def test_client_dict_patch_is_strategic_on_services(core: K8s, ns: str) -> None:
    make_svc(core, ns, "cl", [{"name": "http", "port": 80}])
    svc = core.core.patch_namespaced_service("cl", ns, {"spec": {"ports": [{"name": "dns", "port": 53,
                                                                              "protocol": "UDP"}]}})
    assert sorted((p.port, p.protocol) for p in svc.spec.ports) == [(53, "UDP"), (80, "TCP")]


def test_strategic_merge_status_conditions_by_type(core: K8s, ns: str) -> None:
    make_svc(core, ns, "cond", [{"port": 80}], type="LoadBalancer")
    t = "2026-01-01T00:00:00Z"
    c1 = {"type": "A", "status": "True", "reason": "R", "message": "m", "lastTransitionTime": t}
    c2 = {"type": "B", "status": "False", "reason": "R", "message": "m", "lastTransitionTime": t}
    r = core.raw.request("PATCH", svc_path(ns, "cond", "status"), content_type=STRATEGIC,
                         body={"status": {"conditions": [c1, c2]}})
    assert r.status == 200, r.text
    r = core.raw.request("PATCH", svc_path(ns, "cond", "status"), content_type=STRATEGIC,
                         body={"status": {"conditions": [{**c2, "status": "True", "reason": "Now"}]}})
    assert r.status == 200, r.text
    conds = {c["type"]: c for c in r.body["status"]["conditions"]}
    assert set(conds) == {"A", "B"}
    assert conds["B"]["status"] == "True" and conds["B"]["reason"] == "Now" and conds["A"] == c1


def test_strategic_merge_ingress_list_is_replaced(core: K8s, ns: str) -> None:
    make_svc(core, ns, "ing", [{"port": 80}], type="LoadBalancer")
    for ips in (["192.0.2.1", "192.0.2.2"], ["192.0.2.3"]):
        r = core.raw.request("PATCH", svc_path(ns, "ing", "status"), content_type=STRATEGIC,
                             body={"status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}}})
        assert r.status == 200, r.text
        assert [i["ip"] for i in r.body["status"]["loadBalancer"]["ingress"]] == ips


def test_strategic_merge_on_cr_is_415(widgets: K8s, ns: str) -> None:
    widgets.raw.request("POST", w_path(ns), body=widget("s415"))
    r = widgets.raw.request("PATCH", w_path(ns, "s415"), content_type=STRATEGIC, body={"spec": {"size": 2}})
    st = r.status_obj()
    assert r.status == 415 and st["reason"] == "UnsupportedMediaType", r.text
    assert "application/merge-patch+json" in st["message"]


def test_unknown_patch_type_is_415(core: K8s, ns: str) -> None:
    core.core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="u")))
    r = core.raw.request("PATCH", f"/api/v1/namespaces/{ns}/configmaps/u", content_type="text/plain",
                         body="data: {}")
    assert r.status == 415 and r.status_obj()["reason"] == "UnsupportedMediaType", r.text


def test_patch_missing_object_404(core: K8s, ns: str) -> None:
    r = core.raw.request("PATCH", f"/api/v1/namespaces/{ns}/configmaps/none", content_type=MERGE,
                         body={"data": {"a": "b"}})
    assert r.status == 404 and r.status_obj()["reason"] == "NotFound"

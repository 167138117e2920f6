"""Object lifecycle contract: create, resourceVersion, generation, names, 404/409, preconditions,
finalizers. Checked on core kinds (ConfigMap, Namespace) and on a custom resource (Widget)."""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.contract.conftest import WIDGET_GROUP, WIDGET_PLURAL, WIDGET_VERSION, K8s, widget
from tests.contract.helpers import MERGE, api_error, uniq

pytestmark = pytest.mark.contract


def cm_path(ns: str, name: str = "") -> str:
    """ConfigMap collection or item path."""
    return f"/api/v1/namespaces/{ns}/configmaps" + (f"/{name}" if name else "")


def w_path(ns: str, name: str = "") -> str:
    """Widget collection or item path."""
    return f"/apis/{WIDGET_GROUP}/{WIDGET_VERSION}/namespaces/{ns}/{WIDGET_PLURAL}" + (f"/{name}" if name else "")


def test_create_sets_server_fields(core: K8s, ns: str) -> None:
    r = core.raw.request("POST", cm_path(ns), body={"apiVersion": "v1", "kind": "ConfigMap",
                                                   "metadata": {"name": "a"}, "data": {"k": "v"}})
    assert r.status == 201, r.text
    md = r.body["metadata"]
    assert md["uid"] and md["resourceVersion"] and md["creationTimestamp"].endswith("Z")
    assert md["namespace"] == ns
    assert r.body["kind"] == "ConfigMap" and r.body["apiVersion"] == "v1"
    got = core.core.read_namespaced_config_map("a", ns)
    assert got.metadata.uid == md["uid"] and got.metadata.resource_version == md["resourceVersion"]


def test_cr_create_generation_one_and_bumps_on_spec_only(widgets: K8s, ns: str) -> None:
    r = widgets.raw.request("POST", w_path(ns), body=widget("g", size=1))
    assert r.status == 201, r.text
    assert r.body["metadata"]["generation"] == 1 and r.body["metadata"]["uid"]
    rv1 = r.body["metadata"]["resourceVersion"]
    r = widgets.raw.request("PATCH", w_path(ns, "g"), body={"metadata": {"labels": {"a": "b"}}},
                            content_type=MERGE)
    assert r.status == 200, r.text
    assert r.body["metadata"]["generation"] == 1, "metadata-only change must not bump generation"
    assert int(r.body["metadata"]["resourceVersion"]) > int(rv1)
    r = widgets.raw.request("PATCH", w_path(ns, "g"), body={"spec": {"size": 2}}, content_type=MERGE)
    assert r.body["metadata"]["generation"] == 2
    r = widgets.raw.request("PATCH", w_path(ns, "g") + "/status", body={"status": {"phase": "Ready"}},
                            content_type=MERGE)
    assert r.status == 200, r.text
    assert r.body["metadata"]["generation"] == 2, "status change must not bump generation"


def test_resource_version_is_global_and_monotonic(core: K8s, ns: str) -> None:
    rvs = []
    for i in range(3):
        rvs.append(int(core.core.create_namespaced_config_map(
            ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"m{i}"))).metadata.resource_version))
        rvs.append(int(core.core.create_namespaced_service(ns, client.V1Service(
            metadata=client.V1ObjectMeta(name=f"s{i}"),
            spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=80)]))).metadata.resource_version))
    assert rvs == sorted(rvs) and len(set(rvs)) == len(rvs), rvs
    lst = core.core.list_namespaced_config_map(ns)
    assert int(lst.metadata.resource_version) >= rvs[-1]


def test_noop_update_keeps_resource_version(core: K8s, ns: str) -> None:
    cm = core.core.create_namespaced_config_map(
        ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="n"), data={"a": "1"}))
    same = core.core.replace_namespaced_config_map("n", ns, cm)
    assert same.metadata.resource_version == cm.metadata.resource_version
    r = core.raw.request("PATCH", cm_path(ns, "n"), body={"data": {"a": "1"}}, content_type=MERGE)
    assert r.status == 200 and r.body["metadata"]["resourceVersion"] == cm.metadata.resource_version


def test_cr_noop_update_keeps_resource_version(widgets: K8s, ns: str) -> None:
    r = widgets.raw.request("POST", w_path(ns), body=widget("n", size=3))
    rv = r.body["metadata"]["resourceVersion"]
    r2 = widgets.raw.request("PUT", w_path(ns, "n"), body=r.body)
    assert r2.status == 200 and r2.body["metadata"]["resourceVersion"] == rv
    assert r2.body["metadata"]["generation"] == 1


def test_generate_name(core: K8s, ns: str) -> None:
    r = core.raw.request("POST", cm_path(ns), body={"metadata": {"generateName": "gen-"}})
    assert r.status == 201, r.text
    name = r.body["metadata"]["name"]
    assert name.startswith("gen-") and len(name) == len("gen-") + 5
    assert r.body["metadata"]["generateName"] == "gen-"


def test_generate_name_on_cr(widgets: K8s, ns: str) -> None:
    body = widget("")
    body["metadata"] = {"generateName": "w-"}
    r = widgets.raw.request("POST", w_path(ns), body=body)
    assert r.status == 201, r.text
    assert r.body["metadata"]["name"].startswith("w-") and len(r.body["metadata"]["name"]) == 7


def test_missing_object_404(core: K8s, ns: str) -> None:
    r = core.raw.request("GET", cm_path(ns, "nope"))
    st = r.status_obj()
    assert r.status == 404 and st["reason"] == "NotFound" and st["status"] == "Failure"
    assert st["details"] == {"name": "nope", "kind": "configmaps"}
    assert st["message"] == 'configmaps "nope" not found'
    err = api_error(lambda: core.core.read_namespaced_config_map("nope", ns))
    assert err.status == 404


def test_missing_namespace_404_on_create(core: K8s) -> None:
    ghost = uniq("ghost")
    r = core.raw.request("POST", cm_path(ghost), body={"metadata": {"name": "a"}})
    st = r.status_obj()
    assert r.status == 404 and st["reason"] == "NotFound"
    assert st["details"]["kind"] == "namespaces" and st["details"]["name"] == ghost
    r = core.raw.request("GET", cm_path(ghost, "a"))
    assert r.status == 404
    r = core.raw.request("GET", cm_path(ghost))
    assert r.status == 200 and r.body["items"] == [], "listing in a missing namespace is an empty list"


def test_missing_cr_404(widgets: K8s, ns: str) -> None:
    r = widgets.raw.request("GET", w_path(ns, "nope"))
    st = r.status_obj()
    assert st["reason"] == "NotFound" and st["details"]["kind"] == WIDGET_PLURAL
    assert st["details"]["group"] == WIDGET_GROUP
    assert st["message"] == f'{WIDGET_PLURAL}.{WIDGET_GROUP} "nope" not found'


def test_already_exists_409(core: K8s, ns: str) -> None:
    body = {"metadata": {"name": "dup"}}
    assert core.raw.request("POST", cm_path(ns), body=body).status == 201
    r = core.raw.request("POST", cm_path(ns), body=body)
    st = r.status_obj()
    assert r.status == 409 and st["reason"] == "AlreadyExists"
    assert st["message"] == 'configmaps "dup" already exists'
    assert st["details"] == {"name": "dup", "kind": "configmaps"}


def test_stale_rv_put_and_patch_409_conflict(core: K8s, ns: str) -> None:
    cm = core.core.create_namespaced_config_map(
        ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c"), data={"a": "1"}))
    stale = cm.metadata.resource_version
    core.core.patch_namespaced_config_map("c", ns, {"data": {"a": "2"}})
    cm.data = {"a": "3"}
    err = api_error(lambda: core.core.replace_namespaced_config_map("c", ns, cm))
    assert err.status == 409 and err.status_body["reason"] == "Conflict"
    assert "the object has been modified; please apply your changes to the latest version and try again" \
        in err.status_body["message"]
    r = core.raw.request("PATCH", cm_path(ns, "c"), content_type=MERGE,
                         body={"metadata": {"resourceVersion": stale}, "data": {"a": "4"}})
    assert r.status == 409 and r.status_obj()["reason"] == "Conflict"
    assert core.core.read_namespaced_config_map("c", ns).data == {"a": "2"}


def test_stale_rv_on_cr_409(widgets: K8s, ns: str) -> None:
    r = widgets.raw.request("POST", w_path(ns), body=widget("c"))
    obj = r.body
    widgets.raw.request("PATCH", w_path(ns, "c"), body={"spec": {"size": 2}}, content_type=MERGE)
    obj["spec"]["size"] = 5
    r = widgets.raw.request("PUT", w_path(ns, "c"), body=obj)
    assert r.status == 409 and r.status_obj()["reason"] == "Conflict"
    obj["metadata"].pop("resourceVersion")
    r = widgets.raw.request("PUT", w_path(ns, "c"), body=obj)
    assert r.status == 422, "a CR PUT without resourceVersion is rejected (unconditional update not allowed)"
    assert r.status_obj()["reason"] == "Invalid"


def test_delete_preconditions(core: K8s, ns: str) -> None:
    cm = core.core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="d")))
    for pre in ({"uid": "00000000-0000-0000-0000-000000000000"}, {"resourceVersion": "1"}):
        r = core.raw.request("DELETE", cm_path(ns, "d"), body={"kind": "DeleteOptions", "apiVersion": "v1",
                                                               "preconditions": pre})
        assert r.status == 409 and r.status_obj()["reason"] == "Conflict", (pre, r.text)
    r = core.raw.request("DELETE", cm_path(ns, "d"), body={
        "preconditions": {"uid": cm.metadata.uid, "resourceVersion": cm.metadata.resource_version}})
    assert r.status == 200, r.text
    assert r.body["kind"] == "Status" and r.body["status"] == "Success"
    assert r.body["details"]["name"] == "d" and r.body["details"]["uid"] == cm.metadata.uid
    assert core.raw.request("DELETE", cm_path(ns, "d")).status == 404


def test_cr_delete_returns_object(widgets: K8s, ns: str) -> None:
    widgets.raw.request("POST", w_path(ns), body=widget("del"))
    r = widgets.raw.request("DELETE", w_path(ns, "del"))
    assert r.status == 200, r.text
    # 1.20 answers a Status (Success, details.name); the object itself is also allowed by the API
    if r.body["kind"] == "Status":
        assert r.body["status"] == "Success" and r.body["details"]["name"] == "del", r.body
    else:
        assert r.body["kind"] == "Widget" and r.body["metadata"]["name"] == "del", r.body
    assert widgets.raw.request("GET", w_path(ns, "del")).status == 404


def test_finalizers_and_deletion_timestamp(widgets: K8s, ns: str) -> None:
    body = widget("fin")
    body["metadata"]["finalizers"] = ["contract.lbspeaker.io/hold"]
    widgets.raw.request("POST", w_path(ns), body=body)
    r = widgets.raw.request("DELETE", w_path(ns, "fin"))
    assert r.status == 200, r.text
    md = r.body["metadata"]
    assert md["deletionTimestamp"] and md["deletionGracePeriodSeconds"] == 0
    got = widgets.raw.request("GET", w_path(ns, "fin")).body
    assert got["metadata"]["deletionTimestamp"] == md["deletionTimestamp"]
    gen = got["metadata"]["generation"]
    r = widgets.raw.request("PATCH", w_path(ns, "fin"), body={"spec": {"size": 4}}, content_type=MERGE)
    assert r.status == 200 and r.body["metadata"]["generation"] == gen + 1
    r = widgets.raw.request("PATCH", w_path(ns, "fin"), content_type=MERGE,
                            body={"metadata": {"finalizers": ["x/new"]}})
    assert r.status == 422, "no new finalizers once deletionTimestamp is set: " + r.text
    r = widgets.raw.request("PATCH", w_path(ns, "fin"), body={"metadata": {"finalizers": None}},
                            content_type=MERGE)
    assert r.status == 200, r.text
    assert widgets.raw.request("GET", w_path(ns, "fin")).status == 404

"""List selector contract: label selector operators, metadata.name / metadata.namespace field
selectors, and 400 BadRequest for unsupported fields and malformed selectors."""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.contract.conftest import WIDGET_GROUP, WIDGET_PLURAL, WIDGET_VERSION, K8s, widget
from tests.contract.helpers import uniq

pytestmark = pytest.mark.contract

LABELS = {"a": {"tier": "web", "env": "prod"}, "b": {"tier": "db", "env": "prod"},
          "c": {"tier": "web"}, "d": {}}

CASES = [
    ("tier=web", {"a", "c"}),
    ("tier==web", {"a", "c"}),
    ("tier!=web", {"b", "d"}),
    ("tier in (web,db)", {"a", "b", "c"}),
    ("tier notin (web)", {"b", "d"}),
    ("env", {"a", "b"}),
    ("!env", {"c", "d"}),
    ("tier=web,env=prod", {"a"}),
    ("tier in (web),!env", {"c"}),
    ("tier=nothing", set()),
]


@pytest.fixture
def labelled(core: K8s, ns: str) -> str:
    """Four ConfigMaps a..d with LABELS in ns."""
    for name, labels in LABELS.items():
        core.core.create_namespaced_config_map(ns, client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=name, labels=labels or None)))
    return ns


@pytest.mark.parametrize(("selector", "want"), CASES)
def test_label_selectors(core: K8s, labelled: str, selector: str, want: set[str]) -> None:
    got = core.core.list_namespaced_config_map(labelled, label_selector=selector)
    assert {i.metadata.name for i in got.items} == want
    assert got.metadata.resource_version


def test_label_selector_on_custom_resources(widgets: K8s, ns: str) -> None:
    base = f"/apis/{WIDGET_GROUP}/{WIDGET_VERSION}/namespaces/{ns}/{WIDGET_PLURAL}"
    for name, labels in LABELS.items():
        body = widget(name)
        body["metadata"]["labels"] = labels
        assert widgets.raw.request("POST", base, body=body).status == 201
    for selector, want in CASES:
        r = widgets.raw.request("GET", base, query={"labelSelector": selector})
        assert r.status == 200, r.text
        assert {i["metadata"]["name"] for i in r.body["items"]} == want, selector
        assert r.body["kind"] == "WidgetList" and r.body["apiVersion"] == f"{WIDGET_GROUP}/{WIDGET_VERSION}"


def test_field_selectors_name_and_namespace(core: K8s, labelled: str) -> None:
    got = core.core.list_namespaced_config_map(labelled, field_selector="metadata.name=b")
    assert [i.metadata.name for i in got.items] == ["b"]
    got = core.core.list_namespaced_config_map(labelled, field_selector="metadata.name!=b")
    assert {i.metadata.name for i in got.items} >= {"a", "c", "d"} and "b" not in {
        i.metadata.name for i in got.items}
    got = core.core.list_config_map_for_all_namespaces(field_selector=f"metadata.namespace={labelled}")
    assert {i.metadata.name for i in got.items} >= {"a", "b", "c", "d"}
    assert {i.metadata.namespace for i in got.items} == {labelled}
    got = core.core.list_config_map_for_all_namespaces(
        field_selector=f"metadata.namespace={labelled},metadata.name=c", label_selector="tier=web")
    assert [(i.metadata.namespace, i.metadata.name) for i in got.items] == [(labelled, "c")]


def test_field_selectors_on_custom_resources(widgets: K8s, ns: str) -> None:
    base = f"/apis/{WIDGET_GROUP}/{WIDGET_VERSION}"
    widgets.raw.request("POST", f"{base}/namespaces/{ns}/{WIDGET_PLURAL}", body=widget("x"))
    widgets.raw.request("POST", f"{base}/namespaces/{ns}/{WIDGET_PLURAL}", body=widget("y"))
    r = widgets.raw.request("GET", f"{base}/{WIDGET_PLURAL}",
                            query={"fieldSelector": f"metadata.namespace={ns},metadata.name=y"})
    assert r.status == 200 and [i["metadata"]["name"] for i in r.body["items"]] == ["y"], r.text
    r = widgets.raw.request("GET", f"{base}/namespaces/{ns}/{WIDGET_PLURAL}",
                            query={"fieldSelector": "spec.size=1"})
    assert r.status == 400 and r.status_obj()["reason"] == "BadRequest", r.text


def test_service_field_selector_spec_cluster_ip(core: K8s, ns: str) -> None:
    """spec.type is not a field selector for Services: 400 naming the field."""
    core.core.create_namespaced_service(ns, client.V1Service(
        metadata=client.V1ObjectMeta(name="s"), spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=80)])))
    r = core.raw.request("GET", f"/api/v1/namespaces/{ns}/services", query={"fieldSelector": "spec.type=ClusterIP"})
    st = r.status_obj()
    assert r.status == 400 and st["reason"] == "BadRequest"
    assert '"spec.type" is not a known field selector' in st["message"], st["message"]


def test_unsupported_field_selector_400(core: K8s, labelled: str) -> None:
    r = core.raw.request("GET", f"/api/v1/namespaces/{labelled}/configmaps",
                         query={"fieldSelector": "data.x=1"})
    st = r.status_obj()
    assert r.status == 400 and st["reason"] == "BadRequest"
    assert '"data.x" is not a known field selector' in st["message"], st["message"]
    err = None
    try:
        core.core.list_namespaced_config_map(labelled, field_selector="data.x=1")
    except client.ApiException as e:
        err = e
    assert err is not None and err.status == 400


@pytest.mark.parametrize("bad", ["tier in web", "=x", "a b", "tier notin ()x", "!"])
def test_malformed_label_selector_400(core: K8s, labelled: str, bad: str) -> None:
    r = core.raw.request("GET", f"/api/v1/namespaces/{labelled}/configmaps", query={"labelSelector": bad})
    assert r.status == 400 and r.status_obj()["reason"] == "BadRequest", (bad, r.text)


@pytest.mark.parametrize("bad", ["metadata.name", "metadata.name=a=b=c,", "==x"])
def test_malformed_field_selector_400(core: K8s, labelled: str, bad: str) -> None:
    r = core.raw.request("GET", f"/api/v1/namespaces/{labelled}/configmaps", query={"fieldSelector": bad})
    assert r.status == 400 and r.status_obj()["reason"] == "BadRequest", (bad, r.text)


def test_list_in_namespace_only_sees_that_namespace(core: K8s, labelled: str) -> None:
    other = uniq("lbc")
    core.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=other)))
    try:
        core.core.create_namespaced_config_map(other, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="a")))
        got = core.core.list_namespaced_config_map(labelled)
        assert {i.metadata.namespace for i in got.items} == {labelled}
    finally:
        core.core.delete_namespace(other)

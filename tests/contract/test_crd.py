"""CRD contract: registration → NamesAccepted/Established, structural-schema validation (422 with
the field path), defaulting, pruning of unknown fields, the status subresource of a custom resource,
and OUR CRDs (config/crd) with OUR samples (config/samples) accepted and broken pools rejected."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.contract.conftest import (
    WIDGET_CRD,
    WIDGET_GROUP,
    WIDGET_PLURAL,
    WIDGET_VERSION,
    K8s,
    crd_established,
    ensure_crd,
    widget,
)
from tests.contract.helpers import MERGE, cause_fields, uniq, wait_for
from tests.contract.servers import CORE, CRD_INDEXED_PATHS, CRD_LIST_UNIQUE, Server

pytestmark = pytest.mark.contract

ROOT = Path(__file__).resolve().parents[2]
CRD_FILES = sorted((ROOT / "config" / "crd").glob("lbspeaker.io_*.yaml"))  # not its kustomization.yaml
SAMPLE_FILES = sorted((ROOT / "config" / "samples").glob("*.yaml"))
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def crd_field(api: Server, field: str) -> str:
    """The field path a server names for a CR schema error: 1.20 drops list indices
    (spec.a.b where modern servers say spec.a[0].b); see the gates in docs/contract.md."""
    return field if api.has(CRD_INDEXED_PATHS) else re.sub(r"\[\d+\]", "", field)


def w_path(ns: str, name: str = "", sub: str = "") -> str:
    """Widget path."""
    p = f"/apis/{WIDGET_GROUP}/{WIDGET_VERSION}/namespaces/{ns}/{WIDGET_PLURAL}" + (f"/{name}" if name else "")
    return p + (f"/{sub}" if sub else "")


def test_crd_registration_conditions(widgets: K8s) -> None:
    r = widgets.raw.request("GET", f"{CRDS}/{WIDGET_PLURAL}.{WIDGET_GROUP}")
    conds = {c["type"]: c["status"] for c in r.body["status"]["conditions"]}
    assert conds.get("NamesAccepted") == "True" and conds.get("Established") == "True", conds
    assert r.body["status"]["acceptedNames"]["kind"] == "Widget"
    assert r.body["status"]["storedVersions"] == [WIDGET_VERSION]
    assert r.body["metadata"]["generation"] == 1


def test_new_crd_is_served_after_established(widgets: K8s) -> None:
    crd = copy.deepcopy(WIDGET_CRD)
    plural = uniq("gadgets").replace("-", "")
    crd["metadata"]["name"] = f"{plural}.{WIDGET_GROUP}"
    crd["spec"]["names"] = {"plural": plural, "singular": plural[:-1], "kind": "Gadget" + plural[-4:].upper(),
                            "listKind": "GadgetList" + plural[-4:].upper()}
    ensure_crd(widgets, crd)
    r = widgets.raw.request("GET", f"/apis/{WIDGET_GROUP}/{WIDGET_VERSION}")
    assert plural in {res["name"] for res in r.body["resources"]}, r.text
    assert widgets.raw.request("DELETE", f"{CRDS}/{crd['metadata']['name']}").status == 200
    wait_for(lambda: widgets.raw.request("GET", f"/apis/{WIDGET_GROUP}/{WIDGET_VERSION}/{plural}").status == 404,
             timeout=30, what="deleted CRD stops being served")


def test_invalid_crd_rejected(widgets: K8s) -> None:
    crd = copy.deepcopy(WIDGET_CRD)
    crd["metadata"]["name"] = "wrong.name.example"
    r = widgets.raw.request("POST", CRDS, body=crd)
    st = r.status_obj()
    assert r.status == 422 and st["reason"] == "Invalid" and "metadata.name" in cause_fields(st), r.text


@pytest.mark.parametrize(("spec", "field"), [
    ({"size": 0}, "spec.size"),
    ({"size": 11}, "spec.size"),
    ({"size": "big"}, "spec.size"),
    ({"size": 1, "color": "green"}, "spec.color"),
    ({"size": 1, "tags": "a"}, "spec.tags"),
    ({"size": 1, "tags": [1]}, "spec.tags[0]"),
    ({}, "spec.size"),
])
def test_cr_validation_422_with_field_path(widgets: K8s, ns: str, spec: dict[str, Any], field: str) -> None:
    body = widget("bad")
    body["spec"] = spec
    r = widgets.raw.request("POST", w_path(ns), body=body)
    st = r.status_obj()
    assert r.status == 422 and st["reason"] == "Invalid", r.text
    assert crd_field(widgets.api, field) in cause_fields(st), st
    assert st["details"]["name"] == "bad" and st["details"]["kind"] == "Widget"
    assert st["details"]["group"] == WIDGET_GROUP
    assert st["message"].startswith('Widget.contract.lbspeaker.io "bad" is invalid: '), st["message"]


def test_cr_update_validated_too(widgets: K8s, ns: str) -> None:
    widgets.raw.request("POST", w_path(ns), body=widget("upd"))
    r = widgets.raw.request("PATCH", w_path(ns, "upd"), body={"spec": {"size": 99}}, content_type=MERGE)
    assert r.status == 422 and "spec.size" in cause_fields(r.status_obj()), r.text


def test_unknown_fields_pruned(widgets: K8s, ns: str) -> None:
    body = widget("pr")
    body["spec"]["bogus"] = {"x": 1}
    body["extra"] = "dropped"
    body["metadata"]["labels"] = {"keep": "me"}
    r = widgets.raw.request("POST", w_path(ns), body=body)
    assert r.status == 201, r.text
    assert "bogus" not in r.body["spec"] and "extra" not in r.body
    assert r.body["metadata"]["labels"] == {"keep": "me"}
    stored = widgets.raw.request("GET", w_path(ns, "pr")).body
    assert "bogus" not in stored["spec"] and "extra" not in stored


def test_cr_status_subresource(widgets: K8s, ns: str) -> None:
    body = widget("st")
    body["status"] = {"phase": "Ignored"}
    r = widgets.raw.request("POST", w_path(ns), body=body)
    assert r.status == 201 and "status" not in r.body, "status is dropped on create"
    obj = r.body
    obj["status"] = {"phase": "Main"}
    r = widgets.raw.request("PUT", w_path(ns, "st"), body=obj)
    assert r.status == 200 and "status" not in r.body, "status ignored on the main resource"
    obj = r.body
    obj["status"] = {"phase": "Ready", "conditions": [{"type": "A", "status": "True"}]}
    obj["spec"]["size"] = 9
    r = widgets.raw.request("PUT", w_path(ns, "st", "status"), body=obj)
    assert r.status == 200, r.text
    assert r.body["status"]["phase"] == "Ready" and r.body["spec"]["size"] == 1, "spec ignored on /status"
    assert r.body["metadata"]["generation"] == 1
    r = widgets.raw.request("PATCH", w_path(ns, "st", "status"), content_type=MERGE,
                            body={"status": {"phase": 5}})
    assert r.status == 422 and "status.phase" in cause_fields(r.status_obj()), r.text
    r = widgets.raw.request("GET", w_path(ns, "st", "status"))
    assert r.status == 200 and r.body["status"]["phase"] == "Ready" and r.body["kind"] == "Widget"


def _load(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.fixture
def our_crds(k8s: K8s) -> K8s:
    """k8s with config/crd/*.yaml registered."""
    if not CRD_FILES:
        pytest.fail("config/crd/*.yaml missing")
    for f in CRD_FILES:
        for doc in _load(f):
            ensure_crd(k8s, doc)
            assert crd_established(k8s, doc["metadata"]["name"])
    return k8s


def _served() -> dict[tuple[str, str], str]:
    """(apiVersion, kind) → plural for every version of every CRD in config/crd."""
    out = {}
    for f in CRD_FILES:
        for crd in _load(f):
            spec = crd["spec"]
            for v in spec["versions"]:
                out[(f"{spec['group']}/{v['name']}", spec["names"]["kind"])] = spec["names"]["plural"]
    return out


def test_our_samples_accepted(our_crds: K8s, ns: str) -> None:
    docs = [d for f in SAMPLE_FILES for d in _load(f)]
    assert docs, "config/samples/*.yaml missing"
    served = _served()
    for doc in docs:
        body = copy.deepcopy(doc)
        body["metadata"]["namespace"] = ns
        if doc["apiVersion"] == "v1":
            if not our_crds.api.has(CORE):
                continue
            r = our_crds.raw.request("POST", f"/api/v1/namespaces/{ns}/{doc['kind'].lower()}s", body=body)
            assert r.status == 201, (doc["kind"], doc["metadata"]["name"], r.text)
            continue
        plural = served.get((doc["apiVersion"], doc["kind"]))
        assert plural, f"sample {doc['kind']} {doc['metadata']['name']!r}: no CRD for it in config/crd"
        r = our_crds.raw.request("POST", f"/apis/{doc['apiVersion']}/namespaces/{ns}/{plural}", body=body)
        assert r.status == 201, (doc["kind"], doc["metadata"]["name"], r.text)
        assert {k: r.body["spec"].get(k) for k in doc["spec"]} == doc["spec"], "sample spec kept as written"


def test_pool_defaults_applied(our_crds: K8s, ns: str) -> None:
    body = {"apiVersion": "lbspeaker.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "d"},
            "spec": {"addresses": ["192.0.2.0/28"]}}
    r = our_crds.raw.request("POST", f"/apis/lbspeaker.io/v1beta1/namespaces/{ns}/ipaddresspools", body=body)
    assert r.status == 201, r.text
    assert r.body["spec"] == {"addresses": ["192.0.2.0/28"], "autoAssign": True, "avoidBuggyIPs": False}


BAD_POOLS: list[tuple[dict[str, Any] | None, str]] = [
    (None, "spec"),
    ({"addresses": []}, "spec.addresses"),
    ({"addresses": [""]}, "spec.addresses[0]"),
    ({"addresses": ["192.0.2.0/28"], "autoAssign": "yes"}, "spec.autoAssign"),
    ({"addresses": ["192.0.2.0/28"], "serviceAllocation": {"priority": -1}}, "spec.serviceAllocation.priority"),
    ({"addresses": ["192.0.2.0/28"], "serviceAllocation": {"serviceSelectors": [
        {"matchExpressions": [{"key": "a", "operator": "Maybe"}]}]}},
     "spec.serviceAllocation.serviceSelectors[0].matchExpressions[0].operator"),
]


@pytest.mark.parametrize(("spec", "field"), BAD_POOLS)
def test_bad_pools_rejected_with_field_path(our_crds: K8s, ns: str, spec: dict[str, Any] | None,
                                            field: str) -> None:
    body: dict[str, Any] = {"apiVersion": "lbspeaker.io/v1beta1", "kind": "IPAddressPool",
                            "metadata": {"name": "bad"}}
    if spec is not None:
        body["spec"] = spec
    r = our_crds.raw.request("POST", f"/apis/lbspeaker.io/v1beta1/namespaces/{ns}/ipaddresspools", body=body)
    st = r.status_obj()
    assert r.status == 422 and st["reason"] == "Invalid", r.text
    assert crd_field(our_crds.api, field) in cause_fields(st), st
    assert st["message"].startswith('IPAddressPool.lbspeaker.io "bad" is invalid: '), st["message"]


def test_pool_status_conditions_map_list(our_crds: K8s, ns: str) -> None:
    base = f"/apis/lbspeaker.io/v1beta1/namespaces/{ns}/ipaddresspools"
    body = {"apiVersion": "lbspeaker.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "c"},
            "spec": {"addresses": ["192.0.2.0/28"]}}
    assert our_crds.raw.request("POST", base, body=body).status == 201
    cond = {"type": "Valid", "status": "Maybe"}
    r = our_crds.raw.request("PATCH", f"{base}/c/status", content_type=MERGE, body={"status": {"conditions": [cond]}})
    want = crd_field(our_crds.api, "status.conditions[0].status")
    assert r.status == 422 and want in cause_fields(r.status_obj()), r.text
    if our_crds.api.has(CRD_LIST_UNIQUE):
        dup = [{"type": "Valid", "status": "True"}, {"type": "Valid", "status": "False"}]
        r = our_crds.raw.request("PATCH", f"{base}/c/status", content_type=MERGE,
                                 body={"status": {"conditions": dup}})
        assert r.status == 422 and "status.conditions[1]" in cause_fields(r.status_obj()), r.text
    ok = {"status": {"conditions": [{"type": "Valid", "status": "True", "reason": "Parsed"}],
                     "availableIPv4": 16, "observedGeneration": 1}}
    r = our_crds.raw.request("PATCH", f"{base}/c/status", content_type=MERGE, body=ok)
    assert r.status == 200 and r.body["status"]["availableIPv4"] == 16, r.text


def test_client_custom_objects_api(widgets: K8s, ns: str) -> None:
    """CustomObjectsApi round trip (trap 9: create expects 201; a dict patch is a merge patch)."""
    co = widgets.custom
    made = co.create_namespaced_custom_object(WIDGET_GROUP, WIDGET_VERSION, ns, WIDGET_PLURAL, widget("co"))
    assert made["metadata"]["name"] == "co" and made["metadata"]["generation"] == 1
    got = co.get_namespaced_custom_object(WIDGET_GROUP, WIDGET_VERSION, ns, WIDGET_PLURAL, "co")
    assert got["metadata"]["uid"] == made["metadata"]["uid"]
    patched = co.patch_namespaced_custom_object(WIDGET_GROUP, WIDGET_VERSION, ns, WIDGET_PLURAL, "co",
                                                {"spec": {"size": 3}})
    assert patched["spec"] == {"size": 3} and patched["metadata"]["generation"] == 2
    st = co.patch_namespaced_custom_object_status(WIDGET_GROUP, WIDGET_VERSION, ns, WIDGET_PLURAL, "co",
                                                  {"status": {"phase": "Ready"}})
    assert st["status"] == {"phase": "Ready"}
    lst = co.list_namespaced_custom_object(WIDGET_GROUP, WIDGET_VERSION, ns, WIDGET_PLURAL)
    assert [i["metadata"]["name"] for i in lst["items"]] == ["co"] and lst["kind"] == "WidgetList"
    co.delete_namespaced_custom_object(WIDGET_GROUP, WIDGET_VERSION, ns, WIDGET_PLURAL, "co")
    assert widgets.raw.request("GET", w_path(ns, "co")).status == 404

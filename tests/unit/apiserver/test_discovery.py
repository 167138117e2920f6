"""Discovery, version, health, OpenAPI and Table answers."""

from __future__ import annotations

from kubernetes import client

from lbspeaker.apiserver.tables import human_duration, jsonpath
from tests.unit.apiserver.conftest import Raw, svc_body

TABLE = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"}


def test_version_and_health(raw: Raw, api: client.ApiClient) -> None:
    _, _, v = raw("GET", "/version")
    assert v["major"] == "1" and v["minor"] == "32" and v["gitVersion"].startswith("v1.32.")
    assert client.VersionApi(api).get_code().git_version == v["gitVersion"]
    for p in ("/healthz", "/readyz", "/livez"):
        code, _, body = raw("GET", p)
        assert code == 200 and body == "ok"


def test_legacy_discovery(raw: Raw) -> None:
    _, _, apis = raw("GET", "/api")
    assert apis["kind"] == "APIVersions" and apis["versions"] == ["v1"]
    _, _, rl = raw("GET", "/api/v1")
    by = {r["name"]: r for r in rl["resources"]}
    assert by["services"]["shortNames"] == ["svc"] and by["services"]["namespaced"] is True
    assert by["services"]["singularName"] == "service" and "watch" in by["services"]["verbs"]
    assert by["services/status"]["verbs"] == ["get", "patch", "update"]
    assert by["nodes"]["namespaced"] is False and by["nodes"]["shortNames"] == ["no"]
    for short in ("ns", "po", "cm", "ep"):
        assert any(short in r.get("shortNames", []) for r in rl["resources"])
    _, hdrs, groups = raw(
        "GET",
        "/apis",
        headers={"Accept": "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"},
    )
    assert hdrs["content-type"] == "application/json" and groups["kind"] == "APIGroupList"
    names = [g["name"] for g in groups["groups"]]
    assert {"discovery.k8s.io", "coordination.k8s.io", "apiextensions.k8s.io", "events.k8s.io"} <= set(names)
    _, _, g = raw("GET", "/apis/discovery.k8s.io")
    assert g["kind"] == "APIGroup" and g["preferredVersion"]["version"] == "v1"
    _, _, rl = raw("GET", "/apis/discovery.k8s.io/v1")
    assert rl["groupVersion"] == "discovery.k8s.io/v1"
    assert raw("GET", "/apis/nope.io/v1")[0] == 404


def test_openapi_v3(raw: Raw) -> None:
    _, _, idx = raw("GET", "/openapi/v3")
    url = idx["paths"]["api/v1"]["serverRelativeURL"]
    assert url.startswith("/openapi/v3/api/v1?hash=")
    _, _, doc = raw("GET", url)
    patch = doc["paths"]["/api/v1/namespaces/{namespace}/services/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "", "version": "v1", "kind": "Service"}
    assert {"name": "fieldValidation", "in": "query"}.items() <= patch["parameters"][0].items()
    assert raw("GET", "/openapi/v3/apis/nope/v1")[0] == 404
    assert raw("GET", "/openapi/v2")[0] == 200


def test_service_table(raw: Raw, v1: client.CoreV1Api) -> None:
    v1.create_namespaced_service("default", svc_body("lb", stype="LoadBalancer"))
    _, _, tab = raw("GET", "/api/v1/namespaces/default/services", headers=TABLE)
    assert tab["kind"] == "Table" and tab["apiVersion"] == "meta.k8s.io/v1"
    cols = [c["name"] for c in tab["columnDefinitions"] if c["priority"] == 0]
    assert cols == ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age"]
    rows = {r["cells"][0]: r for r in tab["rows"]}
    assert rows["lb"]["cells"][3] == "<pending>" and rows["kubernetes"]["cells"][3] == "<none>"
    assert rows["lb"]["object"]["kind"] == "PartialObjectMetadata"
    v1.patch_namespaced_service_status(
        "lb",
        "default",
        {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}, {"ip": "2001:db8::1"}]}}},
    )
    _, _, tab = raw("GET", "/api/v1/namespaces/default/services/lb?includeObject=Object", headers=TABLE)
    assert tab["rows"][0]["cells"][3] == "192.0.2.1,2001:db8::1" and tab["rows"][0]["object"]["kind"] == "Service"


def test_other_tables(raw: Raw, v1: client.CoreV1Api) -> None:
    v1.create_node(
        {
            "metadata": {"name": "n1", "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        }
    )
    _, _, tab = raw("GET", "/api/v1/nodes", headers=TABLE)
    assert tab["rows"][0]["cells"][:3] == ["n1", "Ready", "control-plane"]
    _, _, tab = raw("GET", "/api/v1/namespaces", headers=TABLE)
    assert [c["name"] for c in tab["columnDefinitions"]] == ["Name", "Status", "Age"]
    _, _, tab = raw("GET", "/api/v1/namespaces/default/configmaps", headers=TABLE)
    assert [c["name"] for c in tab["columnDefinitions"]] == ["Name", "Data", "Age"]
    _, _, tab = raw("GET", "/api/v1/namespaces/default/serviceaccounts", headers=TABLE)
    assert [c["name"] for c in tab["columnDefinitions"]] == ["Name", "Age"]


def test_human_duration_and_jsonpath() -> None:
    assert [human_duration(s) for s in (5, 119, 125, 600, 3 * 3600 + 60, 9 * 3600, 3 * 86400)] == [
        "5s",
        "119s",
        "2m5s",
        "10m",
        "3h1m",
        "9h",
        "3d",
    ]
    obj = {
        "status": {"conditions": [{"type": "A", "status": "False"}, {"type": "Ready", "status": "True"}]},
        "spec": {"l": [1, 2]},
    }
    assert jsonpath(obj, '.status.conditions[?(@.type=="Ready")].status') == ["True"]
    assert jsonpath(obj, ".spec.l[*]") == [1, 2] and jsonpath(obj, ".spec.l[-1]") == [2]
    assert jsonpath(obj, ".spec.missing") == []

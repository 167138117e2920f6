"""PATCH flavours: merge, JSON patch, strategic merge (built-ins), 415 for strategic on CRs."""

from __future__ import annotations

import pytest
from kubernetes import client

from lbspeaker.apiserver import patch
from tests.unit.apiserver.conftest import WIDGET_CRD, Raw, svc_body, widget

MERGE = "application/merge-patch+json"
JSONP = "application/json-patch+json"
SMP = "application/strategic-merge-patch+json"


def test_json_merge_rfc7386() -> None:
    assert patch.json_merge({"a": {"b": 1, "c": 2}, "l": [1]}, {"a": {"b": None, "d": 3}, "l": [2]}) == {
        "a": {"c": 2, "d": 3},
        "l": [2],
    }


@pytest.mark.parametrize(
    ("target", "ops", "want"),
    [
        ({"a": [1, 2]}, [{"op": "add", "path": "/a/-", "value": 3}], {"a": [1, 2, 3]}),
        ({"a": [1, 2]}, [{"op": "add", "path": "/a/0", "value": 0}], {"a": [0, 1, 2]}),
        ({"a": {"b~c": 1}}, [{"op": "remove", "path": "/a/b~0c"}], {"a": {}}),
        ({"a": 1}, [{"op": "replace", "path": "/a", "value": 2}], {"a": 2}),
        ({"a": 1}, [{"op": "move", "from": "/a", "path": "/b"}], {"b": 1}),
        ({"a": 1}, [{"op": "copy", "from": "/a", "path": "/b"}], {"a": 1, "b": 1}),
        ({"a": 1}, [{"op": "test", "path": "/a", "value": 1}], {"a": 1}),
    ],
)
def test_json_patch_ops(target: dict, ops: list, want: dict) -> None:
    assert patch.json_patch(target, ops) == want


@pytest.mark.parametrize(
    ("target", "smp", "want"),
    [
        (
            {"spec": {"ports": [{"port": 80, "name": "a"}, {"port": 81}]}},
            {"spec": {"ports": [{"port": 81, "name": "b"}, {"port": 82}]}},
            {"spec": {"ports": [{"port": 80, "name": "a"}, {"port": 81, "name": "b"}, {"port": 82}]}},
        ),
        (
            {"spec": {"ports": [{"port": 80}, {"port": 81}]}},
            {"spec": {"ports": [{"port": 80, "$patch": "delete"}]}},
            {"spec": {"ports": [{"port": 81}]}},
        ),
        (
            {"spec": {"ports": [{"port": 80}, {"port": 81}]}},
            {"spec": {"ports": [{"$patch": "replace"}, {"port": 90}]}},
            {"spec": {"ports": [{"port": 90}]}},
        ),
        (
            {"metadata": {"finalizers": ["a", "b"]}},
            {"metadata": {"finalizers": ["c", "a"]}},
            {"metadata": {"finalizers": ["a", "b", "c"]}},
        ),
        (
            {"metadata": {"finalizers": ["a", "b"]}},
            {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}},
            {"metadata": {"finalizers": ["b"]}},
        ),
        (
            {"status": {"conditions": [{"type": "A", "status": "False"}, {"type": "B", "status": "True"}]}},
            {"status": {"conditions": [{"type": "A", "status": "True"}]}},
            {"status": {"conditions": [{"type": "A", "status": "True"}, {"type": "B", "status": "True"}]}},
        ),
        (
            {"spec": {"ports": [{"port": 80}, {"port": 81}]}},
            {"spec": {"$setElementOrder/ports": [{"port": 81}, {"port": 80}]}},
            {"spec": {"ports": [{"port": 81}, {"port": 80}]}},
        ),
        (
            {"spec": {"selector": {"a": "1"}, "externalIPs": ["192.0.2.1"]}},
            {"spec": {"selector": {"$patch": "replace", "b": "2"}, "externalIPs": ["192.0.2.2"]}},
            {"spec": {"selector": {"b": "2"}, "externalIPs": ["192.0.2.2"]}},
        ),
        ({"spec": {"a": 1, "b": 2}}, {"spec": {"a": None}}, {"spec": {"b": 2}}),
    ],
)
def test_strategic_merge_service(target: dict, smp: dict, want: dict) -> None:
    assert patch.strategic_merge(target, smp, patch.merge_keys_for("", "Service")) == want


def test_strategic_merge_pod_containers_by_name() -> None:
    pod = {"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}}
    got = patch.strategic_merge(
        pod, {"spec": {"containers": [{"name": "b", "image": "z"}]}}, patch.merge_keys_for("", "Pod")
    )
    assert got == {"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "z"}]}}


def test_python_client_dict_patch_is_strategic(v1: client.CoreV1Api) -> None:
    v1.create_namespaced_service(
        "default",
        {
            "metadata": {"name": "s"},
            "spec": {"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81}]},
        },
    )
    s = v1.patch_namespaced_service("s", "default", {"spec": {"ports": [{"name": "bb", "port": 81}]}})
    assert [(p.name, p.port) for p in s.spec.ports] == [("a", 80), ("bb", 81)]


def test_patch_over_http(raw: Raw) -> None:
    raw("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "c"}, "data": {"a": "1"}})
    code, _, obj = raw("PATCH", "/api/v1/namespaces/default/configmaps/c", {"data": {"b": "2"}}, ctype=MERGE)
    assert code == 200 and obj["data"] == {"a": "1", "b": "2"}
    ops = [{"op": "test", "path": "/data/a", "value": "nope"}, {"op": "remove", "path": "/data/a"}]
    code, _, st = raw("PATCH", "/api/v1/namespaces/default/configmaps/c", ops, ctype=JSONP)
    assert code == 422 and st["reason"] == "Invalid"
    ops = [{"op": "test", "path": "/data/a", "value": "1"}, {"op": "remove", "path": "/data/a"}]
    code, _, obj = raw("PATCH", "/api/v1/namespaces/default/configmaps/c", ops, ctype=JSONP)
    assert code == 200 and obj["data"] == {"b": "2"}
    code, _, _ = raw("PATCH", "/api/v1/namespaces/default/configmaps/missing", {}, ctype=MERGE)
    assert code == 404
    code, _, st = raw("PATCH", "/api/v1/namespaces/default/configmaps/c", raw=b"{", ctype=MERGE)
    assert code == 400


def test_strategic_on_custom_resource_is_415(raw: Raw) -> None:
    assert raw("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", WIDGET_CRD)[0] == 201
    assert raw("POST", "/apis/example.com/v1/namespaces/default/widgets", widget("w", size=2))[0] == 201
    code, _, st = raw("PATCH", "/apis/example.com/v1/namespaces/default/widgets/w", {"spec": {"size": 3}}, ctype=SMP)
    assert code == 415 and st["reason"] == "UnsupportedMediaType"
    code, _, obj = raw("PATCH", "/apis/example.com/v1/namespaces/default/widgets/w", {"spec": {"size": 3}}, ctype=MERGE)
    assert code == 200 and obj["spec"]["size"] == 3


def test_server_side_apply_approximation(raw: Raw) -> None:
    body = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa}\ndata: {a: '1'}\n"
    path = "/api/v1/namespaces/default/configmaps/ssa?fieldManager=test"
    code, _, obj = raw("PATCH", path, raw=body, ctype="application/apply-patch+yaml")
    assert code == 201 and obj["data"] == {"a": "1"}
    code, _, obj = raw("PATCH", path, raw=body.replace(b"'1'", b"'2'"), ctype="application/apply-patch+yaml")
    assert code == 200 and obj["data"] == {"a": "2"}
    code, _, _ = raw(
        "PATCH", "/api/v1/namespaces/default/configmaps/ssa", raw=body, ctype="application/apply-patch+yaml"
    )
    assert code == 400


def test_status_subresource_rules(v1: client.CoreV1Api, raw: Raw) -> None:
    svc = svc_body("st", stype="LoadBalancer")
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}
    s = v1.create_namespaced_service("default", svc)
    assert s.status.load_balancer.ingress is None  # status ignored on create
    code, _, obj = raw(
        "PATCH",
        "/api/v1/namespaces/default/services/st",
        {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.2"}]}}},
        ctype=MERGE,
    )
    assert code == 200 and obj["status"] == {"loadBalancer": {}}  # main endpoint ignores status
    code, _, obj = raw(
        "PATCH",
        "/api/v1/namespaces/default/services/st/status",
        {
            "spec": {"sessionAffinity": "ClientIP"},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.3"}]}},
        },
        ctype=MERGE,
    )
    assert code == 200 and obj["spec"]["sessionAffinity"] == "None"  # /status ignores spec
    assert obj["status"]["loadBalancer"]["ingress"] == [{"ip": "192.0.2.3"}]
    assert raw("GET", "/api/v1/namespaces/default/configmaps/x/status")[0] == 404

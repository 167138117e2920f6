"""CRUD semantics over HTTP: resourceVersion, server-set metadata, Status bodies, concurrency."""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.unit.apiserver.conftest import Raw, svc_body


def test_bootstrap_objects(v1: client.CoreV1Api) -> None:
    names = {n.metadata.name for n in v1.list_namespace().items}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names
    k = v1.read_namespaced_service("kubernetes", "default")
    assert k.spec.ports[0].port == 443 and k.spec.cluster_ip


def test_create_sets_server_fields_and_201(raw: Raw) -> None:
    code, _, obj = raw("POST", "/api/v1/namespaces/default/services", svc_body("web"))
    assert code == 201
    meta = obj["metadata"]
    assert meta["namespace"] == "default" and meta["uid"] and meta["creationTimestamp"].endswith("Z")
    assert "generation" not in meta and int(meta["resourceVersion"]) > 0
    code, _, cm = raw("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"generateName": "cfg-"}})
    assert code == 201 and cm["metadata"]["name"].startswith("cfg-") and len(cm["metadata"]["name"]) == 9
    assert cm["kind"] == "ConfigMap" and cm["apiVersion"] == "v1"


def test_resource_version_global_monotonic_and_no_bump_on_noop(v1: client.CoreV1Api) -> None:
    a = v1.create_namespaced_config_map("default", {"metadata": {"name": "a"}, "data": {"k": "1"}})
    b = v1.create_namespaced_config_map("kube-system", {"metadata": {"name": "b"}})
    assert int(b.metadata.resource_version) > int(a.metadata.resource_version)
    same = v1.patch_namespaced_config_map("a", "default", {"data": {"k": "1"}})
    assert same.metadata.resource_version == a.metadata.resource_version
    changed = v1.patch_namespaced_config_map("a", "default", {"data": {"k": "2"}})
    assert int(changed.metadata.resource_version) > int(b.metadata.resource_version)
    lst = v1.list_namespaced_config_map("default")
    assert int(lst.metadata.resource_version) >= int(changed.metadata.resource_version)


def test_generation_bumps_on_spec_only(v1: client.CoreV1Api, api: client.ApiClient) -> None:
    s = v1.create_namespaced_service("default", svc_body("gen", stype="LoadBalancer"))
    assert s.metadata.generation is None  # like a real server: Services carry no generation
    disc = client.DiscoveryV1Api(api)
    body = {"metadata": {"name": "es"}, "addressType": "IPv4", "endpoints": [{"addresses": ["192.0.2.1"]}]}
    es = disc.create_namespaced_endpoint_slice("default", body)
    assert es.metadata.generation == 1
    es = disc.patch_namespaced_endpoint_slice("es", "default", {"metadata": {"labels": {"x": "y"}}})
    assert es.metadata.generation == 1
    es = disc.patch_namespaced_endpoint_slice("es", "default", {"endpoints": [{"addresses": ["192.0.2.2"]}]})
    assert es.metadata.generation == 2


def test_status_bodies(raw: Raw) -> None:
    code, _, st = raw("GET", "/api/v1/namespaces/default/services/missing")
    assert code == 404 and st["kind"] == "Status" and st["apiVersion"] == "v1" and st["status"] == "Failure"
    assert st["reason"] == "NotFound" and st["details"] == {"name": "missing", "kind": "services"} and st["code"] == 404
    code, _, st = raw("POST", "/api/v1/namespaces/nope/services", svc_body("x"))
    assert code == 404 and st["details"]["name"] == "nope" and st["details"]["kind"] == "namespaces"
    raw("POST", "/api/v1/namespaces/default/services", svc_body("dup"))
    code, _, st = raw("POST", "/api/v1/namespaces/default/services", svc_body("dup"))
    assert code == 409 and st["reason"] == "AlreadyExists"
    code, _, st = raw("POST", "/api/v1/namespaces/default/services", svc_body("bad", port=0))
    assert code == 422 and st["reason"] == "Invalid"
    assert st["details"]["causes"][0]["field"] == "spec.ports[0].port"
    code, _, st = raw("POST", "/api/v1/namespaces/default/services/dup", svc_body("dup"))
    assert code == 405 and st["reason"] == "MethodNotAllowed"
    code, _, st = raw("POST", "/api/v1/namespaces/default/services", raw=b"<xml/>", ctype="application/xml")
    assert code == 415 and st["reason"] == "UnsupportedMediaType"
    code, _, st = raw("PATCH", "/api/v1/namespaces/default/services/dup", {"a": 1}, ctype="text/plain")
    assert code == 415
    code, _, st = raw("GET", "/no/such/path")
    assert code == 404 and st["kind"] == "Status"
    code, _, st = raw("GET", "/apis/example.com/v1/widgets")
    assert code == 404 and st["kind"] == "Status"


def test_delete_returns_object_or_status(raw: Raw) -> None:
    raw("POST", "/api/v1/namespaces/default/services", svc_body("gone"))
    code, _, obj = raw("DELETE", "/api/v1/namespaces/default/services/gone")
    assert code == 200 and obj["kind"] == "Service" and obj["metadata"]["name"] == "gone"
    raw("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "c"}})
    code, _, st = raw("DELETE", "/api/v1/namespaces/default/configmaps/c")
    assert code == 200 and st["kind"] == "Status" and st["status"] == "Success"
    assert raw("GET", "/api/v1/namespaces/default/configmaps/c")[0] == 404


def test_stale_resource_version_conflicts(v1: client.CoreV1Api) -> None:
    cm = v1.create_namespaced_config_map("default", {"metadata": {"name": "occ"}, "data": {"a": "1"}})
    stale = cm.metadata.resource_version
    cm.data = {"a": "2"}
    v1.replace_namespaced_config_map("occ", "default", cm)
    cm.data = {"a": "3"}
    cm.metadata.resource_version = stale
    with pytest.raises(client.ApiException) as err:
        v1.replace_namespaced_config_map("occ", "default", cm)
    assert err.value.status == 409 and "the object has been modified" in err.value.body
    with pytest.raises(client.ApiException) as err:
        v1.patch_namespaced_config_map("occ", "default", {"metadata": {"resourceVersion": stale}, "data": {"a": "4"}})
    assert err.value.status == 409


def test_delete_preconditions(v1: client.CoreV1Api) -> None:
    cm = v1.create_namespaced_config_map("default", {"metadata": {"name": "pre"}})
    for pre in ({"uid": "nope"}, {"resourceVersion": "1"}):
        with pytest.raises(client.ApiException) as err:
            v1.delete_namespaced_config_map("pre", "default", body=client.V1DeleteOptions(preconditions=pre))
        assert err.value.status == 409 and "Precondition failed" in err.value.body
    v1.delete_namespaced_config_map(
        "pre", "default", body=client.V1DeleteOptions(preconditions={"uid": cm.metadata.uid})
    )


def test_finalizers_delay_deletion(v1: client.CoreV1Api) -> None:
    v1.create_namespaced_config_map("default", {"metadata": {"name": "fin", "finalizers": ["example.com/x"]}})
    v1.delete_namespaced_config_map("fin", "default")
    cm = v1.read_namespaced_config_map("fin", "default")
    assert cm.metadata.deletion_timestamp is not None
    v1.patch_namespaced_config_map("fin", "default", [{"op": "remove", "path": "/metadata/finalizers"}])
    with pytest.raises(client.ApiException) as err:
        v1.read_namespaced_config_map("fin", "default")
    assert err.value.status == 404


def test_namespace_deletion_removes_objects(v1: client.CoreV1Api) -> None:
    v1.create_namespace({"metadata": {"name": "tmp"}})
    v1.create_namespaced_config_map("tmp", {"metadata": {"name": "c1"}})
    v1.create_namespaced_service("tmp", svc_body("s1"))
    v1.delete_namespace("tmp")
    assert v1.list_namespaced_config_map("tmp").items == []
    assert "tmp" not in {n.metadata.name for n in v1.list_namespace().items}
    with pytest.raises(client.ApiException) as err:
        v1.delete_namespace("default")
    assert err.value.status == 403


def test_list_pagination(v1: client.CoreV1Api) -> None:
    for i in range(7):
        v1.create_namespaced_config_map("default", {"metadata": {"name": f"p{i}"}})
    seen: list[str] = []
    cont = None
    for _ in range(10):
        page = v1.list_namespaced_config_map("default", limit=3, _continue=cont)
        seen += [c.metadata.name for c in page.items]
        cont = page.metadata._continue
        if not cont:
            break
    assert seen == [f"p{i}" for i in range(7)]


def test_dry_run_does_not_persist(raw: Raw) -> None:
    code, _, obj = raw("POST", "/api/v1/namespaces/default/configmaps?dryRun=All", {"metadata": {"name": "dry"}})
    assert code == 201 and obj["metadata"]["name"] == "dry"
    assert raw("GET", "/api/v1/namespaces/default/configmaps/dry")[0] == 404


def test_cluster_scoped_node_and_lease(api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    n = v1.create_node(
        {
            "metadata": {"name": "node-a"},
            "status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.5"}]},
        }
    )
    assert n.metadata.namespace is None and n.status.addresses[0].address == "192.0.2.5"
    coord = client.CoordinationV1Api(api)
    lease = coord.create_namespaced_lease(
        "kube-node-lease",
        {"metadata": {"name": "node-a"}, "spec": {"holderIdentity": "node-a", "leaseDurationSeconds": 10}},
    )
    lease.spec.lease_duration_seconds = 20
    got = coord.replace_namespaced_lease("node-a", "kube-node-lease", lease)
    assert got.spec.lease_duration_seconds == 20


def test_events_core_and_events_k8s_io(api: client.ApiClient) -> None:
    import datetime

    v1 = client.CoreV1Api(api)
    t = datetime.datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=datetime.UTC)
    ev = client.CoreV1Event(
        metadata=client.V1ObjectMeta(name="e1"),
        involved_object=client.V1ObjectReference(kind="Service", name="web", namespace="default", uid="u1"),
        reason="IPAllocated",
        message="assigned",
        type="Normal",
        event_time=t,
        first_timestamp=t,
        last_timestamp=t,
        reporting_component="lbspeaker",
        reporting_instance="x",
        action="Allocate",
    )
    got = v1.create_namespaced_event("default", ev)
    assert got.event_time == t
    found = v1.list_namespaced_event("default", field_selector="involvedObject.kind=Service,involvedObject.name=web")
    assert [e.metadata.name for e in found.items] == ["e1"]
    ev2 = client.EventsV1Event(
        metadata=client.V1ObjectMeta(name="e2"),
        event_time=t,
        reason="R",
        action="A",
        reporting_controller="lbspeaker/c",
        reporting_instance="i",
        type="Normal",
        note="n",
    )
    assert client.EventsV1Api(api).create_namespaced_event("default", ev2).note == "n"


def test_events_share_storage_across_apis(api: client.ApiClient) -> None:
    import datetime

    t = datetime.datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=datetime.UTC)
    ev = client.EventsV1Event(
        metadata=client.V1ObjectMeta(name="shared"),
        event_time=t,
        reason="IPAllocated",
        action="Allocate",
        note="assigned 192.0.2.1",
        type="Normal",
        reporting_controller="lbspeaker.io/controller",
        reporting_instance="c-1",
        regarding=client.V1ObjectReference(kind="Service", name="web", namespace="default", uid="u1"),
    )
    client.EventsV1Api(api).create_namespaced_event("default", ev)
    core = client.CoreV1Api(api).list_namespaced_event(
        "default", field_selector="involvedObject.kind=Service,involvedObject.name=web"
    )
    assert [(e.metadata.name, e.message, e.reporting_component) for e in core.items] == [
        ("shared", "assigned 192.0.2.1", "lbspeaker.io/controller")
    ]
    back = client.EventsV1Api(api).list_namespaced_event("default", field_selector="regarding.name=web")
    assert back.items[0].note == "assigned 192.0.2.1" and back.items[0].regarding.uid == "u1"


def test_owner_references_garbage_collected(v1: client.CoreV1Api, api: client.ApiClient) -> None:
    svc = v1.create_namespaced_service("default", svc_body("owner"))
    ref = {"apiVersion": "v1", "kind": "Service", "name": "owner", "uid": svc.metadata.uid}
    disc = client.DiscoveryV1Api(api)
    slice_body = {
        "metadata": {"name": "owner-abc", "ownerReferences": [ref], "labels": {"kubernetes.io/service-name": "owner"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["192.0.2.20"], "nodeName": "node-a"}],
        "ports": [{"port": 8080, "protocol": "TCP"}],
    }
    disc.create_namespaced_endpoint_slice("default", slice_body)
    v1.create_namespaced_config_map("default", {"metadata": {"name": "kept", "ownerReferences": [ref]}})
    v1.delete_namespaced_service("owner", "default")
    assert disc.list_namespaced_endpoint_slice("default").items == []
    assert v1.list_namespaced_config_map("default").items == []
    svc = v1.create_namespaced_service("default", svc_body("owner2"))
    ref["uid"] = svc.metadata.uid
    v1.create_namespaced_config_map("default", {"metadata": {"name": "orphan", "ownerReferences": [ref]}})
    v1.delete_namespaced_service("owner2", "default", propagation_policy="Orphan")
    assert [c.metadata.name for c in v1.list_namespaced_config_map("default").items] == ["orphan"]


def test_micro_time_fields_like_a_real_server(api: client.ApiClient, raw: Raw) -> None:
    """Trap 9: MicroTime needs six fraction digits (client v37 drops them when zero): 400, else UTC form."""
    import datetime

    coord = client.CoordinationV1Api(api)
    zero = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    with pytest.raises(client.ApiException) as err:
        coord.create_namespaced_lease("default", {"metadata": {"name": "l0"}, "spec": {"renewTime": zero}})
    assert err.value.status == 400
    body = {
        "metadata": {"name": "l1"},
        "spec": {"holderIdentity": "a", "renewTime": "2026-01-01T02:00:00.000001+02:00"},
    }
    code, _, got = raw("POST", "/apis/coordination.k8s.io/v1/namespaces/default/leases", body)
    assert code == 201 and got["spec"]["renewTime"] == "2026-01-01T00:00:00.000001Z"
    ev = {
        "metadata": {"name": "e"},
        "involvedObject": {"kind": "Service", "name": "s"},
        "eventTime": "2026-01-01T00:00:00Z",
    }
    code, _, st = raw("POST", "/api/v1/namespaces/default/events", ev)
    assert code == 400 and st["reason"] == "BadRequest"

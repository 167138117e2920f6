"""Service contract: defaulting on create, immutable clusterIP, NodePorts for LoadBalancer, and the
status subresource (status is ignored on create and main-resource writes, spec ignored on /status).
This is the object the controller writes `status.loadBalancer.ingress` on."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from kubernetes import client

from tests.contract.conftest import K8s, gate
from tests.contract.helpers import MERGE, STRATEGIC, cause_fields
from tests.contract.servers import LB_CLASS

pytestmark = pytest.mark.contract


def path(ns: str, name: str = "", sub: str = "") -> str:
    """Service path."""
    return f"/api/v1/namespaces/{ns}/services" + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")


def create(core: K8s, ns: str, name: str, **spec: Any) -> dict[str, Any]:
    """POST a Service; return the stored JSON."""
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                            "spec": {"ports": [{"name": "http", "port": 80}], **spec}}
    status = spec.pop("status", None)
    if status is not None:
        body["status"] = status
        body["spec"].pop("status", None)
    r = core.raw.request("POST", path(ns), body=body)
    assert r.status == 201, r.text
    return dict(r.body)


def test_cluster_ip_service_defaults(core: K8s, ns: str) -> None:
    spec = create(core, ns, "d")["spec"]
    assert spec["type"] == "ClusterIP" and spec["sessionAffinity"] == "None"
    ip = ipaddress.ip_address(spec["clusterIP"])
    assert spec["clusterIPs"] == [spec["clusterIP"]]
    assert spec["ipFamilies"] == ["IPv4" if ip.version == 4 else "IPv6"]
    assert spec["ipFamilyPolicy"] == "SingleStack"
    port = spec["ports"][0]
    assert port == {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 80}
    assert "externalTrafficPolicy" not in spec


def test_load_balancer_defaults(core: K8s, ns: str) -> None:
    svc = create(core, ns, "lb", type="LoadBalancer",
                 ports=[{"name": "a", "port": 80}, {"name": "b", "port": 443}])
    spec = svc["spec"]
    assert spec["externalTrafficPolicy"] == "Cluster"
    node_ports = [p["nodePort"] for p in spec["ports"]]
    assert all(30000 <= n <= 32767 for n in node_ports) and len(set(node_ports)) == 2
    assert svc["status"] == {"loadBalancer": {}}
    assert "healthCheckNodePort" not in spec


def test_local_traffic_policy_gets_health_check_node_port(core: K8s, ns: str) -> None:
    spec = create(core, ns, "loc", type="LoadBalancer", externalTrafficPolicy="Local")["spec"]
    assert 30000 <= spec["healthCheckNodePort"] <= 32767


def test_modern_service_fields(core: K8s, ns: str) -> None:
    gate(core.api, LB_CLASS, "Service spec.loadBalancerClass (1.24) and status ingress ipMode (1.30)")
    svc = create(core, ns, "cls", type="LoadBalancer", loadBalancerClass="lbspeaker.io/lb")
    assert svc["spec"]["loadBalancerClass"] == "lbspeaker.io/lb"
    assert svc["spec"]["internalTrafficPolicy"] == "Cluster"
    assert svc["spec"]["allocateLoadBalancerNodePorts"] is True
    r = core.raw.request("PATCH", path(ns, "cls", "status"), content_type=MERGE, body={
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10", "ipMode": "VIP"}]}}})
    assert r.status == 200 and r.body["status"]["loadBalancer"]["ingress"] == [
        {"ip": "192.0.2.10", "ipMode": "VIP"}], r.text
    r = core.raw.request("PATCH", path(ns, "cls"), content_type=MERGE,
                         body={"spec": {"loadBalancerClass": "other.io/x"}})
    assert r.status == 422 and "spec.loadBalancerClass" in cause_fields(r.status_obj()), r.text


def test_cluster_ip_is_immutable(core: K8s, ns: str) -> None:
    spec = create(core, ns, "imm")["spec"]
    ip = ipaddress.ip_address(spec["clusterIP"])
    other = str(ip + 1)
    r = core.raw.request("PATCH", path(ns, "imm"), content_type=MERGE, body={"spec": {"clusterIP": other}})
    st = r.status_obj()
    assert r.status == 422 and st["reason"] == "Invalid", r.text
    assert st["details"]["name"] == "imm" and st["details"]["kind"] == "Service"
    assert "spec.clusterIPs[0]" in cause_fields(st), st


def test_invalid_service_422_field_path(core: K8s, ns: str) -> None:
    r = core.raw.request("POST", path(ns), body={"metadata": {"name": "bad"}, "spec": {
        "ports": [{"port": 70000}], "type": "Nope"}})
    st = r.status_obj()
    assert r.status == 422 and st["reason"] == "Invalid"
    assert {"spec.ports[0].port", "spec.type"} <= cause_fields(st), st
    assert st["message"].startswith('Service "bad" is invalid: ')


def test_status_dropped_on_create(core: K8s, ns: str) -> None:
    svc = create(core, ns, "sc", type="LoadBalancer",
                 status={"loadBalancer": {"ingress": [{"ip": "192.0.2.9"}]}})
    assert svc["status"] == {"loadBalancer": {}}


def test_status_ignored_on_main_resource_writes(core: K8s, ns: str) -> None:
    svc = create(core, ns, "sm", type="LoadBalancer")
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}
    svc["metadata"]["labels"] = {"x": "y"}
    r = core.raw.request("PUT", path(ns, "sm"), body=svc)
    assert r.status == 200 and r.body["status"] == {"loadBalancer": {}} and r.body["metadata"]["labels"] == {
        "x": "y"}
    r = core.raw.request("PATCH", path(ns, "sm"), content_type=MERGE, body={
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}})
    assert r.status == 200 and r.body["status"] == {"loadBalancer": {}}


def test_status_subresource_writes_status_only(core: K8s, ns: str) -> None:
    svc = create(core, ns, "ss", type="LoadBalancer")
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}]}}
    svc["spec"]["ports"][0]["port"] = 81
    r = core.raw.request("PUT", path(ns, "ss", "status"), body=svc)
    assert r.status == 200, r.text
    assert r.body["status"]["loadBalancer"]["ingress"] == [{"ip": "192.0.2.7"}]
    assert r.body["spec"]["ports"][0]["port"] == 80, "spec changes on /status are ignored"
    rv = r.body["metadata"]["resourceVersion"]
    assert int(rv) > int(svc["metadata"]["resourceVersion"])
    got = core.core.patch_namespaced_service_status("ss", ns, {
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.8"}]}}})
    assert [i.ip for i in got.status.load_balancer.ingress] == ["192.0.2.8"]
    got = core.core.read_namespaced_service_status("ss", ns)
    assert got.spec.ports[0].port == 80


def test_status_put_with_stale_rv_409(core: K8s, ns: str) -> None:
    svc = create(core, ns, "st", type="LoadBalancer")
    core.core.patch_namespaced_service("st", ns, {"metadata": {"labels": {"a": "b"}}})
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}]}}
    r = core.raw.request("PUT", path(ns, "st", "status"), body=svc)
    assert r.status == 409 and r.status_obj()["reason"] == "Conflict"


def test_remove_ingress_with_strategic_patch_null(core: K8s, ns: str) -> None:
    create(core, ns, "rm", type="LoadBalancer")
    core.raw.request("PATCH", path(ns, "rm", "status"), content_type=STRATEGIC,
                     body={"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.5"}]}}})
    r = core.raw.request("PATCH", path(ns, "rm", "status"), content_type=STRATEGIC,
                         body={"status": {"loadBalancer": {"ingress": None}}})
    assert r.status == 200 and r.body["status"] == {"loadBalancer": {}}, r.text


def test_default_kubernetes_service_exists(core: K8s) -> None:
    svc = core.core.read_namespaced_service("kubernetes", "default")
    assert svc.spec.ports[0].port == 443


def test_client_create_and_list_typed(core: K8s, ns: str) -> None:
    made = core.core.create_namespaced_service(ns, client.V1Service(
        metadata=client.V1ObjectMeta(name="typed", labels={"app": "x"}),
        spec=client.V1ServiceSpec(type="LoadBalancer", ports=[client.V1ServicePort(port=443, name="https")])))
    assert made.spec.cluster_ip and made.spec.ports[0].node_port
    lst = core.core.list_namespaced_service(ns, label_selector="app=x")
    assert [s.metadata.name for s in lst.items] == ["typed"]
    all_ns = core.core.list_service_for_all_namespaces(label_selector="app=x")
    assert ("typed", ns) in {(s.metadata.name, s.metadata.namespace) for s in all_ns.items}


def test_services_have_no_generation(core: K8s, ns: str) -> None:
    """Services never get metadata.generation (unlike CRs): code must not wait on it."""
    svc = create(core, ns, "gen", type="LoadBalancer")
    assert "generation" not in svc["metadata"], svc["metadata"]
    r = core.raw.request("PATCH", path(ns, "gen"), content_type=MERGE, body={"spec": {"ports": [{"port": 81}]}})
    assert r.status == 200 and "generation" not in r.body["metadata"], r.body["metadata"]

"""Service defaulting and validation, as the real Service REST strategy does it."""

from __future__ import annotations

import ipaddress

import pytest
from kubernetes import client

from tests.unit.apiserver.conftest import Raw, svc_body

PATH = "/api/v1/namespaces/default/services"


def test_cluster_ip_defaults(raw: Raw) -> None:
    code, _, s = raw("POST", PATH, svc_body("a"))
    spec = s["spec"]
    assert code == 201
    assert ipaddress.ip_address(spec["clusterIP"]) in ipaddress.ip_network("198.51.100.0/24")
    assert spec["clusterIPs"] == [spec["clusterIP"]] and spec["ipFamilies"] == ["IPv4"]
    assert spec["ipFamilyPolicy"] == "SingleStack" and spec["sessionAffinity"] == "None"
    assert spec["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]
    assert "externalTrafficPolicy" not in spec and "nodePort" not in spec["ports"][0]
    assert s["status"] == {"loadBalancer": {}}


def test_load_balancer_defaults(raw: Raw) -> None:
    _, _, s = raw("POST", PATH, svc_body("lb", stype="LoadBalancer", externalTrafficPolicy="Local"))
    spec = s["spec"]
    assert 30000 <= spec["ports"][0]["nodePort"] <= 32767
    assert spec["externalTrafficPolicy"] == "Local" and spec["allocateLoadBalancerNodePorts"] is True
    assert 30000 <= spec["healthCheckNodePort"] <= 32767
    _, _, s = raw("POST", PATH, svc_body("lb2", stype="LoadBalancer", allocateLoadBalancerNodePorts=False))
    assert "nodePort" not in s["spec"]["ports"][0] and s["spec"]["externalTrafficPolicy"] == "Cluster"


def test_dual_stack_and_ipv6(raw: Raw) -> None:
    _, _, s = raw("POST", PATH, svc_body("ds", ipFamilyPolicy="PreferDualStack"))
    assert s["spec"]["ipFamilies"] == ["IPv4", "IPv6"] and len(s["spec"]["clusterIPs"]) == 2
    _, _, s = raw("POST", PATH, svc_body("v6", ipFamilies=["IPv6"]))
    assert ipaddress.ip_address(s["spec"]["clusterIP"]).version == 6


def test_cluster_ip_immutable_and_carried_over(v1: client.CoreV1Api) -> None:
    s = v1.create_namespaced_service("default", svc_body("imm"))
    with pytest.raises(client.ApiException) as err:
        v1.patch_namespaced_service(
            "imm", "default", {"spec": {"clusterIP": "198.51.100.200", "clusterIPs": ["198.51.100.200"]}}
        )
    assert err.value.status == 422 and "spec.clusterIPs[0]" in err.value.body
    body = svc_body("imm")
    body["metadata"]["resourceVersion"] = s.metadata.resource_version
    got = v1.replace_namespaced_service("imm", "default", body)
    assert got.spec.cluster_ip == s.spec.cluster_ip


def test_node_port_kept_and_conflict(raw: Raw) -> None:
    _, _, a = raw("POST", PATH, svc_body("np1", stype="NodePort"))
    np = a["spec"]["ports"][0]["nodePort"]
    body = svc_body("np2", stype="NodePort")
    body["spec"]["ports"][0]["nodePort"] = np
    code, _, st = raw("POST", PATH, body)
    assert code == 422 and "already allocated" in st["message"]
    code, _, b = raw("PATCH", PATH + "/np1", {"metadata": {"labels": {"a": "b"}}}, ctype="application/merge-patch+json")
    assert b["spec"]["ports"][0]["nodePort"] == np
    raw("DELETE", PATH + "/np1")
    assert raw("POST", PATH, body)[0] == 201


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"type": "Bogus", "ports": [{"port": 80}]}, "spec.type"),
        ({"type": "ClusterIP"}, "spec.ports"),
        ({"ports": [{"port": 80, "protocol": "ICMP"}]}, "spec.ports[0].protocol"),
        ({"ports": [{"port": 80, "name": "a"}, {"port": 81}]}, "spec.ports[1].name"),
        ({"ports": [{"port": 80}], "clusterIP": "203.0.113.5"}, "spec.clusterIPs[0]"),
        ({"ports": [{"port": 80}], "loadBalancerClass": "x/y"}, "spec.loadBalancerClass"),
    ],
)
def test_invalid_services(raw: Raw, spec: dict, field: str) -> None:
    code, _, st = raw("POST", PATH, {"metadata": {"name": "bad"}, "spec": spec})
    assert code == 422, st
    assert field in [c["field"] for c in st["details"]["causes"]]


def test_invalid_name(raw: Raw) -> None:
    code, _, st = raw("POST", PATH, svc_body("1-Bad"))
    assert code == 422 and st["details"]["causes"][0]["field"] == "metadata.name"


def test_headless_and_external_name(raw: Raw) -> None:
    _, _, s = raw("POST", PATH, {"metadata": {"name": "hl"}, "spec": {"clusterIP": "None", "selector": {"a": "b"}}})
    assert s["spec"]["clusterIPs"] == ["None"]
    _, _, s = raw(
        "POST",
        PATH,
        {"metadata": {"name": "en"}, "spec": {"type": "ExternalName", "externalName": "example.com"}},
    )
    assert "clusterIP" not in s["spec"]


def test_load_balancer_class_immutable(raw: Raw) -> None:
    raw("POST", PATH, svc_body("c", stype="LoadBalancer", loadBalancerClass="lbspeaker.io/lb"))
    code, _, st = raw(
        "PATCH",
        PATH + "/c",
        {"spec": {"loadBalancerClass": "other/lb"}},
        ctype="application/merge-patch+json",
    )
    assert code == 422 and st["details"]["causes"][0]["field"] == "spec.loadBalancerClass"


def test_dry_run_allocates_nothing(raw: Raw) -> None:
    body = svc_body("dry", stype="NodePort")
    body["spec"]["clusterIP"] = "198.51.100.77"
    body["spec"]["ports"][0]["nodePort"] = 30777
    assert raw("POST", PATH + "?dryRun=All", body)[0] == 201
    code, _, s = raw("POST", PATH, body)
    assert code == 201 and s["spec"]["clusterIP"] == "198.51.100.77"
    code, _, s = raw(
        "PATCH", PATH + "/dry?dryRun=All", {"spec": {"type": "ClusterIP"}}, ctype="application/merge-patch+json"
    )
    assert code == 200 and "nodePort" not in s["spec"]["ports"][0]
    other = svc_body("other", stype="NodePort")
    other["spec"]["ports"][0]["nodePort"] = 30777
    assert raw("POST", PATH, other)[0] == 422  # the dry-run type change did not free the port

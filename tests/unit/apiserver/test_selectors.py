"""Label and field selector parsing and matching."""

from __future__ import annotations

import pytest

from lbspeaker.apiserver.selectors import labels_match, parse_fields, parse_labels
from lbspeaker.apiserver.status import ApiStatusError
from tests.unit.apiserver.conftest import Raw

OBJ = {"metadata": {"name": "n", "namespace": "ns", "labels": {"app": "web", "tier": "fe", "x.io/k": "1"}}}


@pytest.mark.parametrize(
    ("sel", "want"),
    [
        ("", True),
        ("app=web", True),
        ("app==web", True),
        ("app!=web", False),
        ("app in (web,db)", True),
        ("app notin (web)", False),
        ("tier", True),
        ("!tier", False),
        ("!missing", True),
        ("missing!=x", True),
        ("app=web,tier=be", False),
        ("x.io/k=1, tier in (fe)", True),
        ("app=", False),
    ],
)
def test_label_selectors(sel: str, want: bool) -> None:
    assert labels_match(parse_labels(sel), OBJ) is want


@pytest.mark.parametrize("sel", ["app=web=x", "app in web", "app in (a", "=x", "app,", "a b", "app==(x)"])
def test_bad_label_selectors(sel: str) -> None:
    with pytest.raises(ApiStatusError) as err:
        parse_labels(sel)
    assert err.value.code == 400


def test_field_selectors() -> None:
    reqs = parse_fields("metadata.name=n,metadata.namespace!=other", ("", "configmaps"), "ConfigMap")
    assert all(r.matches(OBJ) for r in reqs)
    ev = {"metadata": {"name": "e"}, "involvedObject": {"kind": "Service", "name": "web", "uid": "u"}}
    reqs = parse_fields("involvedObject.kind=Service,involvedObject.uid=u", ("", "events"), "Event")
    assert all(r.matches(ev) for r in reqs)
    pod = {"metadata": {"name": "p"}, "spec": {"nodeName": "node-a"}}
    assert parse_fields("spec.nodeName=node-a", ("", "pods"), "Pod")[0].matches(pod)
    for bad in ("spec.foo=bar", "metadata.name=a=b", "metadata.name", "==x"):
        with pytest.raises(ApiStatusError) as err:
            parse_fields(bad, ("", "configmaps"), "ConfigMap")
        assert err.value.code == 400
    assert parse_fields("metadata.name=a\\=b,", ("", "configmaps"), "ConfigMap")[0].value == "a=b"


def test_selectors_over_http(raw: Raw) -> None:
    for name, labels in (("a", {"app": "x"}), ("b", {"app": "y"}), ("c", {})):
        raw("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": name, "labels": labels}})
    _, _, lst = raw("GET", "/api/v1/configmaps?labelSelector=app%20in%20(x,y)")
    assert [i["metadata"]["name"] for i in lst["items"]] == ["a", "b"]
    _, _, lst = raw("GET", "/api/v1/namespaces/default/configmaps?labelSelector=!app")
    assert [i["metadata"]["name"] for i in lst["items"]] == ["c"]
    _, _, lst = raw("GET", "/api/v1/configmaps?fieldSelector=metadata.name%3Db")
    assert [i["metadata"]["name"] for i in lst["items"]] == ["b"]
    code, _, st = raw("GET", "/api/v1/configmaps?labelSelector=a%20in%20b")
    assert code == 400 and st["reason"] == "BadRequest"
    code, _, st = raw("GET", "/api/v1/configmaps?fieldSelector=spec.nope%3D1")
    assert code == 400 and "field label not supported" in st["message"]

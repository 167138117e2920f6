"""Discovery documents: /version, /api, /apis, group versions, and a minimal OpenAPI.

Legacy discovery only: kubectl 1.32 asks for aggregated discovery (apidiscovery.k8s.io/v2) but
falls back to the legacy documents when the answer's Content-Type is plain application/json.
The OpenAPI v3 documents carry, per resource, operations tagged with
``x-kubernetes-group-version-kind`` whose PATCH lists the ``fieldValidation`` query parameter:
that is what kubectl's default validation checks before it sends ``fieldValidation=Strict``.
PATCH ops deliberately have no requestBody, so kubectl computes strategic patches from its
built-in types. /openapi/v2 answers an empty protobuf document (kubectl then does the same).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from lbspeaker.apiserver.kinds import ALL_VERBS, BUILTIN_GROUP_ORDER, STATUS_VERBS, Registry, Resource

JsonObj = dict[str, Any]
K8S_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-lbspeaker",
    "gitCommit": "0" * 40,
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def api_versions(host: str) -> JsonObj:
    """The /api document."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
    }


def _group(name: str, versions: list[str]) -> JsonObj:
    gvs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": gvs, "preferredVersion": gvs[0]}


def _ordered_groups(reg: Registry) -> list[tuple[str, list[str]]]:
    gv = reg.group_versions()
    names = [g for g in BUILTIN_GROUP_ORDER if g in gv] + sorted(g for g in gv if g not in BUILTIN_GROUP_ORDER)
    return [(g, gv[g]) for g in names]


def api_groups(reg: Registry) -> JsonObj:
    """The /apis document (APIGroupList, CRD groups included)."""
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group(g, vs) for g, vs in _ordered_groups(reg) if g],
    }


def api_group(reg: Registry, name: str) -> JsonObj | None:
    """The /apis/{group} document."""
    vs = reg.group_versions().get(name)
    if not vs or not name:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name, vs)}


def _entry(r: Resource) -> list[JsonObj]:
    main: JsonObj = {
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": list(ALL_VERBS),
    }
    if r.short_names:
        main["shortNames"] = list(r.short_names)
    if r.categories:
        main["categories"] = list(r.categories)
    main["storageVersionHash"] = hashlib.sha256(f"{r.group}/{r.plural}".encode()).hexdigest()[:12]
    out = [main]
    if r.status_sub:
        out.append(
            {
                "name": f"{r.plural}/status",
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": list(STATUS_VERBS),
            }
        )
    return out


def resource_list(reg: Registry, group: str, version: str) -> JsonObj | None:
    """The APIResourceList of one group/version, or None if not served."""
    rs = sorted((r for r in reg.resources() if r.group == group and r.version == version), key=lambda r: r.plural)
    if not rs:
        return None
    gv = f"{group}/{version}" if group else version
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": [e for r in rs for e in _entry(r)],
    }


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def openapi_v3_doc(reg: Registry, group: str, version: str) -> JsonObj | None:
    """A minimal OpenAPI v3 document for one group/version."""
    rs = [r for r in reg.resources() if r.group == group and r.version == version]
    if not rs:
        return None
    paths: JsonObj = {}
    schemas: JsonObj = {}
    fv = {
        "name": "fieldValidation",
        "in": "query",
        "schema": {"type": "string", "uniqueItems": True},
        "description": "Strict, Warn or Ignore",
    }
    dry = {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": True}}
    fm = {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": True}}
    for r in rs:
        gvk = {"group": r.group, "version": r.version, "kind": r.kind}
        base = "/" + _gv_path(group, version) + ("/namespaces/{namespace}" if r.namespaced else "") + f"/{r.plural}"
        ok = {"200": {"description": "OK"}}

        def op(action: str, *, params: list[JsonObj], r: Resource = r, gvk: JsonObj = gvk, ok: JsonObj = ok) -> JsonObj:
            return {
                "operationId": f"{action}{r.kind}",
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
                "parameters": params,
                "responses": ok,
            }

        paths[base] = {"get": op("list", params=[]), "post": op("post", params=[fv, dry, fm])}
        paths[base + "/{name}"] = {
            "get": op("get", params=[]),
            "put": op("put", params=[fv, dry, fm]),
            "patch": op("patch", params=[fv, dry, fm]),
            "delete": op("delete", params=[dry]),
        }
        if r.status_sub:
            paths[base + "/{name}/status"] = {
                "get": op("get", params=[]),
                "put": op("put", params=[fv, dry, fm]),
                "patch": op("patch", params=[fv, dry, fm]),
            }
        name = f"{r.group or 'core'}.{r.version}.{r.kind}"
        schema: JsonObj = (
            r.schema
            if (r.schema and not r.builtin)
            else {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        )
        schemas[name] = {**schema, "x-kubernetes-group-version-kind": [gvk]}
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": K8S_VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def openapi_v3_index(reg: Registry) -> JsonObj:
    """The /openapi/v3 index: one entry per served group/version, with a content hash."""
    out: JsonObj = {}
    for g, vs in _ordered_groups(reg):
        for v in vs:
            doc = openapi_v3_doc(reg, g, v)
            digest = hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:64].upper()
            p = _gv_path(g, v)
            out[p] = {"serverRelativeURL": f"/{p}?hash={digest}".replace("/api", "/openapi/v3/api", 1)}
    return {"paths": out}


OPENAPI_V2_JSON: JsonObj = {
    "swagger": "2.0",
    "info": {"title": "Kubernetes", "version": "v1.32.0-lbspeaker"},
    "paths": {},
    "definitions": {},
}

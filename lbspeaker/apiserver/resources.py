"""Resource endpoints: /api/v1/... and /apis/G/V/... → get, list, watch, create, update, patch, delete.

Path shapes: ``[namespaces/{ns}/]{plural}[/{name}[/status]]`` (plus the legacy ``watch/`` prefix).
Answers follow the real server: 201 on create, lists carrying kind/apiVersion/metadata
.resourceVersion, Table answers for ``Accept: ...;as=Table``, strategic merge only for built-in
kinds (415 on custom resources), server-side apply approximated (see :func:`_apply_patch`).
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

import yaml

from lbspeaker.apiserver import convert, objects, patch, protobuf, tables
from lbspeaker.apiserver.kinds import BUILTINS, Resource
from lbspeaker.apiserver.selectors import parse_fields, parse_labels
from lbspeaker.apiserver.status import ApiStatusError, FieldError, invalid, status_body
from lbspeaker.apiserver.store import clone
from lbspeaker.apiserver.watch import Entry, Watcher, dumps
from lbspeaker.apiserver.watchserve import serve_watch

if TYPE_CHECKING:
    from lbspeaker.apiserver.http import Handler

JsonObj = dict[str, Any]
_RETURNS_OBJECT = {
    ("", "services"),
    ("", "pods"),
    ("", "namespaces"),
    ("apiextensions.k8s.io", "customresourcedefinitions"),
}
_core_events = next((r for r in BUILTINS if r.group == "" and r.plural == "events"), None)
PATCH_TYPES = (
    "application/merge-patch+json",
    "application/json-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)


class Target:
    """A parsed resource request path."""

    def __init__(self, res: Resource, ns: str | None, name: str, sub: str, watch: bool) -> None:
        self.res = res
        self.ns = ns
        self.name = name
        self.sub = sub
        self.watch = watch

        self.sres = res
        if res.converted:
            core = _core_events
            assert core is not None
            self.sres = core

    def out(self, entry: Entry) -> bytes:
        """The wire form of a stored entry for this endpoint's group/version."""
        return dumps(convert.to_events(entry.obj)) if self.res.converted else entry.raw

    def to_store(self, body: JsonObj) -> JsonObj:
        """A request body in storage form (events.k8s.io/v1 Events require eventTime)."""
        if not self.res.converted:
            return body
        if not body.get("eventTime"):
            name = str((body.get("metadata") or {}).get("name", ""))
            raise invalid("Event", name, [FieldError("eventTime", "FieldValueRequired", "")], group=self.res.group)
        return convert.to_core(body)

    def from_store(self, obj: JsonObj) -> JsonObj:
        """A stored object in this endpoint's form."""
        return convert.to_events(obj) if self.res.converted else obj

    @property
    def store_ns(self) -> str:
        """The namespace part of the storage key ('' for cluster-scoped)."""
        return self.ns or "" if self.res.namespaced else ""


def _not_served() -> ApiStatusError:
    return ApiStatusError(404, "the server could not find the requested resource", reason="NotFound")


def parse_target(h: Handler, path: str) -> Target:
    """Resolve the URL path to a served resource (404 otherwise)."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        raise _not_served()
    watch = False
    if rest and rest[0] == "watch":
        watch, rest = True, rest[1:]
    if not rest:
        raise _not_served()
    ns: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3 and not (len(rest) == 3 and rest[2] in ("status", "finalize")):
        ns, rest = rest[1], rest[2:]
    if len(rest) > 3:
        raise _not_served()
    res = h.server.store.registry.lookup(group, version, rest[0])
    if res is None:
        raise _not_served()
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    if (ns is not None and not res.namespaced) or (res.namespaced and ns is None and name):
        raise _not_served()
    if sub and not (sub == "status" and res.status_sub):
        raise _not_served()
    return Target(res, ns, name, sub, watch)


def serve(h: Handler, method: str, path: str) -> None:
    """Serve one resource request."""
    t = parse_target(h, path)
    q = h.query
    if method == "GET":
        if t.watch or q.get("watch") in ("true", "1", "True"):
            serve_watch(h, make_watcher(h, t.res, t.ns, t.name))
        elif t.name:
            entry = h.server.store.get(t.sres, t.store_ns, t.name)
            if _wants_table(h):
                _send_table(h, t.sres, [entry.obj], str(entry.obj["metadata"]["resourceVersion"]))
            else:
                h.send_raw(200, t.out(entry))
        else:
            _list(h, t)
        return
    if method not in ("POST", "PUT", "PATCH", "DELETE"):
        raise ApiStatusError(405, f"the server does not allow this method on the requested resource ({method})")
    if (method == "POST" and t.name) or (method in ("PUT", "PATCH") and not t.name) or t.watch:
        raise ApiStatusError(405, f"the server does not allow this method on the requested resource ({method})")
    fail = h.server.faults.take_write_failure()
    if fail is not None:
        raise fail
    dry = q.get("dryRun") == "All"
    store = h.server.store
    if method == "POST":
        body = _body_object(h, t)
        warnings = _field_validation(h, t.res, body)
        body = t.to_store(body)
        entry = store.create(t.sres, t.ns or "", body, dry_run=dry)
        h.send_raw(201, t.out(entry), headers=warnings)
    elif method == "PUT":
        body = t.to_store(_body_object(h, t))
        warnings = _field_validation(h, t.res, body)
        entry, _ = store.update(t.sres, t.store_ns, t.name, body, subresource=t.sub, dry_run=dry)
        h.send_raw(200, t.out(entry), headers=warnings)
    elif method == "PATCH":
        _patch(h, t, dry)
    else:
        _delete(h, t, dry)


def _wants_table(h: Handler) -> bool:
    return "as=Table" in (h.headers.get("Accept") or "")


def _send_table(
    h: Handler, res: Resource, objs: list[JsonObj], rv: str, cont: str = "", remaining: int | None = None
) -> None:
    include = h.query.get("includeObject") or "PartialObjectMetadata"
    tab = tables.table(
        res,
        objs,
        rv=rv,
        include=include,
        headers=h.query.get("noHeaders") != "true",
        cont=cont,
        remaining=remaining,
    )
    h.send_raw(200, dumps(tab), "application/json")


def selectors(h: Handler, res: Resource) -> tuple[Any, Any]:
    """Parsed label and field selectors from the query (400 when malformed)."""
    ls = parse_labels(h.query.get("labelSelector", ""))
    fs = parse_fields(h.query.get("fieldSelector", ""), res.key, res.kind)
    return ls, fs


def _list(h: Handler, t: Target) -> None:
    ls, fs = selectors(h, t.res)
    items, rv = h.server.store.list_objects(t.sres, t.ns if t.res.namespaced else None, ls, fs)
    limit = int(h.query.get("limit") or 0) if (h.query.get("limit") or "0").isdigit() else 0
    cont_in = h.query.get("continue") or ""
    if cont_in:
        try:
            tok = json.loads(base64.urlsafe_b64decode(cont_in.encode()))
            start = (str(tok["start"][0]), str(tok["start"][1]))
            rv = int(tok.get("rv", rv))
        except (ValueError, KeyError, TypeError, IndexError):
            raise ApiStatusError(400, "continue key is not valid: malformed token") from None
        items = [kv for kv in items if kv[0] > start]
    cont_out, remaining = "", None
    if limit and len(items) > limit:
        remaining = len(items) - limit
        items = items[:limit]
        last = items[-1][0]
        cont_out = base64.urlsafe_b64encode(json.dumps({"rv": rv, "start": list(last)}).encode()).decode()
    if _wants_table(h):
        _send_table(h, t.sres, [e.obj for _, e in items], str(rv), cont_out, remaining)
        return
    meta: JsonObj = {"resourceVersion": str(rv)}
    if cont_out:
        meta["continue"] = cont_out
        meta["remainingItemCount"] = remaining
    head = dumps({"kind": t.res.list_kind, "apiVersion": t.res.api_version, "metadata": meta})
    body = head[:-1] + b',"items":[' + b",".join(t.out(e) for _, e in items) + b"]}"
    h.send_raw(200, body)


def _body_object(h: Handler, t: Target) -> JsonObj:
    ctype = (h.headers.get("Content-Type") or "application/json").split(";")[0].strip().lower()
    if ctype in ("application/yaml", "application/x-yaml"):
        try:
            body = yaml.safe_load(h.body_bytes.decode())
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise ApiStatusError(400, f"the body of the request could not be decoded as YAML: {err}") from err
    elif ctype in ("application/json", "*/*", ""):
        body = h.json_body()
    elif ctype == "application/vnd.kubernetes.protobuf":
        body = protobuf.decode(h.body_bytes)
    else:
        raise ApiStatusError(
            415,
            f"the body of the request was in an unknown format - accepted media types "
            f'include: application/json, application/yaml (got "{ctype}")',
        )
    return check_body(body, t)


def check_body(body: Any, t: Target) -> JsonObj:
    """400 for a body that is not an object of this kind, namespace and name."""
    res = t.res
    if not isinstance(body, dict):
        raise ApiStatusError(400, f"the body of the request must be a JSON object, got {type(body).__name__}")
    kind, av = body.get("kind"), body.get("apiVersion")
    if not res.builtin and (not kind or not av):
        missing = "Kind" if not kind else "APIVersion"
        raise ApiStatusError(400, f"Object '{missing}' is missing in '{json.dumps(body)[:200]}'")
    if kind and kind != res.kind and not res.builtin:
        name = str((body.get("metadata") or {}).get("name", "")) if isinstance(body.get("metadata"), dict) else ""
        err = FieldError("kind", "FieldValueInvalid", f"must be {res.kind}", kind)
        raise invalid(str(kind), name, [err], group=res.group)
    if kind and kind != res.kind:
        raise ApiStatusError(400, f"the kind in the body ({kind}) does not match the kind of the endpoint ({res.kind})")
    if av and av != res.api_version:
        raise ApiStatusError(
            400,
            f"the API version in the data ({av}) does not match the expected API version ({res.api_version})",
        )
    meta = body.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise ApiStatusError(400, "metadata must be an object")
    meta = meta or {}
    bns = meta.get("namespace")
    if res.namespaced and bns and t.ns and bns != t.ns:
        raise ApiStatusError(
            400, "the namespace of the provided object does not match the namespace sent on the request"
        )
    if t.name and meta.get("name") and meta["name"] != t.name:
        raise ApiStatusError(
            400, f"the name of the object ({meta['name']}) does not match the name on the URL ({t.name})"
        )
    return body


def _field_validation(h: Handler, res: Resource, body: JsonObj) -> dict[str, str]:
    mode = h.query.get("fieldValidation", "")
    if mode not in ("Strict", "Warn"):
        return {}
    unknown = objects.strict_unknown_fields(res, body)
    if not unknown:
        return {}
    if mode == "Strict":
        raise ApiStatusError(400, "strict decoding error: " + ", ".join(f'unknown field "{u}"' for u in unknown))
    return {"Warning": ", ".join(f'299 - "unknown field \\"{u}\\""' for u in unknown)}


def _patch(h: Handler, t: Target, dry: bool) -> None:
    ctype = (h.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if ctype not in PATCH_TYPES or (ctype == PATCH_TYPES[2] and not t.res.builtin):
        raise ApiStatusError(
            415,
            "the body of the request was in an unknown format - accepted media types include: "
            + ", ".join(PATCH_TYPES if t.res.builtin else (PATCH_TYPES[0], PATCH_TYPES[1], PATCH_TYPES[3])),
        )
    store = h.server.store
    if ctype == PATCH_TYPES[3]:
        _apply_patch(h, t, dry)
        return
    body = h.json_body()
    with store.lock:
        cur = store.get(t.sres, t.store_ns, t.name)
        base = t.from_store(clone(cur.obj))
        if ctype == PATCH_TYPES[0]:
            if not isinstance(body, dict):
                raise ApiStatusError(400, "merge patch body must be a JSON object")
            new = patch.json_merge(base, body)
        elif ctype == PATCH_TYPES[1]:
            new = patch.json_patch(base, body)
        else:
            if not isinstance(body, dict):
                raise ApiStatusError(400, "strategic merge patch body must be a JSON object")
            new = patch.strategic_merge(base, body, patch.merge_keys_for(t.res.group, t.res.kind))
        new = check_body(new, Target(t.res, t.ns, t.name, t.sub, False))
        warnings = _field_validation(h, t.res, new)
        new = t.to_store(new)
        entry, _ = store.update(t.sres, t.store_ns, t.name, new, subresource=t.sub, dry_run=dry)
    h.send_raw(200, t.out(entry), headers=warnings)


def _apply_patch(h: Handler, t: Target, dry: bool) -> None:
    """Server-side apply, approximated: create if absent, else merge the applied fields in.

    Field ownership (managedFields) is not tracked, so fields dropped from the applied config are
    not removed and conflicts between managers are never reported.
    """
    if not h.query.get("fieldManager"):
        raise ApiStatusError(400, "PATCH, application/apply-patch+yaml: fieldManager is required for apply requests")
    try:
        body = yaml.safe_load(h.body_bytes.decode())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ApiStatusError(400, f"the body of the request could not be decoded as YAML: {err}") from err
    body = check_body(body, t)
    store = h.server.store
    with store.lock:
        exists = (t.store_ns, t.name) in store.data.get(t.res.key, {})
        if not exists:
            if t.sub:
                raise ApiStatusError(404, f'{t.res.qualified} "{t.name}" not found', name=t.name, kind=t.res.plural)
            body = t.to_store(dict(body))
            body.setdefault("metadata", {})["name"] = t.name
            entry = store.create(t.sres, t.ns or "", body, dry_run=dry)
            h.send_raw(201, t.out(entry))
            return
        base = t.from_store(clone(store.get(t.sres, t.store_ns, t.name).obj))
        if t.res.builtin:
            new = patch.strategic_merge(base, body, patch.merge_keys_for(t.res.group, t.res.kind))
        else:
            new = patch.json_merge(base, body)
        new = t.to_store(new)
        entry, _ = store.update(t.sres, t.store_ns, t.name, new, subresource=t.sub, dry_run=dry)
    h.send_raw(200, t.out(entry))


def _delete_options(h: Handler) -> JsonObj:
    opts: JsonObj = {}
    if h.body_bytes:
        body = h.json_body()
        if isinstance(body, dict):
            opts = body
    return opts


def _delete(h: Handler, t: Target, dry: bool) -> None:
    opts = _delete_options(h)
    dry = dry or "All" in (opts.get("dryRun") or [])
    pre = opts.get("preconditions") or {}
    store = h.server.store
    if not t.name:
        ls, fs = selectors(h, t.res)
        items, _rv = store.list_objects(t.sres, t.ns if t.res.namespaced else None, ls, fs)
        out = []
        for (ns, name), _e in items:
            try:
                entry, _ = store.delete(t.sres, ns, name, dry_run=dry)
                out.append(t.out(entry))
            except ApiStatusError as err:
                if err.code != 404:
                    raise
        head = dumps(
            {
                "kind": t.res.list_kind,
                "apiVersion": t.res.api_version,
                "metadata": {"resourceVersion": str(store.rv)},
            }
        )
        h.send_raw(200, head[:-1] + b',"items":[' + b",".join(out) + b"]}")
        return
    policy = opts.get("propagationPolicy") or h.query.get("propagationPolicy") or ""
    orphan = policy == "Orphan" or opts.get("orphanDependents") is True
    entry, removed = store.delete(
        t.sres,
        t.store_ns,
        t.name,
        uid=str(pre.get("uid") or ""),
        rv=str(pre.get("resourceVersion") or ""),
        dry_run=dry,
        orphan=orphan,
    )
    if removed and t.res.builtin and t.res.key not in _RETURNS_OBJECT:
        meta = entry.obj["metadata"]
        body = status_body(200, "", success=True, name=t.name, kind=t.res.plural, group=t.res.group)
        body["details"]["uid"] = meta.get("uid")
        h.send_json(200, body)
        return
    h.send_raw(200, t.out(entry))


def make_watcher(h: Handler, res: Resource, ns: str | None, name: str) -> Watcher:
    """Build the watcher for a watch request (selectors, name, Table mode)."""
    ls, fs = selectors(h, res)
    if name:
        fs = fs + parse_fields(f"metadata.name={name}", res.key, res.kind)
    table = None
    if _wants_table(h):
        include = h.query.get("includeObject") or "PartialObjectMetadata"

        def table(obj: JsonObj, first: bool) -> JsonObj:
            return tables.table(
                res, [obj], rv=str(obj["metadata"].get("resourceVersion", "")), include=include, headers=first
            )

    conv = convert.to_events if res.converted else None
    return Watcher(res, namespace=ns if res.namespaced else None, labels=ls, fields=fs, table=table, convert=conv)

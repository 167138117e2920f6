"""PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch.

Strategic merge covers the built-in fields lbspeaker and kubectl touch: list merge keys from
``MERGE_KEYS`` (ports by ``port``, conditions by ``type``, containers by ``name``, ...),
primitive lists merged as sets (finalizers), ``$patch: replace|delete|merge``,
``$deleteFromPrimitiveList/<f>``, ``$setElementOrder/<f>`` (used to order the result) and
``$retainKeys`` (accepted, ignored). Inputs are never mutated; results are fresh objects.
"""

from __future__ import annotations

import copy
from typing import Any

from lbspeaker.apiserver.status import ApiStatusError

JsonObj = dict[str, Any]
SET = "<set>"

# (group, kind) → dotted field path (list hops use the field name) → merge key or SET.
_COMMON_META = {"metadata.finalizers": SET, "metadata.ownerReferences": "uid"}
_POD_SPEC = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "containers.ports": "containerPort",
    "containers.env": "name",
    "containers.volumeMounts": "mountPath",
    "containers.volumeDevices": "devicePath",
    "initContainers.ports": "containerPort",
    "initContainers.env": "name",
    "initContainers.volumeMounts": "mountPath",
    "volumes": "name",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
}
MERGE_KEYS: dict[tuple[str, str], dict[str, str]] = {
    ("", "Service"): {"spec.ports": "port", "status.conditions": "type"},
    ("", "Node"): {"status.conditions": "type", "status.addresses": "type", "spec.podCIDRs": SET},
    ("", "Pod"): {
        **{f"spec.{k}": v for k, v in _POD_SPEC.items()},
        "status.conditions": "type",
        "status.podIPs": "ip",
    },
    ("", "Namespace"): {"status.conditions": "type"},
    ("", "ServiceAccount"): {"secrets": "name"},
    ("apiextensions.k8s.io", "CustomResourceDefinition"): {},
}


def json_merge(target: Any, patch: Any) -> Any:
    """RFC 7386 merge patch; returns a new value."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = json_merge(out.get(k), v)
    return out


def _ptr(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiStatusError(422, f"the json patch path {path!r} must start with '/'", reason="Invalid")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str], path: str) -> Any:
    cur = doc
    for p in parts[:-1]:
        if isinstance(cur, dict) and p in cur:
            cur = cur[p]
        elif isinstance(cur, list) and p.isdigit() and int(p) < len(cur):
            cur = cur[int(p)]
        else:
            raise ApiStatusError(422, f"jsonpatch: path {path!r} not found: doc is missing key: {p}", reason="Invalid")
    return cur


def json_patch(doc: Any, ops: Any) -> Any:
    """RFC 6902 JSON patch; a failed ``test`` or a missing path → 422, like the real server."""
    if not isinstance(ops, list):
        raise ApiStatusError(400, "json patch body must be a JSON array of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise ApiStatusError(400, f"invalid json patch operation: {op!r}")
        kind, path = op["op"], str(op["path"])
        if kind in ("add", "replace", "test") and "value" not in op:
            raise ApiStatusError(422, f"jsonpatch {kind} operation does not apply: missing value", reason="Invalid")
        if kind in ("move", "copy"):
            src = _get(doc, str(op.get("from", "")))
            if kind == "move":
                doc = _remove(doc, str(op.get("from", "")))
            doc = _add(doc, path, copy.deepcopy(src))
        elif kind == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            doc = _remove(doc, path)
        elif kind == "replace":
            _get(doc, path)
            doc = _remove(doc, path)
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "test":
            if _get(doc, path) != op["value"]:
                raise ApiStatusError(
                    422,
                    f"the server rejected our request due to an error in our request: "
                    f"testing value {path} failed: test failed",
                    reason="Invalid",
                )
        else:
            raise ApiStatusError(400, f"unexpected json patch operation {kind!r}")
    return doc


def _get(doc: Any, path: str) -> Any:
    parts = _ptr(path)
    if not parts:
        return doc
    parent = _parent(doc, parts, path)
    last = parts[-1]
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent[int(last)]
    raise ApiStatusError(422, f"jsonpatch: path {path!r} not found", reason="Invalid")


def _add(doc: Any, path: str, value: Any) -> Any:
    parts = _ptr(path)
    if not parts:
        return value
    parent = _parent(doc, parts, path)
    last = parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent):
            parent.insert(int(last), value)
        else:
            raise ApiStatusError(422, f"jsonpatch add: index out of range in {path!r}", reason="Invalid")
    else:
        raise ApiStatusError(422, f"jsonpatch add: parent of {path!r} is not a container", reason="Invalid")
    return doc


def _remove(doc: Any, path: str) -> Any:
    parts = _ptr(path)
    parent = _parent(doc, parts, path)
    last = parts[-1] if parts else ""
    if isinstance(parent, dict) and last in parent:
        del parent[last]
    elif isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        del parent[int(last)]
    else:
        raise ApiStatusError(
            422, f"jsonpatch remove operation does not apply: doc is missing path: {path}", reason="Invalid"
        )
    return doc


def strategic_merge(target: Any, patch: Any, keys: dict[str, str], path: str = "") -> Any:
    """Strategic merge patch of a built-in object; ``keys`` comes from :data:`MERGE_KEYS`."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if not k.startswith("$")}
    out = dict(target) if isinstance(target, dict) else {}
    orders: dict[str, list[Any]] = {}
    for k, v in patch.items():
        if k.startswith("$setElementOrder/"):
            orders[k.split("/", 1)[1]] = v if isinstance(v, list) else []
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            f = k.split("/", 1)[1]
            if isinstance(out.get(f), list) and isinstance(v, list):
                out[f] = [x for x in out[f] if x not in v]
            continue
        if k.startswith("$"):
            continue
        sub = f"{path}.{k}" if path else k
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict):
            merged = strategic_merge(out.get(k), v, keys, sub)
            if merged is None:
                out.pop(k, None)
            else:
                out[k] = merged
        elif isinstance(v, list) and sub in keys:
            out[k] = _merge_list(out.get(k), v, keys, sub)
        else:
            out[k] = copy.deepcopy(v)
    for f, order in orders.items():
        if isinstance(out.get(f), list):
            out[f] = _apply_order(out[f], order, keys.get(f"{path}.{f}" if path else f))
    return out


def _merge_list(cur: Any, patch: list[Any], keys: dict[str, str], path: str) -> list[Any]:
    mk = keys[path]
    base = list(cur) if isinstance(cur, list) else []
    if any(isinstance(x, dict) and x.get("$patch") == "replace" for x in patch):
        return [copy.deepcopy(x) for x in patch if not (isinstance(x, dict) and "$patch" in x)]
    if mk == SET:
        for x in patch:
            if x not in base:
                base.append(copy.deepcopy(x))
        return base
    for item in patch:
        if not isinstance(item, dict) or mk not in item:
            raise ApiStatusError(
                422, f"strategic merge: {path}: element {item!r} lacks merge key {mk!r}", reason="Invalid"
            )
        idx = next((i for i, x in enumerate(base) if isinstance(x, dict) and x.get(mk) == item[mk]), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                del base[idx]
            continue
        if idx is None:
            base.append({k: copy.deepcopy(v) for k, v in item.items() if not k.startswith("$")})
        else:
            base[idx] = strategic_merge(base[idx], item, keys, path)
    return base


def _apply_order(items: list[Any], order: list[Any], mk: str | None) -> list[Any]:
    def ident(x: Any) -> Any:
        if mk and mk != SET and isinstance(x, dict):
            return x.get(mk)
        return x

    wanted = [ident(o) for o in order]
    ranked = [x for w in wanted for x in items if ident(x) == w]
    rest = [x for x in items if ident(x) not in wanted]
    return ranked + rest


def merge_keys_for(group: str, kind: str) -> dict[str, str]:
    """The strategic-merge key table of a built-in kind (metadata keys included)."""
    table = MERGE_KEYS.get((group, kind)) or {}
    return {**_COMMON_META, **table}

"""CRD openAPIV3Schema handling for custom resources: prune, default, then validate.

Order and rules follow apiextensions-apiserver: unknown fields are pruned (unless
``x-kubernetes-preserve-unknown-fields``), nulls of non-nullable fields are dropped, ``default``
values are filled in, then the object is validated. Errors carry field paths like
``spec.addresses[0]``. Not implemented: CEL ``x-kubernetes-validations`` (accepted, ignored).
"""

from __future__ import annotations

import copy
import ipaddress
import re
import uuid as uuidlib
from typing import Any

from lbspeaker.apiserver.status import FieldError

JsonObj = dict[str, Any]
_META_KEYS = ("apiVersion", "kind", "metadata")


def prune_and_default(obj: Any, schema: JsonObj | None) -> Any:
    """Return a copy of ``obj`` with unknown fields pruned and defaults applied (top level keeps meta)."""
    if schema is None:
        return obj
    return _walk(obj, schema, top=True)


def _walk(value: Any, schema: JsonObj, *, top: bool = False) -> Any:
    if isinstance(value, dict):
        props = schema.get("properties")
        preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        addl = schema.get("additionalProperties")
        embedded = bool(schema.get("x-kubernetes-embedded-resource"))
        out: JsonObj = {}
        for k, v in value.items():
            if (top or embedded) and k in _META_KEYS:
                out[k] = v
                continue
            sub = props.get(k) if isinstance(props, dict) else None
            if sub is None and isinstance(addl, dict):
                sub = addl
            if sub is None:
                if preserve or addl is True:
                    out[k] = v
                continue
            if v is None and not sub.get("nullable"):
                continue
            out[k] = _walk(v, sub)
        if isinstance(props, dict):
            for k, sub in props.items():
                if k not in out and isinstance(sub, dict) and "default" in sub:
                    out[k] = _walk(copy.deepcopy(sub["default"]), sub)
        return out
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            return [_walk(v, items) for v in value]
        return list(value)
    return value


def validate(obj: Any, schema: JsonObj | None) -> list[FieldError]:
    """Validate a (pruned, defaulted) custom resource against its version schema."""
    if schema is None:
        return []
    errs: list[FieldError] = []
    body = {k: v for k, v in obj.items() if k not in _META_KEYS} if isinstance(obj, dict) else obj
    sch = dict(schema)
    props = {k: v for k, v in (schema.get("properties") or {}).items() if k not in _META_KEYS}
    sch["properties"] = props
    sch["required"] = [r for r in schema.get("required") or [] if r not in _META_KEYS]
    _check(body, sch, "", errs)
    return errs


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
}


def _check(v: Any, s: JsonObj, path: str, errs: list[FieldError]) -> None:
    where = path or "<root>"
    if v is None:
        if not s.get("nullable"):
            errs.append(
                FieldError(
                    where,
                    "FieldValueTypeInvalid",
                    f'{where} in body must be of type {s.get("type", "object")}: "null"',
                    None,
                )
            )
        return
    if s.get("x-kubernetes-int-or-string") and not (isinstance(v, str) or _TYPES["integer"](v)):
        errs.append(FieldError(where, "FieldValueTypeInvalid", f"{where} in body must be of type integer-or-string", v))
        return
    t = s.get("type")
    if isinstance(t, str) and t in _TYPES and not _TYPES[t](v):
        errs.append(
            FieldError(where, "FieldValueTypeInvalid", f'{where} in body must be of type {t}: "{_json_type(v)}"', v)
        )
        return
    if "enum" in s and isinstance(s["enum"], list) and v not in s["enum"]:
        allowed = ", ".join(f'"{e}"' if isinstance(e, str) else str(e) for e in s["enum"])
        errs.append(FieldError(where, "FieldValueNotSupported", f"supported values: {allowed}", v))
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        _check_number(v, s, where, errs)
    if isinstance(v, str):
        _check_string(v, s, where, errs)
    if isinstance(v, list):
        _check_list(v, s, path, errs)
    if isinstance(v, dict):
        _check_object(v, s, path, errs)
    for sub in s.get("allOf") or []:
        _check(v, sub, path, errs)
    for key, want in (("anyOf", "any"), ("oneOf", "one")):
        alts = s.get(key)
        if isinstance(alts, list) and alts:
            ok = 0
            for alt in alts:
                trial: list[FieldError] = []
                _check(v, alt, path, trial)
                ok += not trial
            if (want == "any" and ok == 0) or (want == "one" and ok != 1):
                errs.append(FieldError(where, "FieldValueInvalid", f"must validate {want} of the schemas", v))
    if isinstance(s.get("not"), dict):
        trial2: list[FieldError] = []
        _check(v, s["not"], path, trial2)
        if not trial2:
            errs.append(FieldError(where, "FieldValueInvalid", "must not validate the schema (not)", v))


def _json_type(v: Any) -> str:
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _check_number(v: float, s: JsonObj, where: str, errs: list[FieldError]) -> None:
    lo, hi = s.get("minimum"), s.get("maximum")
    if isinstance(lo, (int, float)) and (v < lo or (s.get("exclusiveMinimum") and v == lo)):
        rel = "greater than" if s.get("exclusiveMinimum") else "greater than or equal to"
        errs.append(FieldError(where, "FieldValueInvalid", f"{where} in body should be {rel} {lo}", v))
    if isinstance(hi, (int, float)) and (v > hi or (s.get("exclusiveMaximum") and v == hi)):
        rel = "less than" if s.get("exclusiveMaximum") else "less than or equal to"
        errs.append(FieldError(where, "FieldValueInvalid", f"{where} in body should be {rel} {hi}", v))
    mult = s.get("multipleOf")
    if isinstance(mult, (int, float)) and mult and (v / mult) != int(v / mult):
        errs.append(FieldError(where, "FieldValueInvalid", f"{where} in body should be a multiple of {mult}", v))


def _check_string(v: str, s: JsonObj, where: str, errs: list[FieldError]) -> None:
    if isinstance(s.get("minLength"), int) and len(v) < s["minLength"]:
        errs.append(
            FieldError(
                where,
                "FieldValueInvalid",
                f"{where} in body should be at least {s['minLength']} chars long",
                v,
            )
        )
    if isinstance(s.get("maxLength"), int) and len(v) > s["maxLength"]:
        errs.append(
            FieldError(where, "FieldValueTooLong", f"{where} in body may not be longer than {s['maxLength']}", v)
        )
    pat = s.get("pattern")
    if isinstance(pat, str):
        try:
            ok = re.search(pat, v) is not None
        except re.error:
            ok = True
        if not ok:
            errs.append(FieldError(where, "FieldValueInvalid", f"{where} in body should match '{pat}'", v))
    fmt = s.get("format")
    if isinstance(fmt, str) and not _format_ok(fmt, v):
        errs.append(FieldError(where, "FieldValueInvalid", f'{where} in body must be of type {fmt}: "{v}"', v))


def _format_ok(fmt: str, v: str) -> bool:
    try:
        if fmt == "ipv4":
            ipaddress.IPv4Address(v)
        elif fmt == "ipv6":
            ipaddress.IPv6Address(v)
        elif fmt == "cidr":
            ipaddress.ip_network(v, strict=False)
        elif fmt == "uuid":
            uuidlib.UUID(v)
        elif fmt == "mac":
            return re.fullmatch(r"([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}", v) is not None
        elif fmt == "hostname":
            return (
                re.fullmatch(
                    r"[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}"
                    r"[A-Za-z0-9])?)*",
                    v,
                )
                is not None
            )
        elif fmt == "date-time":
            return re.fullmatch(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)", v) is not None
    except ValueError:
        return False
    return True


def _check_list(v: list[Any], s: JsonObj, path: str, errs: list[FieldError]) -> None:
    where = path or "<root>"
    if isinstance(s.get("minItems"), int) and len(v) < s["minItems"]:
        errs.append(
            FieldError(where, "FieldValueInvalid", f"{where} in body should have at least {s['minItems']} items", v)
        )
    if isinstance(s.get("maxItems"), int) and len(v) > s["maxItems"]:
        errs.append(
            FieldError(where, "FieldValueTooMany", f"{where} in body should have at most {s['maxItems']} items", v)
        )
    list_type = s.get("x-kubernetes-list-type")
    if s.get("uniqueItems") or list_type == "set":
        for i, x in enumerate(v):
            if x in v[:i]:
                errs.append(FieldError(f"{where}[{i}]", "FieldValueDuplicate", "", x))
    if list_type == "map":
        mkeys = s.get("x-kubernetes-list-map-keys") or []
        seen: list[tuple[Any, ...]] = []
        for i, x in enumerate(v):
            if isinstance(x, dict):
                ident = tuple(x.get(k) for k in mkeys)
                if ident in seen:
                    errs.append(
                        FieldError(f"{where}[{i}]", "FieldValueDuplicate", "", dict(zip(mkeys, ident, strict=False)))
                    )
                seen.append(ident)
    items = s.get("items")
    if isinstance(items, dict):
        for i, x in enumerate(v):
            _check(x, items, f"{path}[{i}]", errs)


def _check_object(v: JsonObj, s: JsonObj, path: str, errs: list[FieldError]) -> None:
    for r in s.get("required") or []:
        if r not in v:
            errs.append(FieldError(_join(path, r), "FieldValueRequired", ""))
    props = s.get("properties") or {}
    addl = s.get("additionalProperties")
    for k, x in v.items():
        sub = props.get(k)
        if sub is None and isinstance(addl, dict):
            sub = addl
        if isinstance(sub, dict):
            _check(x, sub, _join(path, k), errs)
    where = path or "<root>"
    if isinstance(s.get("minProperties"), int) and len(v) < s["minProperties"]:
        errs.append(
            FieldError(
                where,
                "FieldValueInvalid",
                f"{where} in body should have at least {s['minProperties']} properties",
                v,
            )
        )
    if isinstance(s.get("maxProperties"), int) and len(v) > s["maxProperties"]:
        errs.append(
            FieldError(
                where,
                "FieldValueTooMany",
                f"{where} in body should have at most {s['maxProperties']} properties",
                v,
            )
        )


def unknown_fields(obj: Any, schema: JsonObj | None) -> list[str]:
    """Field paths that pruning would drop (for ``fieldValidation=Strict``)."""
    if schema is None:
        return []
    found: list[str] = []
    _unknown(obj, schema, "", found, top=True)
    return found


def _unknown(v: Any, s: JsonObj, path: str, found: list[str], *, top: bool = False) -> None:
    if isinstance(v, dict):
        if s.get("x-kubernetes-preserve-unknown-fields") or s.get("additionalProperties") is True:
            return
        props = s.get("properties") or {}
        addl = s.get("additionalProperties")
        for k, x in v.items():
            if (top or s.get("x-kubernetes-embedded-resource")) and k in _META_KEYS:
                continue
            sub = props.get(k) if k in props else (addl if isinstance(addl, dict) else None)
            if sub is None:
                found.append(_join(path, k))
            else:
                _unknown(x, sub, _join(path, k), found)
    elif isinstance(v, list) and isinstance(s.get("items"), dict):
        for i, x in enumerate(v):
            _unknown(x, s["items"], f"{path}[{i}]", found)

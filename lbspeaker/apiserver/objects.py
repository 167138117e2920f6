"""Per-kind admission: name rules, defaulting and validation for built-in kinds and CRDs.

``admit`` is called by the store with a fresh copy of the object (it may mutate it) and the stored
old object for updates; it raises 422 Invalid with field causes. CRD acceptance fills in the
status (NamesAccepted / Established, acceptedNames, storedVersions) the real server would.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from lbspeaker.apiserver import schema as crschema
from lbspeaker.apiserver import services
from lbspeaker.apiserver.kinds import Resource
from lbspeaker.apiserver.status import ApiStatusError, FieldError, invalid

JsonObj = dict[str, Any]

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUB = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_PATHSEG = re.compile(r"^[^/%]+$")


def now_rfc3339() -> str:
    """The current UTC time at second precision, as Kubernetes writes it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def name_errors(res: Resource, name: str) -> list[FieldError]:
    """Validate metadata.name for a kind (DNS-1035 for Services, DNS-1123 label for Namespaces)."""
    if res.kind == "Service":
        ok, what, limit = _DNS1035_LABEL.match(name), "a DNS-1035 label", 63
        hint = (
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
            "alphabetic character, and end with an alphanumeric character"
        )
    elif res.kind == "Namespace":
        ok, what, limit = _DNS1123_LABEL.match(name), "a lowercase RFC 1123 label", 63
        hint = (
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
            "start and end with an alphanumeric character"
        )
    elif res.kind in ("Node", "Event") or not res.builtin:
        ok, what, limit = _PATHSEG.match(name) if name not in (".", "..") else None, "a path segment", 253
        hint = "may not contain '/' or '%'"
    else:
        ok, what, limit = _DNS1123_SUB.match(name), "a lowercase RFC 1123 subdomain", 253
        hint = (
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
            "and must start and end with an alphanumeric character"
        )
    if len(name) > limit:
        return [FieldError("metadata.name", "FieldValueInvalid", f"must be no more than {limit} characters", name)]
    if not ok:
        return [FieldError("metadata.name", "FieldValueInvalid", f"{hint} (must be {what})", name)]
    return []


def admit(
    res: Resource,
    obj: JsonObj,
    old: JsonObj | None,
    *,
    alloc: services.Allocators,
    registry_conflict: Any = None,
) -> None:
    """Default and validate ``obj`` in place for its kind; raise 422 on invalid input."""
    name = str(obj["metadata"].get("name", ""))
    if res.kind == "Service" and res.group == "":
        services.prepare(obj, old, alloc)
    elif res.kind == "Namespace":
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        st = obj.setdefault("status", {})
        if not isinstance(st, dict) or not st.get("phase"):
            obj["status"] = {"phase": "Active"}
        labels = obj["metadata"].setdefault("labels", {})
        labels["kubernetes.io/metadata.name"] = name
    elif res.kind == "Event" and res.group == "":
        _event_v1(obj)
    elif res.kind == "Event":
        if not obj.get("eventTime"):
            raise invalid("Event", name, [FieldError("eventTime", "FieldValueRequired", "")], group=res.group)
        obj["eventTime"] = _micro(obj["eventTime"], "Event")
    elif res.kind == "Lease":
        spec = obj.get("spec")
        if isinstance(spec, dict):
            for f in ("acquireTime", "renewTime"):
                if spec.get(f):
                    spec[f] = _micro(spec[f], "Lease")
    elif res.kind == "EndpointSlice":
        at = obj.get("addressType")
        if at not in ("IPv4", "IPv6", "FQDN"):
            raise invalid(
                "EndpointSlice",
                name,
                [
                    FieldError(
                        "addressType",
                        "FieldValueNotSupported" if at else "FieldValueRequired",
                        'supported values: "FQDN", "IPv4", "IPv6"',
                        at,
                    )
                ],
                group=res.group,
            )
        if obj.get("endpoints") is None:
            obj["endpoints"] = []
    elif res.kind == "Pod" and old is None:
        st = obj.setdefault("status", {})
        st.setdefault("phase", "Pending")
    elif res.kind == "CustomResourceDefinition":
        accept_crd(obj, registry_conflict)
    elif not res.builtin:
        _admit_custom(res, obj)


def _micro(t: Any, kind: str) -> str:
    """Parse a MicroTime like the real server (exactly six fraction digits, else 400); return it in UTC.

    Trap 9: client v37 sends a zero-microsecond datetime without a fraction; a real server refuses
    it, so this one does too (callers must send six digits).
    """
    s = str(t)
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d{6})(Z|[+-]\d\d:\d\d)", s)
    if m is None:
        raise ApiStatusError(
            400,
            f'{kind} in version "v1" cannot be handled as a {kind}: parsing time "{s}" as '
            '"2006-01-02T15:04:05.000000Z07:00": cannot parse as MicroTime (six fraction digits required)',
        )
    frac = m.group(2)[1:]
    dt = datetime.fromisoformat(m.group(1) + "+00:00" if m.group(3) == "Z" else m.group(1) + m.group(3))
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac}Z"


def _event_v1(obj: JsonObj) -> None:
    name = str(obj["metadata"].get("name", ""))
    if obj.get("eventTime"):
        obj["eventTime"] = _micro(obj["eventTime"], "Event")
    inv = obj.get("involvedObject")
    if not isinstance(inv, dict):
        raise invalid("Event", name, [FieldError("involvedObject", "FieldValueRequired", "")])
    ns = obj["metadata"].get("namespace")
    if inv.get("namespace") and ns and inv["namespace"] != ns:
        raise invalid(
            "Event",
            name,
            [
                FieldError(
                    "involvedObject.namespace",
                    "FieldValueInvalid",
                    "does not match event.namespace",
                    inv["namespace"],
                )
            ],
        )


def _admit_custom(res: Resource, obj: JsonObj) -> None:
    name = str(obj["metadata"].get("name", ""))
    pruned = crschema.prune_and_default(obj, res.schema)
    obj.clear()
    obj.update(pruned)
    errs = crschema.validate(obj, res.schema)
    if errs:
        raise invalid(res.kind, name, errs, group=res.group)


def strict_unknown_fields(res: Resource, obj: JsonObj) -> list[str]:
    """Unknown field paths for ``fieldValidation=Strict`` (custom resources only)."""
    if res.builtin:
        return []
    return crschema.unknown_fields(obj, res.schema)


def accept_crd(crd: JsonObj, conflict: Any) -> None:
    """Validate a CRD and fill in its accepted status."""
    name = str(crd["metadata"].get("name", ""))
    spec = crd.get("spec")
    errs: list[FieldError] = []
    if not isinstance(spec, dict):
        raise invalid(
            "CustomResourceDefinition",
            name,
            [FieldError("spec", "FieldValueRequired", "")],
            group="apiextensions.k8s.io",
        )
    group = spec.get("group") or ""
    names: JsonObj = spec["names"] if isinstance(spec.get("names"), dict) else {}
    spec["names"] = names
    plural = names.get("plural") or ""
    if not group:
        errs.append(FieldError("spec.group", "FieldValueRequired", ""))
    if not plural:
        errs.append(FieldError("spec.names.plural", "FieldValueRequired", ""))
    if not names.get("kind"):
        errs.append(FieldError("spec.names.kind", "FieldValueRequired", ""))
    if group and plural and name != f"{plural}.{group}":
        errs.append(FieldError("metadata.name", "FieldValueInvalid", 'must be spec.names.plural+"."+spec.group', name))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        errs.append(
            FieldError(
                "spec.scope",
                "FieldValueNotSupported",
                'supported values: "Cluster", "Namespaced"',
                spec.get("scope"),
            )
        )
    versions = spec.get("versions")
    if not isinstance(versions, list) or not versions:
        errs.append(
            FieldError(
                "spec.versions",
                "FieldValueRequired",
                "must have exactly one version marked as storage version",
            )
        )
        versions = []
    storage = [v for v in versions if isinstance(v, dict) and v.get("storage")]
    if versions and len(storage) != 1:
        errs.append(
            FieldError(
                "spec.versions",
                "FieldValueInvalid",
                "must have exactly one version marked as storage version",
                len(storage),
            )
        )
    for i, v in enumerate(versions):
        if not isinstance(v, dict) or not v.get("name"):
            errs.append(FieldError(f"spec.versions[{i}].name", "FieldValueRequired", ""))
            continue
        v.setdefault("served", True)
        v.setdefault("storage", False)
        sch = (v.get("schema") or {}).get("openAPIV3Schema") if isinstance(v.get("schema"), dict) else None
        if not isinstance(sch, dict):
            errs.append(
                FieldError(f"spec.versions[{i}].schema.openAPIV3Schema", "FieldValueRequired", "schemas are required")
            )
    if errs:
        raise invalid("CustomResourceDefinition", name, errs, group="apiextensions.k8s.io")
    names.setdefault("singular", str(names.get("kind", "")).lower())
    names.setdefault("listKind", f"{names.get('kind')}List")
    spec.setdefault("conversion", {"strategy": "None"})
    if conflict is not None:
        clash = conflict(group, plural, name)
        if clash:
            raise invalid(
                "CustomResourceDefinition",
                name,
                [FieldError("spec.names.plural", "FieldValueInvalid", clash, plural)],
                group="apiextensions.k8s.io",
            )
    t = now_rfc3339()
    old_status: JsonObj = crd["status"] if isinstance(crd.get("status"), dict) else {}
    stored = list(old_status.get("storedVersions") or [])
    for v in storage:
        if v["name"] not in stored:
            stored.append(v["name"])
    conds = [
        {
            "type": "NamesAccepted",
            "status": "True",
            "reason": "NoConflicts",
            "message": "no conflicts found",
            "lastTransitionTime": t,
        },
        {
            "type": "Established",
            "status": "True",
            "reason": "InitialNamesAccepted",
            "message": "the initial names have been accepted",
            "lastTransitionTime": t,
        },
    ]
    old_conds = {c.get("type"): c for c in old_status.get("conditions") or [] if isinstance(c, dict)}
    for c in conds:
        prev = old_conds.get(c["type"])
        if prev and prev.get("status") == "True":
            c["lastTransitionTime"] = prev.get("lastTransitionTime", t)
    crd["status"] = {"acceptedNames": dict(names), "conditions": conds, "storedVersions": stored}

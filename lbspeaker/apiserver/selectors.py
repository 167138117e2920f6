"""Label and field selectors in their query-string form (``labelSelector=``, ``fieldSelector=``).

Parsing raises :class:`ApiStatusError` 400 on a malformed selector or an unsupported field, as
the real server does; matching is pure and cheap (selectors are parsed once per request).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lbspeaker.apiserver.status import ApiStatusError

JsonObj = dict[str, Any]

_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_TOKEN = re.compile(r"\s*(!=|==|=|\(|\)|,|!|[^\s!=(),]+)")


@dataclass(frozen=True)
class LabelReq:
    """One label requirement: op is one of = != in notin exists !exists."""

    key: str
    op: str
    values: tuple[str, ...]

    def matches(self, labels: dict[str, str]) -> bool:
        """True when the labels satisfy the requirement."""
        has = self.key in labels
        if self.op == "exists":
            return has
        if self.op == "!exists":
            return not has
        if self.op in ("=", "in"):
            return has and labels[self.key] in self.values
        if self.op in ("!=", "notin"):
            return not has or labels[self.key] not in self.values
        return False


def _bad(sel: str, why: str) -> ApiStatusError:
    return ApiStatusError(400, f"unable to parse requirement: {why}: selector {sel!r}")


def parse_labels(sel: str) -> tuple[LabelReq, ...]:
    """Parse a label selector string; raises 400 when malformed."""
    toks = [t for t in _TOKEN.findall(sel)]
    if "".join(toks).replace(" ", "") != re.sub(r"\s+", "", sel):
        raise _bad(sel, "invalid character")
    reqs: list[LabelReq] = []
    i = 0
    while i < len(toks):
        neg = toks[i] == "!"
        if neg:
            i += 1
        if i >= len(toks):
            raise _bad(sel, "missing key")
        key = toks[i]
        i += 1
        if not _KEY.match(key):
            raise _bad(sel, f"invalid label key {key!r}")
        if neg:
            reqs.append(LabelReq(key, "!exists", ()))
        elif i >= len(toks) or toks[i] == ",":
            reqs.append(LabelReq(key, "exists", ()))
        elif toks[i] in ("=", "==", "!="):
            op = "!=" if toks[i] == "!=" else "="
            i += 1
            val = ""
            if i < len(toks) and toks[i] != ",":
                val = toks[i]
                i += 1
            if not _VALUE.match(val):
                raise _bad(sel, f"invalid label value {val!r}")
            reqs.append(LabelReq(key, op, (val,)))
        elif toks[i] in ("in", "notin"):
            op = toks[i]
            i += 1
            if i >= len(toks) or toks[i] != "(":
                raise _bad(sel, f"expected '(' after {op}")
            i += 1
            vals: list[str] = []
            while i < len(toks) and toks[i] != ")":
                if toks[i] != ",":
                    if not _VALUE.match(toks[i]):
                        raise _bad(sel, f"invalid label value {toks[i]!r}")
                    vals.append(toks[i])
                i += 1
            if i >= len(toks):
                raise _bad(sel, "missing ')'")
            i += 1
            reqs.append(LabelReq(key, op, tuple(vals)))
        else:
            raise _bad(sel, f"unexpected {toks[i]!r}")
        if i < len(toks):
            if toks[i] != ",":
                raise _bad(sel, f"expected ',' but found {toks[i]!r}")
            i += 1
            if i >= len(toks):
                raise _bad(sel, "trailing ','")
    return tuple(reqs)


def labels_match(reqs: tuple[LabelReq, ...], obj: JsonObj) -> bool:
    """True when every requirement holds for the object's labels."""
    if not reqs:
        return True
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(r.matches(labels) for r in reqs)


def _dig(*path: str) -> Callable[[JsonObj], str]:
    def get(obj: JsonObj) -> str:
        cur: Any = obj
        for p in path:
            if not isinstance(cur, dict):
                return ""
            cur = cur.get(p)
        if cur is None:
            return ""
        if isinstance(cur, bool):
            return "true" if cur else "false"
        return str(cur)

    return get


_COMMON = {"metadata.name": _dig("metadata", "name"), "metadata.namespace": _dig("metadata", "namespace")}

_EXTRA: dict[tuple[str, str], dict[str, Callable[[JsonObj], str]]] = {
    ("", "events"): {
        **{
            f"involvedObject.{f}": _dig("involvedObject", f)
            for f in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")
        },
        "reason": _dig("reason"),
        "reportingComponent": _dig("reportingComponent"),
        "source": _dig("source", "component"),
        "type": _dig("type"),
        **{f"regarding.{f}": _dig("involvedObject", f) for f in ("kind", "namespace", "name", "uid", "apiVersion")},
        "reportingController": _dig("reportingComponent"),
    },
    ("", "pods"): {
        "spec.nodeName": _dig("spec", "nodeName"),
        "spec.restartPolicy": _dig("spec", "restartPolicy"),
        "spec.schedulerName": _dig("spec", "schedulerName"),
        "spec.serviceAccountName": _dig("spec", "serviceAccountName"),
        "status.phase": _dig("status", "phase"),
        "status.podIP": _dig("status", "podIP"),
    },
    ("", "services"): {"spec.clusterIP": _dig("spec", "clusterIP")},
    ("", "secrets"): {"type": _dig("type")},
    ("", "nodes"): {"spec.unschedulable": _dig("spec", "unschedulable")},
    ("", "namespaces"): {"status.phase": _dig("status", "phase")},
}


@dataclass(frozen=True)
class FieldReq:
    """One field requirement (``=``/``==`` or ``!=``)."""

    field: str
    negate: bool
    value: str
    getter: Callable[[JsonObj], str]

    def matches(self, obj: JsonObj) -> bool:
        """True when the object satisfies the requirement."""
        return (self.getter(obj) == self.value) != self.negate


def parse_fields(sel: str, key: tuple[str, str], kind: str) -> tuple[FieldReq, ...]:
    """Parse a field selector for a resource; unsupported fields → 400 like the real server."""
    if not sel.strip():
        return ()
    supported = {**_COMMON, **_EXTRA.get(key, {})}
    out: list[FieldReq] = []
    for part in _split_unescaped(sel):
        m = re.fullmatch(r"\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*", part)
        if m is None:
            raise ApiStatusError(400, f"invalid field selector: invalid selector: '{sel}'; can't understand '{part}'")
        fname, op, raw_value = m.group(1), m.group(2), m.group(3)
        if re.search(r"(?<!\\)[=,]", raw_value):
            raise ApiStatusError(400, f"invalid field selector: {sel!r}: unescaped '=' or ',' in the value of '{part}'")
        value = raw_value.replace("\\,", ",").replace("\\=", "=").replace("\\\\", "\\")
        getter = supported.get(fname)
        if getter is None:
            raise ApiStatusError(
                400,
                f'field label not supported: {fname}: "{fname}" is not a known field '
                f"selector: only {', '.join(sorted(supported))} for {kind}",
            )
        out.append(FieldReq(fname, op == "!=", value, getter))
    return tuple(out)


def _split_unescaped(sel: str) -> list[str]:
    parts: list[str] = []
    cur = ""
    esc = False
    for ch in sel:
        if esc:
            cur += "\\" + ch
            esc = False
        elif ch == "\\":
            esc = True
        elif ch == ",":
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p for p in parts if p.strip()]


def fields_match(reqs: tuple[FieldReq, ...], obj: JsonObj) -> bool:
    """True when every field requirement holds."""
    return all(r.matches(obj) for r in reqs)

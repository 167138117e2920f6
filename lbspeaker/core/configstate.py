"""What a component's ConfigurationState says: the config it acts on and the edits it ignored.

One ConfigurationState per component (``controller``, ``speaker-<node>``) in the lbspeaker
namespace, like MetalLB's (0.15.3+). ``status``:
- ``result``: ``Valid`` (every live object in force as written), ``Stale`` (invalid edits
  ignored; the last good version of each such object is in force) or ``Invalid`` (some object
  never had a valid version and is left out);
- ``errorSummary`` and ``errors[]``: the loader's message per object (kind, name, field);
- ``lastGood[]``: the version in force of each object whose live version was rejected, so a
  restarted component keeps it in force too (``seed_from``; matched by uid, so a deleted and
  re-created object never gets an older namesake's spec).

Sizes are bounded (entries, message length, bytes of lastGood) so a hostile object can never
make the status itself unwritable.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from lbspeaker.core.lastgood import Outcome
from lbspeaker.core.loader import JSON, ObjKey, RawConfig

__all__ = ["MAX_ERRORS", "STALE_NOTE", "component_name", "merge", "result_of", "seed_from", "status_of", "summary_of"]

MAX_ERRORS = 50
MAX_MESSAGE = 1024
MAX_LAST_GOOD_BYTES = 256 * 1024
MAX_SUMMARY = 4096
STALE_NOTE = "invalid edit ignored; last good config in force"


def component_name(component: str, node: str = "") -> str:
    """The ConfigurationState's name for a component (``controller``, ``speaker-node1``)."""
    return f"{component}-{node}" if node else component


def result_of(outcome: Outcome) -> str:
    """Valid, Stale or Invalid (see the module docstring)."""
    if not outcome.stale:
        return "Valid"
    return "Stale" if outcome.complete else "Invalid"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def summary_of(outcome: Outcome) -> str:
    """One line per rejected object: its error and what is in force instead."""
    lines = [
        f"{r.error} ({STALE_NOTE if r.in_force else 'object left out: it never had a valid version'})"
        for r in outcome.rejections
    ]
    return _clip("\n".join(lines), MAX_SUMMARY)


def status_of(outcome: Outcome, good: Mapping[ObjKey, JSON], *, component: str, node: str = "") -> dict[str, Any]:
    """The status a component publishes for outcome; good is LastGood.good."""
    errors = []
    last_good = []
    budget = MAX_LAST_GOOD_BYTES
    for r in outcome.rejections[:MAX_ERRORS]:
        e = r.error
        errors.append(
            {
                "kind": e.kind,
                "name": r.key[1],
                "field": e.field,
                "message": _clip(str(e), MAX_MESSAGE),
                "inForce": r.in_force,
                "resourceVersion": r.resource_version,
                "goodResourceVersion": r.good_resource_version,
            }
        )
        obj = good.get(r.key)
        if not r.in_force or obj is None:
            continue
        meta = obj.get("metadata") or {}
        entry = {
            "kind": r.key[0],
            "name": r.key[1],
            "uid": str(meta.get("uid") or ""),
            "resourceVersion": str(meta.get("resourceVersion") or ""),
            "creationTimestamp": str(meta.get("creationTimestamp") or ""),
            "labels": dict(meta.get("labels") or {}),
            "spec": obj.get("spec") or {},
        }
        size = len(json.dumps(entry, default=str))
        if size <= budget:
            budget -= size
            last_good.append(entry)
    out: dict[str, Any] = {
        "component": component,
        "result": result_of(outcome),
        "errorSummary": summary_of(outcome),
        "errors": errors,
        "lastGood": last_good,
    }
    if node:
        out["node"] = node
    return out


def seed_from(status: Any, live: RawConfig) -> dict[ObjKey, JSON]:
    """The lastGood versions of a published status that still belong to the live objects."""
    entries = status.get("lastGood") if isinstance(status, Mapping) else None
    out: dict[ObjKey, JSON] = {}
    for e in entries if isinstance(entries, list) else []:
        if not isinstance(e, Mapping):
            continue
        key = (str(e.get("kind") or ""), str(e.get("name") or ""))
        cur = live.objects.get(key)
        uid = str(((cur or {}).get("metadata") or {}).get("uid") or "")
        if cur is None or not uid or uid != e.get("uid") or not isinstance(e.get("spec"), Mapping):
            continue
        labels = e.get("labels")
        out[key] = {
            "kind": key[0],
            "metadata": {
                "name": key[1],
                "uid": uid,
                "resourceVersion": str(e.get("resourceVersion") or ""),
                "creationTimestamp": str(e.get("creationTimestamp") or ""),
                "labels": dict(labels) if isinstance(labels, Mapping) else {},
            },
            "spec": dict(e["spec"]),
        }
    return out


_RANK = {"Valid": 0, "Stale": 1, "Invalid": 2}


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One status from the statuses of a component's parts (a speaker's L2 and BGP modes)."""
    if not parts:
        return {}
    out = dict(parts[0])
    seen_err = {(e["kind"], e["name"]) for e in out["errors"]}
    seen_good = {(e["kind"], e["name"]) for e in out["lastGood"]}
    out["errors"], out["lastGood"] = list(out["errors"]), list(out["lastGood"])
    lines = [ln for ln in out["errorSummary"].split("\n") if ln]
    for p in parts[1:]:
        if _RANK[p["result"]] > _RANK[out["result"]]:
            out["result"] = p["result"]
        for e in p["errors"]:
            if (e["kind"], e["name"]) not in seen_err and len(out["errors"]) < MAX_ERRORS:
                seen_err.add((e["kind"], e["name"]))
                out["errors"].append(e)
        for e in p["lastGood"]:
            if (e["kind"], e["name"]) not in seen_good:
                seen_good.add((e["kind"], e["name"]))
                out["lastGood"].append(e)
        lines += [ln for ln in p["errorSummary"].split("\n") if ln and ln not in lines]
    out["errorSummary"] = _clip("\n".join(lines), MAX_SUMMARY)
    return out

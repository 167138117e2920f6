"""Conversion between core/v1 Events and events.k8s.io/v1 Events, which share one storage.

As in a real cluster, both APIs serve the same objects: what a controller records through
events.k8s.io/v1 shows up in ``kubectl describe`` (core/v1, ``involvedObject`` field selectors)
and the other way round. Objects are stored in core/v1 form; the field mapping follows
``k8s.io/kubernetes/pkg/apis/events/v1`` conversion.
"""

from __future__ import annotations

from typing import Any

JsonObj = dict[str, Any]

# events.k8s.io/v1 field → core/v1 field
_FIELDS = (
    ("regarding", "involvedObject"),
    ("related", "related"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("reportingInstance", "reportingInstance"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
    ("series", "series"),
    ("eventTime", "eventTime"),
    ("action", "action"),
    ("reason", "reason"),
    ("type", "type"),
)
EVENTS_GROUP = "events.k8s.io"


def to_core(ev: JsonObj) -> JsonObj:
    """An events.k8s.io/v1 Event as a core/v1 Event."""
    out: JsonObj = {"kind": "Event", "apiVersion": "v1", "metadata": ev.get("metadata") or {}}
    for new, old in _FIELDS:
        if new in ev and ev[new] is not None:
            out[old] = ev[new]
    out.setdefault("involvedObject", {})
    return out


def to_events(ev: JsonObj) -> JsonObj:
    """A stored core/v1 Event as an events.k8s.io/v1 Event."""
    out: JsonObj = {"kind": "Event", "apiVersion": f"{EVENTS_GROUP}/v1", "metadata": ev.get("metadata") or {}}
    for new, old in _FIELDS:
        if old in ev and ev[old] is not None and ev[old] != {}:
            out[new] = ev[old]
    return out

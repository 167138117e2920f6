"""Watch events and watchers.

An :class:`Event` is created once per write, under the store lock, with its wire line encoded
once; every watcher of the resource receives the same Event object. A :class:`Watcher` owns a
queue fed under the store lock (so its order is the commit order) and turns events into wire
lines for its own namespace / selector filter: an object entering the filter arrives as ADDED,
one leaving it as DELETED, exactly like the real watch cache.
"""

from __future__ import annotations

import json
import queue
from collections.abc import Callable
from typing import Any

from lbspeaker.apiserver.kinds import Resource
from lbspeaker.apiserver.selectors import FieldReq, LabelReq, fields_match, labels_match

JsonObj = dict[str, Any]
MAX_QUEUE = 200_000


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


class Entry:
    """One stored object and its encoded JSON (never mutated once stored)."""

    __slots__ = ("obj", "raw")

    def __init__(self, obj: JsonObj) -> None:
        self.obj = obj
        self.raw = dumps(obj)


class Event:
    """One change of one object at one resourceVersion."""

    __slots__ = ("_line", "entry", "old", "rv", "type")

    def __init__(self, rv: int, etype: str, entry: Entry, old: JsonObj | None) -> None:
        self.rv = rv
        self.type = etype
        self.entry = entry
        self.old = old
        self._line: bytes | None = None

    @property
    def line(self) -> bytes:
        """The wire line ``{"type":...,"object":...}\\n`` (encoded once)."""
        if self._line is None:
            self._line = b'{"type":"' + self.type.encode() + b'","object":' + self.entry.raw + b"}\n"
        return self._line


class Control:
    """A non-event queue item: close the watch, or a marker such as the initial-events end."""

    __slots__ = ("kind", "rv")

    def __init__(self, kind: str, rv: int = 0) -> None:
        self.kind = kind
        self.rv = rv


QueueItem = Event | Control


class Watcher:
    """One open watch: a queue plus the filter that shapes its events."""

    def __init__(
        self,
        res: Resource,
        *,
        namespace: str | None,
        labels: tuple[LabelReq, ...],
        fields: tuple[FieldReq, ...],
        table: Callable[[JsonObj, bool], JsonObj] | None = None,
        convert: Callable[[JsonObj], JsonObj] | None = None,
    ) -> None:
        self.res = res
        self.namespace = namespace
        self.labels = labels
        self.fields = fields
        self.table = table
        self.convert = convert
        self.queue: queue.SimpleQueue[QueueItem] = queue.SimpleQueue()
        self.closed = False
        self.sent_table_header = False

    def push(self, item: QueueItem) -> None:
        """Enqueue (called under the store lock); an overflowing watcher is closed instead."""
        if self.closed:
            return
        if self.queue.qsize() > MAX_QUEUE:
            self.close()
            return
        self.queue.put(item)

    def close(self) -> None:
        """Ask the serving thread to end this watch."""
        if not self.closed:
            self.closed = True
            self.queue.put(Control("close"))

    def _match(self, obj: JsonObj | None) -> bool:
        if obj is None:
            return False
        if self.namespace is not None and (obj.get("metadata") or {}).get("namespace") != self.namespace:
            return False
        return labels_match(self.labels, obj) and fields_match(self.fields, obj)

    def render(self, ev: Event) -> bytes | None:
        """The wire line this watcher sends for an event, or None when filtered out."""
        filtered = bool(self.labels or self.fields)
        if not filtered and self.namespace is None and self.table is None and self.convert is None:
            return ev.line
        etype = ev.type
        now = self._match(ev.entry.obj)
        if etype == "MODIFIED" and filtered:
            before = self._match(ev.old)
            if now and not before:
                etype = "ADDED"
            elif before and not now and ev.old is not None:
                # like the watch cache: the previous (matching) state, at the event's resourceVersion
                gone = {**ev.old, "metadata": {**ev.old["metadata"], "resourceVersion": str(ev.rv)}}
                return self._line("DELETED", gone)
            elif not now:
                return None
        elif not now:
            return None
        return self._line(etype, ev.entry.obj, ev)

    def _line(self, etype: str, obj: JsonObj, ev: Event | None = None) -> bytes:
        """Encode one event; reuses the shared encoding when nothing differs from ``ev``."""
        head = b'{"type":"' + etype.encode() + b'","object":'
        if self.table is not None:
            first = not self.sent_table_header
            self.sent_table_header = True
            return head + dumps(self.table(obj, first)) + b"}\n"
        if self.convert is not None:
            return head + dumps(self.convert(obj)) + b"}\n"
        if ev is not None and obj is ev.entry.obj:
            return ev.line if etype == ev.type else head + ev.entry.raw + b"}\n"
        return head + dumps(obj) + b"}\n"

    def bookmark(self, rv: int, *, initial_end: bool = False) -> bytes:
        """A BOOKMARK line carrying only kind, apiVersion and metadata.resourceVersion."""
        meta: JsonObj = {"resourceVersion": str(rv), "creationTimestamp": None}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        obj = {"kind": self.res.kind, "apiVersion": self.res.api_version, "metadata": meta}
        return b'{"type":"BOOKMARK","object":' + dumps(obj) + b"}\n"


def expired_line(rv: str, reason: str = "") -> bytes:
    """The single ERROR event sent for a too-old resourceVersion."""
    status = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": reason or f"too old resource version: {rv}",
        "reason": "Expired",
        "code": 410,
    }
    return b'{"type":"ERROR","object":' + dumps(status) + b"}\n"

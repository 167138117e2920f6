"""Serving one watch request: a chunked HTTP stream of one JSON event per line.

Invariants: the watcher is registered (under the store lock) together with the replayed history,
so no event is lost or duplicated between replay and live events; a bookmark is sent only when
this watcher's queue is empty, so its resourceVersion never runs ahead of undelivered events; the
stream ends cleanly (terminating chunk) on ``timeoutSeconds``, on a close request, or on server
stop, and is dropped without a terminating chunk at the end of a blackout fault.
"""

from __future__ import annotations

import queue
import time
from typing import TYPE_CHECKING

from lbspeaker.apiserver.watch import Control, QueueItem, Watcher, expired_line

if TYPE_CHECKING:
    from lbspeaker.apiserver.http import Handler

DEFAULT_TIMEOUT = 1800.0
MAX_TIMEOUT = 3600.0
CHUNK = 64 * 1024
DRAIN = 2000


def _timeout(raw: str) -> float:
    try:
        t = float(raw)
    except ValueError:
        return DEFAULT_TIMEOUT
    return DEFAULT_TIMEOUT if t <= 0 else min(t, MAX_TIMEOUT)


def _expire(h: Handler, rv: str) -> None:
    h.start_chunked()
    h.write_chunk(expired_line(rv))
    h.end_chunked()


def serve_watch(h: Handler, w: Watcher) -> None:
    """Stream events for one watcher until timeout, close, stop or blackout."""
    from lbspeaker.apiserver.http import DropConnection

    srv = h.server
    store = srv.store
    q = h.query
    rv = q.get("resourceVersion", "")
    bookmarks = q.get("allowWatchBookmarks") in ("true", "1", "True")
    send_initial = q.get("sendInitialEvents") in ("true", "1", "True")
    if srv.faults.take_expire():
        _expire(h, rv)
        return
    initial = store.watch(w, rv, send_initial=send_initial)
    if initial is None:
        _expire(h, rv)
        return
    try:
        h.start_chunked()
        closing = _write_items(h, w, initial)
        deadline = time.monotonic() + _timeout(q.get("timeoutSeconds", ""))
        interval = max(0.05, srv.bookmark_interval)
        next_bm = time.monotonic() + interval
        while not closing and not srv.stopping.is_set():
            if srv.faults.blackout_left() > 0:
                _freeze(h)
                raise DropConnection()
            now = time.monotonic()
            if now >= deadline:
                break
            wake = min(deadline, next_bm) if bookmarks else deadline
            try:
                item = w.queue.get(timeout=max(0.0, min(wake - now, 0.25)))
            except queue.Empty:
                if bookmarks and time.monotonic() >= next_bm:
                    brv = store.bookmark_rv(w)
                    if brv is not None:
                        h.write_chunk(w.bookmark(brv))
                    next_bm = time.monotonic() + interval
                continue
            batch: list[QueueItem] = [item]
            while len(batch) < DRAIN:
                try:
                    batch.append(w.queue.get_nowait())
                except queue.Empty:
                    break
            closing = _write_items(h, w, batch)
            if bookmarks:
                next_bm = time.monotonic() + interval
        h.end_chunked()
    finally:
        w.closed = True
        store.unwatch(w)


def _freeze(h: Handler) -> None:
    srv = h.server
    end = time.monotonic() + srv.faults.blackout_left()
    while time.monotonic() < end and not srv.stopping.is_set():
        time.sleep(min(0.05, max(0.0, end - time.monotonic())))


def _write_items(h: Handler, w: Watcher, items: list[QueueItem]) -> bool:
    """Write items in chunks; returns True when a close marker was met."""
    buf: list[bytes] = []
    size = 0
    closing = False
    for item in items:
        if isinstance(item, Control):
            if item.kind == "close":
                closing = True
                break
            line = w.bookmark(item.rv, initial_end=True) if item.kind == "initial-end" else None
        else:
            line = w.render(item)
        if line is None:
            continue
        buf.append(line)
        size += len(line)
        if size >= CHUNK:
            h.write_chunk(b"".join(buf))
            buf, size = [], 0
    if buf:
        h.write_chunk(b"".join(buf))
    return closing

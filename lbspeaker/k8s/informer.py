"""List + watch cache for one resource, kept in a background thread.

Invariants: ``items()`` is always a consistent snapshot of what the API last told us; after a
relist (start, 410 Gone, lost watch) the handler sees the difference as ADDED / MODIFIED /
DELETED, so consumers never miss a deletion. Watches resume from the last seen
resourceVersion (bookmarks included); errors back off exponentially with jitter, capped.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable

from lbspeaker.core.errors import ApiError, GoneError
from lbspeaker.k8s.client import JSON, Kube, Resource

log = logging.getLogger(__name__)

Handler = Callable[[str, JSON], None]


def object_key(obj: JSON) -> str:
    """``namespace/name`` for namespaced objects, ``name`` otherwise."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name')}" if ns else str(meta.get("name"))


class Informer:
    """Keeps a local copy of one resource and calls a handler on every change."""

    def __init__(
        self,
        kube: Kube,
        res: Resource,
        namespace: str | None = None,
        *,
        on_event: Handler | None = None,
        label_selector: str | None = None,
        watch_timeout: int = 240,
        max_backoff: float = 5.0,
    ) -> None:
        self.kube = kube
        self.res = res
        self.namespace = namespace
        self.on_event = on_event
        self.label_selector = label_selector
        self.watch_timeout = watch_timeout
        self.max_backoff = max_backoff
        self._store: dict[str, JSON] = {}
        self._lock = threading.Lock()
        self._synced = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rv = ""
        self.relists = 0

    def start(self) -> None:
        """Start the list/watch thread."""
        self._thread = threading.Thread(target=self._run, name=f"informer-{self.res.plural}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to stop (it exits at the next event or watch timeout)."""
        self._stop.set()

    def wait_synced(self, timeout: float = 10.0) -> bool:
        """Block until the first list completed."""
        return self._synced.wait(timeout)

    @property
    def synced(self) -> bool:
        """True once the first list completed."""
        return self._synced.is_set()

    def items(self) -> list[JSON]:
        """A snapshot of all objects."""
        with self._lock:
            return list(self._store.values())

    def get(self, key: str) -> JSON | None:
        """One object by key."""
        with self._lock:
            return self._store.get(key)

    # -- internals ------------------------------------------------------------------------

    def _emit(self, kind: str, obj: JSON) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(kind, obj)
        except Exception:  # a handler bug must not kill the informer
            log.exception(
                "informer_handler_failed resource=%s event=%s key=%s", self.res.plural, kind, object_key(obj)
            )

    def _relist(self) -> None:
        self.res = self.kube.served(self.res)
        items, rv = self.kube.list(self.res, self.namespace, label_selector=self.label_selector)
        fresh = {object_key(o): o for o in items}
        with self._lock:
            old = self._store
            self._store = fresh
        self._rv = rv
        self.relists += 1
        for key, obj in fresh.items():
            prev = old.get(key)
            if prev is None:
                self._emit("ADDED", obj)
            elif (prev.get("metadata") or {}).get("resourceVersion") != (obj.get("metadata") or {}).get(
                "resourceVersion"
            ):
                self._emit("MODIFIED", obj)
        for key, obj in old.items():
            if key not in fresh:
                self._emit("DELETED", obj)
        self._synced.set()

    def _apply(self, ev: JSON) -> None:
        kind, obj = str(ev.get("type")), ev.get("object") or {}
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if rv:
            self._rv = str(rv)
        if kind == "BOOKMARK":
            return
        obj.setdefault("kind", self.res.kind)
        obj.setdefault("apiVersion", self.res.api_version)
        key = object_key(obj)
        with self._lock:
            if kind == "DELETED":
                self._store.pop(key, None)
            else:
                self._store[key] = obj
        self._emit(kind, obj)

    def _run(self) -> None:
        backoff = 0.05
        need_list = True
        while not self._stop.is_set():
            try:
                if need_list:
                    self._relist()
                    need_list = False
                for ev in self.kube.watch(
                    self.res,
                    resource_version=self._rv,
                    namespace=self.namespace,
                    timeout_seconds=self.watch_timeout,
                    label_selector=self.label_selector,
                ):
                    if self._stop.is_set():
                        return
                    self._apply(ev)
                    backoff = 0.05
                continue  # watch ended normally (timeout): resume from the last RV
            except GoneError:
                log.info("watch_expired resource=%s rv=%s action=relist", self.res.plural, self._rv)
                need_list = True
                continue
            except (ApiError, ValueError) as err:
                log.warning("watch_failed resource=%s err=%s retry_in=%.2fs", self.res.plural, err, backoff)
            self._stop.wait(backoff * (0.5 + random.random()))
            backoff = min(backoff * 2, self.max_backoff)

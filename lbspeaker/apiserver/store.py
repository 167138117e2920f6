"""The in-memory object store: one global resourceVersion, bounded per-resource history, watchers.

Invariants:
- every write happens under ``self.lock``; the resourceVersion counter only grows and is bumped
  once per real change (a no-op write returns the stored object unchanged);
- stored objects (``Entry.obj``) are never mutated: writes build a fresh object, so readers may
  encode them outside the lock;
- each resource (``(group, plural)``) keeps its last ``history_size`` events; a watch from a
  resourceVersion older than the oldest retained one (or older than the server start) gets 410.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from lbspeaker.apiserver import services
from lbspeaker.apiserver.kinds import Registry, Resource, resources_from_crd
from lbspeaker.apiserver.selectors import FieldReq, LabelReq, fields_match, labels_match
from lbspeaker.apiserver.status import ApiStatusError, not_found
from lbspeaker.apiserver.watch import Control, Entry, Event, QueueItem, Watcher
from lbspeaker.apiserver.writes import CRD_KEY, NS_KEY, Key, ObjKey, Writes, clone, ordered

__all__ = ["CRD_KEY", "NS_KEY", "Store", "clone", "ordered"]
JsonObj = dict[str, Any]


class Store(Writes):
    """Objects, resourceVersion, history and watchers of the embedded API server."""

    def __init__(
        self,
        *,
        history_size: int = 1000,
        service_cidrs: tuple[str, ...] = ("198.51.100.0/24", "2001:db8:ffff::/108"),
    ) -> None:
        self.lock = threading.RLock()
        self.registry = Registry()
        self.history_size = max(1, history_size)
        self.rv = 0
        self.start_rv = 0
        self.data: dict[Key, dict[ObjKey, Entry]] = {}
        self.history: dict[Key, deque[Event]] = {}
        self.floor: dict[Key, int] = {}
        self.watchers: dict[Key, set[Watcher]] = {}
        self.alloc = services.Allocators(service_cidrs)
        self.dirty = False
        self.cidrs = service_cidrs
        self._emptying: set[str] = set()
        self.uids: dict[str, tuple[Key, ObjKey]] = {}
        self.dependents: dict[str, set[tuple[Key, ObjKey]]] = {}

    # ---- reads -----------------------------------------------------------------------------
    def get(self, res: Resource, ns: str, name: str) -> Entry:
        """The stored entry or 404."""
        e = self.data.get(res.key, {}).get((ns, name))
        if e is None:
            raise not_found(res.plural, name, group=res.group)
        return e

    def list_objects(
        self, res: Resource, ns: str | None, labels: tuple[LabelReq, ...], fields: tuple[FieldReq, ...]
    ) -> tuple[list[tuple[ObjKey, Entry]], int]:
        """Matching entries sorted by (namespace, name), and the list resourceVersion."""
        with self.lock:
            items = list(self.data.get(res.key, {}).items())
            rv = self.rv
        if ns is not None:
            items = [kv for kv in items if kv[0][0] == ns]
        if labels or fields:
            items = [kv for kv in items if labels_match(labels, kv[1].obj) and fields_match(fields, kv[1].obj)]
        items.sort(key=lambda kv: kv[0])
        return items, rv

    def namespace_active(self, ns: str) -> None:
        """404 if the namespace is missing, 403 if it is terminating."""
        e = self.data.get(NS_KEY, {}).get(("", ns))
        if e is None:
            raise not_found("namespaces", ns)
        if (e.obj.get("metadata") or {}).get("deletionTimestamp"):
            raise ApiStatusError(
                403,
                f"unable to create new content in namespace {ns} because it is being terminated",
                name=ns,
                kind="namespaces",
            )

    # ---- commit ----------------------------------------------------------------------------
    def _index(self, key: Key, okey: ObjKey, new: JsonObj | None, old: JsonObj | None) -> None:
        """Keep the uid → object and owner uid → dependents indexes (garbage collection) current."""
        ref = (key, okey)
        for o in (old, new):
            if o is None:
                continue
            for r in o["metadata"].get("ownerReferences") or []:
                if isinstance(r, dict) and r.get("uid"):
                    deps = self.dependents.get(str(r["uid"]))
                    if deps is not None:
                        deps.discard(ref)
                        if not deps:
                            del self.dependents[str(r["uid"])]
        if new is None:
            if old is not None:
                self.uids.pop(str(old["metadata"].get("uid")), None)
            return
        self.uids[str(new["metadata"].get("uid"))] = ref
        for r in new["metadata"].get("ownerReferences") or []:
            if isinstance(r, dict) and r.get("uid"):
                self.dependents.setdefault(str(r["uid"]), set()).add(ref)

    def _commit(self, res: Resource, okey: ObjKey, obj: JsonObj | None, etype: str, old: JsonObj | None) -> Entry:
        """Store (or remove) one object at a new resourceVersion and notify watchers."""
        self.rv += 1
        self.dirty = True
        assert obj is not None
        obj["metadata"]["resourceVersion"] = str(self.rv)
        entry = Entry(ordered(obj))
        bucket = self.data.setdefault(res.key, {})
        if etype == "DELETED":
            bucket.pop(okey, None)
            self._index(res.key, okey, None, old)
        else:
            bucket[okey] = entry
            self._index(res.key, okey, entry.obj, old)
        ev = Event(self.rv, etype, entry, old)
        hist = self.history.setdefault(res.key, deque())
        if len(hist) >= self.history_size:
            self.floor[res.key] = hist.popleft().rv
        hist.append(ev)
        for w in list(self.watchers.get(res.key, ())):
            w.push(ev)
        return entry

    # ---- watch -----------------------------------------------------------------------------
    def watch(self, w: Watcher, rv: str, *, send_initial: bool | None = None) -> list[QueueItem] | None:
        """Register a watcher; returns the initial items to send, or None when ``rv`` is too old (410)."""
        key = w.res.key
        with self.lock:
            initial: list[QueueItem] = []
            if rv in ("", "0") or send_initial:
                for _okey, e in sorted(self.data.get(key, {}).items(), key=lambda kv: kv[0]):
                    initial.append(Event(int(e.obj["metadata"]["resourceVersion"]), "ADDED", e, None))
                if send_initial:
                    initial.append(Control("initial-end", self.rv))
            else:
                try:
                    since = int(rv)
                except ValueError:
                    raise ApiStatusError(400, f"invalid resourceVersion {rv!r}") from None
                if since < self.floor.get(key, self.start_rv):
                    return None
                initial.extend(ev for ev in self.history.get(key, ()) if ev.rv > since)
            self.watchers.setdefault(key, set()).add(w)
            return initial

    def unwatch(self, w: Watcher) -> None:
        """Forget a watcher."""
        with self.lock:
            self.watchers.get(w.res.key, set()).discard(w)

    def bookmark_rv(self, w: Watcher) -> int | None:
        """The resourceVersion a bookmark may carry now (None while events are still queued)."""
        with self.lock:
            return self.rv if w.queue.empty() else None

    def close_watchers(self) -> int:
        """Close every open watch; returns how many."""
        with self.lock:
            ws = [w for s in self.watchers.values() for w in s]
            for w in ws:
                w.close()
            self.watchers.clear()
            return len(ws)

    # ---- state -----------------------------------------------------------------------------
    def snapshot(self) -> JsonObj:
        """A JSON-able snapshot of all objects and the resourceVersion counter."""
        with self.lock:
            objs = [[k[0], k[1], e.obj] for k, bucket in self.data.items() for e in bucket.values()]
            self.dirty = False
            return {"resourceVersion": self.rv, "objects": objs}

    def load(self, state: JsonObj) -> None:
        """Restore a snapshot (CRDs first so their resources are served)."""
        with self.lock:
            objs = state.get("objects") or []
            for group, plural, obj in sorted(objs, key=lambda o: (o[0], o[1]) != CRD_KEY):
                bucket = self.data.setdefault((group, plural), {})
                meta = obj["metadata"]
                okey = (meta.get("namespace", ""), meta["name"])
                bucket[okey] = Entry(obj)
                self._index((group, plural), okey, obj, None)
                if (group, plural) == CRD_KEY:
                    self.registry.set_crd(meta["name"], resources_from_crd(obj))
                if (group, plural) == ("", "services"):
                    self.alloc.take(obj)
            self.rv = max(self.rv, int(state.get("resourceVersion", 0)))
            self.start_rv = self.rv

    def bootstrap(self) -> None:
        """Create the namespaces and the default/kubernetes Service a real cluster always has."""
        ns_res = self.registry.lookup("", "v1", "namespaces")
        svc_res = self.registry.lookup("", "v1", "services")
        assert ns_res is not None and svc_res is not None
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            if ("", ns) not in self.data.get(NS_KEY, {}):
                self.create(ns_res, "", {"metadata": {"name": ns}})
        if ("default", "kubernetes") not in self.data.get(svc_res.key, {}):
            net = next(iter(self.alloc.nets.values()))
            self.create(
                svc_res,
                "default",
                {
                    "metadata": {
                        "name": "kubernetes",
                        "labels": {"component": "apiserver", "provider": "kubernetes"},
                    },
                    "spec": {
                        "clusterIP": str(net.network_address + 1),
                        "type": "ClusterIP",
                        "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
                    },
                },
            )
        self.start_rv = self.rv

"""Write semantics of the store: create, update (PUT/PATCH/status), delete, finalizers, cascades.

Invariants: every method runs under the store lock; admission (defaulting/validation) happens on
a private copy before anything is committed, so a refused write leaves no trace (allocations are
rolled back on dry-run and on failure); an object carrying finalizers is only marked
(deletionTimestamp) and disappears when its last finalizer is removed; deleting a Namespace
deletes its contents, deleting a CRD deletes its custom objects and stops serving them.
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from typing import Any

from lbspeaker.apiserver import services
from lbspeaker.apiserver.kinds import Registry, Resource, resources_from_crd
from lbspeaker.apiserver.objects import admit, name_errors, now_rfc3339
from lbspeaker.apiserver.status import (
    ApiStatusError,
    FieldError,
    already_exists,
    conflict,
    invalid,
    not_found,
)
from lbspeaker.apiserver.watch import Entry, Watcher

JsonObj = dict[str, Any]
Key = tuple[str, str]
ObjKey = tuple[str, str]
CRD_KEY: Key = ("apiextensions.k8s.io", "customresourcedefinitions")
NS_KEY: Key = ("", "namespaces")
_GEN_CHARS = "bcdfghjklmnpqrstvwxz2456789"


def clone(obj: Any) -> Any:
    """A deep copy of JSON data (faster than copy.deepcopy)."""
    if isinstance(obj, dict):
        return {k: clone(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [clone(v) for v in obj]
    return obj


def ordered(obj: JsonObj) -> JsonObj:
    """Put kind, apiVersion, metadata first, like the real server's output."""
    head: JsonObj = {k: obj[k] for k in ("kind", "apiVersion", "metadata") if k in obj}
    head.update((k, v) for k, v in obj.items() if k not in head)
    return head


class Writes:
    """The write half of :class:`lbspeaker.apiserver.store.Store` (state lives there)."""

    lock: threading.RLock
    registry: Registry
    data: dict[Key, dict[ObjKey, Entry]]
    watchers: dict[Key, set[Watcher]]
    alloc: services.Allocators
    rv: int
    _emptying: set[str]
    uids: dict[str, tuple[Key, ObjKey]]
    dependents: dict[str, set[tuple[Key, ObjKey]]]

    def _commit(self, res: Resource, okey: ObjKey, obj: JsonObj | None, etype: str, old: JsonObj | None) -> Entry:
        raise NotImplementedError

    def namespace_active(self, ns: str) -> None:
        """404 if the namespace is missing, 403 if it is terminating."""
        raise NotImplementedError

    # ---- create ----------------------------------------------------------------------------
    def create(self, res: Resource, ns: str, body: JsonObj, *, dry_run: bool = False) -> Entry:
        """Create an object (server-set uid, timestamps, generation, resourceVersion)."""
        obj = clone(body)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise ApiStatusError(400, "metadata must be an object")
        obj["kind"], obj["apiVersion"] = res.kind, res.api_version
        with self.lock:
            if res.namespaced:
                self.namespace_active(ns)
                meta["namespace"] = ns
            else:
                meta.pop("namespace", None)
            bucket = self.data.get(res.key, {})
            if not meta.get("name"):
                gen = meta.get("generateName")
                if not gen:
                    raise invalid(
                        res.kind,
                        "",
                        [FieldError("metadata.name", "FieldValueRequired", "name or generateName is required")],
                        group=res.group,
                    )
                for _ in range(100):
                    cand = gen + "".join(random.choice(_GEN_CHARS) for _ in range(5))
                    if (ns, cand) not in bucket:
                        meta["name"] = cand
                        break
            name = str(meta["name"])
            errs = name_errors(res, name)
            if errs:
                raise invalid(res.kind, name, errs, group=res.group)
            okey = (ns if res.namespaced else "", name)
            if okey in bucket:
                raise already_exists(res.plural, name, group=res.group)
            for k in (
                "resourceVersion",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "managedFields",
                "selfLink",
            ):
                meta.pop(k, None)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_rfc3339()
            if res.has_generation:
                meta["generation"] = 1
            else:
                meta.pop("generation", None)
            if res.status_sub and not res.keep_status_on_create:
                obj.pop("status", None)
            if res.kind == "Service" and res.group == "":
                obj["status"] = {"loadBalancer": {}}
            admit(res, obj, None, alloc=self.alloc, registry_conflict=self._crd_conflict)
            if dry_run:
                self._undo_alloc(res, obj, None)
                obj["metadata"]["resourceVersion"] = str(self.rv)
                return Entry(ordered(obj))
            entry = self._commit(res, okey, obj, "ADDED", None)
            if res.key == CRD_KEY:
                self.registry.set_crd(name, resources_from_crd(entry.obj))
            return entry

    def _undo_alloc(self, res: Resource, new: JsonObj, old: JsonObj | None) -> None:
        """Roll back what admitting ``new`` (over ``old``) allocated or released (dry runs)."""
        if not (res.kind == "Service" and res.group == ""):
            return
        new_ips, new_ports = self.alloc.holdings(new)
        old_ips, old_ports = self.alloc.holdings(old) if old else (set(), set())
        self.alloc.ips -= new_ips - old_ips
        self.alloc.ports -= new_ports - old_ports
        self.alloc.ips |= old_ips
        self.alloc.ports |= old_ports

    def _crd_conflict(self, group: str, plural: str, crd_name: str) -> str:
        owner = self.registry.crd_key(crd_name)
        for r in self.registry.resources():
            if r.group == group and r.plural == plural and (r.builtin or owner != r.key):
                return f"{plural}.{group} is already served"
        return ""

    # ---- update ----------------------------------------------------------------------------
    def update(
        self,
        res: Resource,
        ns: str,
        name: str,
        new: JsonObj,
        *,
        subresource: str = "",
        dry_run: bool = False,
        expect_rv: str = "",
    ) -> tuple[Entry, bool]:
        """Replace an object (PUT semantics; PATCH results come here too). Returns (entry, changed)."""
        with self.lock:
            okey = (ns if res.namespaced else "", name)
            cur = self.data.get(res.key, {}).get(okey)
            if cur is None:
                raise not_found(res.plural, name, group=res.group)
            old = cur.obj
            old_rv = old["metadata"]["resourceVersion"]
            body_rv = str((new.get("metadata") or {}).get("resourceVersion") or "")
            want_rv = expect_rv or body_rv
            if not want_rv and not res.builtin:
                err = FieldError("metadata.resourceVersion", "FieldValueInvalid", "must be specified for an update", 0)
                raise invalid(res.kind, name, [err], group=res.group)
            if want_rv and want_rv != old_rv:
                raise _stale(res, name)
            obj = self._merge_for_write(res, old, new, subresource)
            if subresource != "status" or not res.builtin:
                admit(res, obj, old, alloc=self.alloc, registry_conflict=self._crd_conflict)
            if res.key == CRD_KEY:
                self._crd_immutables(old, obj)
            if res.has_generation and _spec_of(obj, res) != _spec_of(old, res):
                obj["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
            obj = ordered(obj)
            if obj == old:
                return cur, False
            if dry_run:
                self._undo_alloc(res, obj, old)
                return Entry(obj), True
            meta = obj["metadata"]
            if meta.get("deletionTimestamp") and not meta.get("finalizers"):
                return self._remove(res, okey, obj, old), True
            entry = self._commit(res, okey, obj, "MODIFIED", old)
            if res.key == CRD_KEY:
                self.registry.set_crd(name, resources_from_crd(entry.obj))
            return entry, True

    def _merge_for_write(self, res: Resource, old: JsonObj, new: JsonObj, subresource: str) -> JsonObj:
        if subresource == "status":
            obj: JsonObj = clone(old)
            if "status" in new:
                obj["status"] = clone(new["status"])
            else:
                obj.pop("status", None)
            return obj
        obj = clone(new)
        if not isinstance(obj.get("metadata"), dict):
            obj["metadata"] = {}
        obj["kind"], obj["apiVersion"] = res.kind, old.get("apiVersion", res.api_version)
        if res.status_sub:
            if "status" in old:
                obj["status"] = clone(old["status"])
            else:
                obj.pop("status", None)
        meta, ometa = obj["metadata"], old["metadata"]
        for k in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "namespace",
            "name",
            "resourceVersion",
        ):
            if k in ometa:
                meta[k] = ometa[k]
            else:
                meta.pop(k, None)
        meta.pop("managedFields", None)
        meta.pop("selfLink", None)
        if ometa.get("deletionTimestamp"):
            added = set(meta.get("finalizers") or []) - set(ometa.get("finalizers") or [])
            if added:
                raise invalid(
                    res.kind,
                    str(ometa["name"]),
                    [
                        FieldError(
                            "metadata.finalizers",
                            "FieldValueForbidden",
                            "no new finalizers can be added if the object is being deleted",
                            sorted(added),
                        )
                    ],
                    group=res.group,
                )
        return obj

    def _crd_immutables(self, old: JsonObj, new: JsonObj) -> None:
        for path in (("spec", "group"), ("spec", "names", "plural"), ("spec", "scope")):
            a: Any = old
            b: Any = new
            for p in path:
                a = (a or {}).get(p)
                b = (b or {}).get(p)
            if a != b:
                raise invalid(
                    "CustomResourceDefinition",
                    str(old["metadata"]["name"]),
                    [FieldError(".".join(path), "FieldValueInvalid", "field is immutable", b)],
                    group="apiextensions.k8s.io",
                )

    # ---- delete ----------------------------------------------------------------------------
    def delete(
        self,
        res: Resource,
        ns: str,
        name: str,
        *,
        uid: str = "",
        rv: str = "",
        dry_run: bool = False,
        orphan: bool = False,
    ) -> tuple[Entry, bool]:
        """Delete (or mark for deletion when finalizers remain). Returns (entry, removed_now).

        Dependents (ownerReferences) left without an owner are deleted too unless ``orphan``.
        """
        with self.lock:
            okey = (ns if res.namespaced else "", name)
            cur = self.data.get(res.key, {}).get(okey)
            if cur is None:
                raise not_found(res.plural, name, group=res.group)
            meta = cur.obj["metadata"]
            if uid and uid != meta.get("uid"):
                raise _precondition(
                    res,
                    name,
                    f"Precondition failed: UID in precondition: {uid}, UID in object meta: {meta.get('uid')}",
                )
            if rv and rv != meta.get("resourceVersion"):
                raise _precondition(
                    res,
                    name,
                    f"Precondition failed: ResourceVersion in precondition: {rv}, "
                    f"ResourceVersion in object meta: {meta.get('resourceVersion')}",
                )
            if res.key == NS_KEY and name in ("default", "kube-system", "kube-public"):
                raise ApiStatusError(
                    403,
                    f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                    name=name,
                    kind="namespaces",
                )
            if dry_run:
                return cur, not meta.get("finalizers")
            if meta.get("finalizers") or res.key == NS_KEY:
                if meta.get("deletionTimestamp"):
                    return cur, False
                obj = clone(cur.obj)
                obj["metadata"]["deletionTimestamp"] = now_rfc3339()
                obj["metadata"]["deletionGracePeriodSeconds"] = 0
                if res.has_generation:
                    obj["metadata"]["generation"] = int(meta.get("generation", 1)) + 1
                if res.key == NS_KEY:
                    obj.setdefault("status", {})["phase"] = "Terminating"
                entry = self._commit(res, okey, obj, "MODIFIED", cur.obj)
                if res.key == NS_KEY:
                    self._emptying.add(name)
                    try:
                        self._empty_namespace(name)
                    finally:
                        self._emptying.discard(name)
                    if not meta.get("finalizers") and not self._ns_has_objects(name):
                        gone = self._remove(res, okey, clone(entry.obj), entry.obj)
                        return gone, True
                return entry, False
            return self._remove(res, okey, clone(cur.obj), cur.obj, orphan=orphan), True

    def _remove(self, res: Resource, okey: ObjKey, obj: JsonObj, old: JsonObj, *, orphan: bool = False) -> Entry:
        entry = self._commit(res, okey, obj, "DELETED", old)
        if not orphan:
            self._collect(str(entry.obj["metadata"].get("uid")))
        if res.kind == "Service" and res.group == "":
            self.alloc.release(entry.obj)
        if res.key == CRD_KEY:
            self._drop_crd(str(okey[1]))
        ns = okey[0]
        if ns and res.key != NS_KEY and ns not in self._emptying:
            ns_entry = self.data.get(NS_KEY, {}).get(("", ns))
            if (
                ns_entry is not None
                and ns_entry.obj["metadata"].get("deletionTimestamp")
                and not ns_entry.obj["metadata"].get("finalizers")
                and not self._ns_has_objects(ns)
            ):
                nsres = self.registry.lookup("", "v1", "namespaces")
                assert nsres is not None
                self._remove(nsres, ("", ns), clone(ns_entry.obj), ns_entry.obj)
        return entry

    def _collect(self, owner_uid: str) -> None:
        """Background garbage collection: delete dependents left without any existing owner."""
        for dkey, dokey in sorted(self.dependents.get(owner_uid, ())):
            dep = self.data.get(dkey, {}).get(dokey)
            if dep is None:
                continue
            refs = dep.obj["metadata"].get("ownerReferences") or []
            if any(isinstance(r, dict) and str(r.get("uid")) in self.uids for r in refs):
                continue
            dres = self._any_resource(dkey)
            if dres is not None:
                self.delete(dres, dokey[0], dokey[1])

    def _ns_has_objects(self, ns: str) -> bool:
        return any(k[0] == ns for key, bucket in self.data.items() if key != NS_KEY for k in bucket)

    def _empty_namespace(self, ns: str) -> None:
        for key, bucket in list(self.data.items()):
            if key == NS_KEY:
                continue
            res = self._any_resource(key)
            if res is None:
                continue
            for okey in [k for k in bucket if k[0] == ns]:
                e = bucket.get(okey)
                if e is not None:
                    self.delete(res, ns, okey[1])

    def _any_resource(self, key: Key) -> Resource | None:
        rs = self.registry.by_key(key)
        return next((r for r in rs if r.storage), rs[0] if rs else None)

    def _drop_crd(self, crd_name: str) -> None:
        key = self.registry.crd_key(crd_name)
        if key is None:
            return
        res = self._any_resource(key)
        if res is not None:
            for okey, e in list(self.data.get(key, {}).items()):
                self._commit(res, okey, clone(e.obj), "DELETED", e.obj)
        for w in list(self.watchers.pop(key, ())):
            w.close()
        self.data.pop(key, None)
        self.registry.drop_crd(crd_name)


def _spec_of(obj: JsonObj, res: Resource) -> Any:
    skip = ("metadata", "status") if res.status_sub else ("metadata",)
    body = {k: v for k, v in obj.items() if k not in skip}
    return json.dumps(body, sort_keys=True), bool(obj["metadata"].get("deletionTimestamp"))


def _stale(res: Resource, name: str) -> ApiStatusError:
    return conflict(
        res.plural,
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
        group=res.group,
    )


def _precondition(res: Resource, name: str, detail: str) -> ApiStatusError:
    return conflict(res.plural, name, detail, group=res.group)

"""The registry of served resources: the built-in kinds plus whatever CRDs declare.

Invariants: a resource is identified for storage by ``(group, plural)`` (all versions of a CRD
share one store); it is served at ``(group, version, plural)``. The registry is mutated only
under the store lock (CRD create/update/delete), and readers get immutable ``Resource`` values.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

JsonObj = dict[str, Any]

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
STATUS_VERBS = ("get", "patch", "update")


@dataclass(frozen=True)
class Column:
    """One additionalPrinterColumn of a CRD version."""

    name: str
    type: str
    json_path: str
    description: str = ""
    priority: int = 0
    format: str = ""


@dataclass(frozen=True)
class Resource:
    """One served resource at one group/version."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status_sub: bool = False
    builtin: bool = True
    has_generation: bool = False
    keep_status_on_create: bool = True
    columns: tuple[Column, ...] | None = None
    schema: JsonObj | None = field(default=None, compare=False, hash=False)
    storage: bool = True

    @property
    def key(self) -> tuple[str, str]:
        """Storage identity (events.k8s.io Events share the core/v1 storage)."""
        if self.group == "events.k8s.io" and self.plural == "events":
            return ("", "events")
        return (self.group, self.plural)

    @property
    def converted(self) -> bool:
        """True when stored objects are converted on the way in and out (events.k8s.io/v1)."""
        return self.group == "events.k8s.io" and self.plural == "events"

    @property
    def api_version(self) -> str:
        """``v1`` or ``group/version``."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        """The list kind, e.g. ``ServiceList``."""
        return self.kind + "List"

    @property
    def qualified(self) -> str:
        """``plural`` or ``plural.group`` as used in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _r(group: str, version: str, plural: str, kind: str, namespaced: bool, **kw: Any) -> Resource:
    return Resource(group, version, plural, kw.pop("singular", kind.lower()), kind, namespaced, **kw)


BUILTINS: tuple[Resource, ...] = (
    _r("", "v1", "namespaces", "Namespace", False, short_names=("ns",), status_sub=True),
    _r(
        "",
        "v1",
        "services",
        "Service",
        True,
        short_names=("svc",),
        categories=("all",),
        status_sub=True,
        keep_status_on_create=False,
    ),
    _r("", "v1", "endpoints", "Endpoints", True, short_names=("ep",), singular="endpoints"),
    _r("", "v1", "nodes", "Node", False, short_names=("no",), status_sub=True),
    _r(
        "",
        "v1",
        "pods",
        "Pod",
        True,
        short_names=("po",),
        categories=("all",),
        status_sub=True,
        keep_status_on_create=False,
    ),
    _r("", "v1", "configmaps", "ConfigMap", True, short_names=("cm",)),
    _r("", "v1", "secrets", "Secret", True),
    _r("", "v1", "events", "Event", True, short_names=("ev",)),
    _r("", "v1", "serviceaccounts", "ServiceAccount", True, short_names=("sa",)),
    _r("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True, has_generation=True),
    _r("coordination.k8s.io", "v1", "leases", "Lease", True),
    _r("events.k8s.io", "v1", "events", "Event", True, short_names=("ev",)),
    _r(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        short_names=("crd", "crds"),
        status_sub=True,
        has_generation=True,
        keep_status_on_create=False,
        categories=("api-extensions",),
    ),
)

BUILTIN_GROUP_ORDER = ("", "apiextensions.k8s.io", "coordination.k8s.io", "discovery.k8s.io", "events.k8s.io")


def version_priority(v: str) -> tuple[int, int, int]:
    """Kube-aware sort key: v2 > v1 > v1beta2 > v1beta1 > v1alpha1 > anything else."""
    import re

    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", v)
    if not m:
        return (0, 0, 0)
    stage = {"alpha": 1, "beta": 2, None: 3}[m.group(2)]
    return (stage, int(m.group(1)), int(m.group(3) or 0))


class Registry:
    """All served resources; CRD resources come and go with their CRDs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_gvr: dict[tuple[str, str, str], Resource] = {}
        self._crd_of_key: dict[tuple[str, str], str] = {}
        for r in BUILTINS:
            self._by_gvr[(r.group, r.version, r.plural)] = r

    def lookup(self, group: str, version: str, plural: str) -> Resource | None:
        """The resource served at this group/version/plural, or None."""
        return self._by_gvr.get((group, version, plural))

    def resources(self) -> list[Resource]:
        """A snapshot of every served resource."""
        with self._lock:
            return list(self._by_gvr.values())

    def group_versions(self) -> dict[str, list[str]]:
        """Group name → served versions, preferred first."""
        out: dict[str, set[str]] = {}
        for r in self.resources():
            out.setdefault(r.group, set()).add(r.version)
        return {g: sorted(vs, key=version_priority, reverse=True) for g, vs in out.items()}

    def by_key(self, key: tuple[str, str]) -> list[Resource]:
        """Every served version of one storage key."""
        return [r for r in self.resources() if r.key == key]

    def crd_key(self, crd_name: str) -> tuple[str, str] | None:
        """The storage key served by the named CRD, if any."""
        with self._lock:
            for k, n in self._crd_of_key.items():
                if n == crd_name:
                    return k
        return None

    def set_crd(self, crd_name: str, resources: list[Resource]) -> None:
        """Replace the resources served for one CRD."""
        with self._lock:
            self._drop_crd_locked(crd_name)
            for r in resources:
                self._by_gvr[(r.group, r.version, r.plural)] = r
                self._crd_of_key[r.key] = crd_name

    def drop_crd(self, crd_name: str) -> None:
        """Stop serving a CRD's resources."""
        with self._lock:
            self._drop_crd_locked(crd_name)

    def _drop_crd_locked(self, crd_name: str) -> None:
        keys = {k for k, n in self._crd_of_key.items() if n == crd_name}
        for gvr in [g for g, r in self._by_gvr.items() if r.key in keys and not r.builtin]:
            del self._by_gvr[gvr]
        for k in keys:
            del self._crd_of_key[k]

    def find_kind(self, group: str, version: str, kind: str) -> Resource | None:
        """The resource for an apiVersion/kind pair."""
        for r in self.resources():
            if r.group == group and r.version == version and r.kind == kind:
                return r
        return None


def resources_from_crd(crd: JsonObj) -> list[Resource]:
    """The served resources a (validated) CRD declares."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = str(spec.get("group", ""))
    namespaced = spec.get("scope", "Namespaced") == "Namespaced"
    out: list[Resource] = []
    for v in spec.get("versions") or []:
        if not v.get("served", True):
            continue
        cols_raw = v.get("additionalPrinterColumns")
        cols = None
        if cols_raw:
            cols = tuple(
                Column(
                    name=str(c.get("name", "")),
                    type=str(c.get("type", "string")),
                    json_path=str(c.get("jsonPath", "")),
                    description=str(c.get("description", "")),
                    priority=int(c.get("priority", 0) or 0),
                    format=str(c.get("format", "")),
                )
                for c in cols_raw
            )
        subs = v.get("subresources") or {}
        schema = (v.get("schema") or {}).get("openAPIV3Schema")
        out.append(
            Resource(
                group=group,
                version=str(v.get("name", "")),
                plural=str(names.get("plural", "")),
                singular=str(names.get("singular") or str(names.get("kind", "")).lower()),
                kind=str(names.get("kind", "")),
                namespaced=namespaced,
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                status_sub="status" in subs,
                builtin=False,
                has_generation=True,
                keep_status_on_create="status" not in subs,
                columns=cols,
                schema=schema if isinstance(schema, dict) else None,
                storage=bool(v.get("storage", False)),
            )
        )
    return out

"""The one "last good config" policy, shared by every component that loads the config.

``LastGood.update`` takes the live objects and returns the config to act on:
- a valid object is in force as written;
- an invalid edit of an object keeps that object's last valid version in force (the edit is
  *rejected*, reported with the loader's error, and ``stale`` is set);
- an edit that is valid on its own but would make another object invalid (a pool growing into
  a range another pool holds, say) is rejected the same way, charged to the edited object;
- an object that never had a valid version is left out and reported;
- a deleted object is really deleted, even when its last live version was invalid.

Edits are judged one object at a time against what is in force, in (kind, name) order, so the
result does not depend on the order informers delivered them; the usual case (every change
valid) costs one load. The same rule is what the admission webhook applies to a single edit
(``loader.validate_change``), so an edit the webhook lets through is one this policy keeps.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from lbspeaker.core.errors import ConfigError
from lbspeaker.core.loader import JSON, Loaded, ObjKey, RawConfig, error_key, invalidates, load

__all__ = ["LastGood", "Outcome", "Rejection"]


@dataclass(frozen=True)
class Rejection:
    """A live object whose current version is not in force."""

    key: ObjKey
    error: ConfigError
    in_force: bool
    """True when its last valid version is in force; False when the object is left out."""
    resource_version: str = ""
    """The resourceVersion of the live version that was rejected."""
    good_resource_version: str = ""
    """The resourceVersion of the version in force ('' when left out)."""


@dataclass(frozen=True)
class Outcome:
    """The config to act on and why it differs from the live objects."""

    loaded: Loaded
    """The effective config; its errors are the rejections' errors."""
    rejections: tuple[Rejection, ...] = ()

    @property
    def stale(self) -> bool:
        """True when some live object is not in force as written."""
        return bool(self.rejections)

    @property
    def complete(self) -> bool:
        """True when every live object has a version in force (none left out)."""
        return all(r.in_force for r in self.rejections)


def _content(obj: JSON) -> str:
    """What of an object the config depends on: spec, labels and creation time."""
    meta = obj.get("metadata") or {}
    return json.dumps(
        [obj.get("spec"), meta.get("labels"), meta.get("creationTimestamp")], sort_keys=True, default=str
    )


def _rv(obj: JSON | None) -> str:
    return str(((obj or {}).get("metadata") or {}).get("resourceVersion") or "")


class LastGood:
    """Keeps, per config object, its last version that was in force (not thread-safe)."""

    def __init__(self, loader: Callable[[RawConfig], Loaded] = load) -> None:
        self._load = loader
        self._good: dict[ObjKey, JSON] = {}
        self._last: tuple[RawConfig, Outcome] | None = None

    @property
    def good(self) -> Mapping[ObjKey, JSON]:
        """The version in force of each object (read-only view)."""
        return dict(self._good)

    def seed(self, objects: Mapping[ObjKey, JSON]) -> None:
        """Adopt earlier good versions (e.g. recorded in a status before a restart).

        Only fills objects this instance has no version of; ``update`` re-validates them."""
        for k, v in objects.items():
            self._good.setdefault(k, v)
        self._last = None

    def update(self, raw: RawConfig) -> Outcome:
        """The config to act on for the live objects of raw (see the module docstring)."""
        if self._last is not None and self._last[0] == raw:
            return self._last[1]
        cur = raw.objects
        base = {k: v for k, v in self._good.items() if k in cur}
        changed = [k for k in sorted(cur) if k not in base or _content(cur[k]) != _content(base[k])]
        rejected: dict[ObjKey, ConfigError] = {}
        cand = {**base, **{k: cur[k] for k in changed}}
        res = self._load(raw.with_objects(cand))
        base_bad: frozenset[ObjKey] | None = None
        while res.errors:
            bad = res.error_keys()
            own = {error_key(e): e for e in res.errors if error_key(e) in changed and error_key(e) not in rejected}
            if own:
                for k, e in own.items():
                    rejected[k] = e
                    if k in base:
                        cand[k] = base[k]
                    else:
                        cand.pop(k)
                res = self._load(raw.with_objects(cand))
                continue
            if base_bad is None:
                base_bad = self._load(raw.with_objects(base)).error_keys()
            if bad <= base_bad:
                break  # only objects already broken by deletions: they are left out
            cand, res = self._one_by_one(raw, base, changed, rejected)
            break
        final_bad = res.error_keys()
        for k in list(self._good):
            if k not in cur:
                del self._good[k]
        for k, v in cand.items():
            if k not in final_bad:
                self._good[k] = v
        rejections = [
            Rejection(k, e, k in cand and k not in final_bad, _rv(cur.get(k)), _rv(cand.get(k)) if k in cand else "")
            for k, e in sorted(rejected.items())
        ]
        rejections += [
            Rejection(error_key(e), e, False, _rv(cur.get(error_key(e))))
            for e in res.errors
            if error_key(e) not in rejected
        ]
        errors = tuple(r.error for r in rejections)
        out = Outcome(Loaded(res.config, errors, res.warnings), tuple(rejections))
        self._last = (raw, out)
        return out

    def _one_by_one(
        self, raw: RawConfig, base: dict[ObjKey, JSON], changed: list[ObjKey], rejected: dict[ObjKey, ConfigError]
    ) -> tuple[dict[ObjKey, JSON], Loaded]:
        """Apply the changes one at a time; reject each that breaks something valid before it."""
        acc = dict(base)
        res = self._load(raw.with_objects(acc))
        for k in changed:
            if k in rejected:
                continue
            trial = {**acc, k: raw.objects[k]}
            r = self._load(raw.with_objects(trial))
            broken = r.error_keys() - res.error_keys()
            if not broken:
                acc, res = trial, r
                continue
            own = [e for e in r.errors if error_key(e) == k]
            rejected[k] = own[0] if own else invalidates(k, next(e for e in r.errors if error_key(e) in broken))
        return acc, res

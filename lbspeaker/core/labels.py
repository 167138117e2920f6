"""Kubernetes label selectors (matchLabels + matchExpressions), parsed once and matched purely."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lbspeaker.core.errors import ConfigError

_OPS = ("In", "NotIn", "Exists", "DoesNotExist")


@dataclass(frozen=True)
class Requirement:
    """One matchExpressions entry."""

    key: str
    operator: str
    values: frozenset[str]

    def matches(self, labels: Mapping[str, str]) -> bool:
        """True when the labels satisfy this requirement."""
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        if self.operator == "NotIn":
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator == "Exists":
            return self.key in labels
        return self.key not in labels


@dataclass(frozen=True)
class LabelSelector:
    """A metav1.LabelSelector; the empty selector matches everything."""

    match_labels: tuple[tuple[str, str], ...] = ()
    expressions: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """True when every matchLabels pair and every expression holds."""
        return all(labels.get(k) == v for k, v in self.match_labels) and all(
            r.matches(labels) for r in self.expressions
        )


def parse_selector(raw: Any, *, kind: str, name: str, field: str) -> LabelSelector:
    """Parse a raw metav1.LabelSelector dict; errors name the object and the field path."""
    if raw is None:
        return LabelSelector()
    if not isinstance(raw, dict):
        raise ConfigError(kind, name, field, f"must be an object, got {type(raw).__name__}")
    ml = raw.get("matchLabels") or {}
    if not isinstance(ml, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in ml.items()):
        raise ConfigError(kind, name, f"{field}.matchLabels", "must map strings to strings")
    exprs: list[Requirement] = []
    raw_exprs = raw.get("matchExpressions") or []
    if not isinstance(raw_exprs, list):
        raise ConfigError(kind, name, f"{field}.matchExpressions", "must be a list")
    for i, e in enumerate(raw_exprs):
        path = f"{field}.matchExpressions[{i}]"
        if not isinstance(e, dict):
            raise ConfigError(kind, name, path, "must be an object")
        key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
        if not isinstance(key, str) or not key:
            raise ConfigError(kind, name, f"{path}.key", "must be a non-empty string")
        if op not in _OPS:
            raise ConfigError(kind, name, f"{path}.operator", f"'{op}' is not one of {', '.join(_OPS)}")
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ConfigError(kind, name, f"{path}.values", "must be a list of strings")
        if op in ("In", "NotIn") and not values:
            raise ConfigError(kind, name, f"{path}.values", f"must be non-empty for operator '{op}'")
        if op in ("Exists", "DoesNotExist") and values:
            raise ConfigError(kind, name, f"{path}.values", f"must be empty for operator '{op}'")
        exprs.append(Requirement(key, str(op), frozenset(values)))
    return LabelSelector(tuple(sorted(ml.items())), tuple(exprs))

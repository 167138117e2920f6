"""Pure output helpers for lbctl: kubectl-like tables, JSON and YAML."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import yaml


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by three spaces, like kubectl."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [headers, *rows]]
    return "\n".join(lines)


def render(data: list[dict[str, Any]], output: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """The text for ``-o`` json / yaml / table (wide tables get their extra columns from the caller)."""
    if output == "json":
        return json.dumps(data, indent=2, default=str)
    if output == "yaml":
        return yaml.safe_dump(data, sort_keys=False).rstrip()
    if not rows:
        return "No resources found."
    return table(headers, rows)


def age(ts: str) -> str:
    """A timestamp as is (kept short: the CLI shows since-times verbatim)."""
    return ts or "-"

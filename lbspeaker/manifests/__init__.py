"""The CRDs and sample objects of config/, as installed package data.

config/ stays the kustomize source of truth (`kubectl apply -k config/default`). In a checkout,
`crd` and `samples` here are symlinks to config/crd and config/samples; building a wheel copies the
files they point to, so an installed lbspeaker carries the same bytes and nothing can drift.
Invariant: only this module knows where the files live.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

import yaml

from lbspeaker.core.errors import LbError

CRD_KIND = "CustomResourceDefinition"


class ManifestError(LbError):
    """A packaged manifest is missing or is not valid YAML."""


def _dir(name: str) -> Traversable:
    return files(__name__) / name


def _yaml_files(folder: str) -> list[Traversable]:
    return sorted((f for f in _dir(folder).iterdir() if f.name.endswith(".yaml")), key=lambda f: f.name)


def _documents(f: Traversable) -> list[dict[str, Any]]:
    try:
        return [d for d in yaml.safe_load_all(f.read_text(encoding="utf-8")) if isinstance(d, dict)]
    except (OSError, yaml.YAMLError) as err:
        raise ManifestError(f"loading manifest '{f.name}': {err}") from err


def crd_files() -> list[Traversable]:
    """The YAML files of config/crd (also its kustomization.yaml), sorted by name."""
    return _yaml_files("crd")


def sample_files() -> list[Traversable]:
    """The YAML files of config/samples, sorted by name."""
    return _yaml_files("samples")


def crd_documents() -> Iterator[dict[str, Any]]:
    """Every CustomResourceDefinition of config/crd, in file order."""
    for f in crd_files():
        yield from (d for d in _documents(f) if d.get("kind") == CRD_KIND)


def sample(name: str) -> list[dict[str, Any]]:
    """The documents of one sample file: `sample("lab")` reads config/samples/lab.yaml."""
    f = _dir("samples") / (name if name.endswith(".yaml") else f"{name}.yaml")
    if not f.is_file():
        known = ", ".join(p.name.removesuffix(".yaml") for p in sample_files())
        raise ManifestError(f"loading sample '{name}': no such sample (have: {known})")
    return _documents(f)

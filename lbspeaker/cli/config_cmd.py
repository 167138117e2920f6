"""``lbctl config validate``: the daemons' own loader run over manifests or the live config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import yaml

from lbspeaker.cli.context import connect, load_config
from lbspeaker.core.loader import RawConfig, load


@click.group("config")
def config_group() -> None:
    """lbspeaker configuration."""


def read_documents(files: tuple[Path, ...]) -> list[dict[str, Any]]:
    """Every YAML document of the files (a directory: its *.yaml files, sorted)."""
    docs: list[dict[str, Any]] = []
    for f in files:
        for p in sorted(f.glob("*.yaml")) if f.is_dir() else [f]:
            try:
                docs.extend(d for d in yaml.safe_load_all(p.read_text()) if isinstance(d, dict))
            except yaml.YAMLError as err:
                raise click.ClickException(f"reading '{p}': {err}") from err
    return docs


@config_group.command("validate")
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=True, path_type=Path))
@click.option("--kubeconfig", default=None, help="Validate the live config of this cluster instead of files.")
def validate(files: tuple[Path, ...], kubeconfig: str | None) -> None:
    """Check lbspeaker manifests (pools, L2/BGP advertisements, BGP peers, BFD profiles, communities)
    or the live config exactly as the daemons load them."""
    if files:
        res = load(RawConfig.from_documents(read_documents(files)))
        errors = [f"error: {e}" for e in res.errors]
        cfg = res.config
        warnings = res.warnings
    else:
        live = load_config(connect(kubeconfig))
        errors = [f"error: {e} (invalid edit ignored; last good config in force)" for e in live.ignored]
        errors += [f"error: {e} (object left out)" for e in live.left_out]
        cfg = live.outcome.loaded.config
        warnings = live.outcome.loaded.warnings
    for w in warnings:
        click.echo(f"warning: {w}")
    for e in errors:
        click.echo(e)
    bgp = cfg.bgp
    click.echo(f"{len(cfg.pools)} pool(s), {len(cfg.l2.l2_advertisements)} L2Advertisement(s), "
               f"{len(bgp.peers)} BGPPeer(s), {len(bgp.advertisements)} BGPAdvertisement(s), "
               f"{len(bgp.bfd_profiles)} BFDProfile(s), {len(bgp.communities)} community name(s) valid; "
               f"{len(errors)} error(s)")
    if errors:
        raise SystemExit(1)

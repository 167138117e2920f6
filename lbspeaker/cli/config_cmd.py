"""``lbctl config validate``: the daemons' own parser run over manifests or the live config."""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from lbspeaker.cli.context import connect, load_config
from lbspeaker.core.config import parse_config


@click.group("config")
def config_group() -> None:
    """lbspeaker configuration."""


@config_group.command("validate")
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=True, path_type=Path))
@click.option("--kubeconfig", default=None, help="Validate the live config of this cluster instead of files.")
def validate(files: tuple[Path, ...], kubeconfig: str | None) -> None:
    """Check IPAddressPool / L2Advertisement manifests (or the live config) exactly as the daemons parse them."""
    if files:
        docs: list[dict[str, object]] = []
        for f in files:
            for p in sorted(f.glob("*.yaml")) if f.is_dir() else [f]:
                try:
                    docs.extend(d for d in yaml.safe_load_all(p.read_text()) if isinstance(d, dict))
                except yaml.YAMLError as err:
                    raise click.ClickException(f"reading '{p}': {err}") from err
        res = parse_config(pools=[d for d in docs if d.get("kind") == "IPAddressPool"],
                           l2_advertisements=[d for d in docs if d.get("kind") == "L2Advertisement"])
    else:
        res, _ = load_config(connect(kubeconfig))
    for w in res.warnings:
        click.echo(f"warning: {w}")
    for e in res.errors:
        click.echo(f"error: {e}")
    cfg = res.config
    click.echo(f"{len(cfg.pools)} pool(s), {len(cfg.l2_advertisements)} L2Advertisement(s) valid; "
               f"{len(res.errors)} error(s)")
    if res.errors:
        raise SystemExit(1)

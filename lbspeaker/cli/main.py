"""lbctl: show and explain lbspeaker, and run its lab."""

from __future__ import annotations

import click

from lbspeaker import __version__
from lbspeaker.cli.apiserver_cmd import apiserver
from lbspeaker.cli.bgp_cmd import bgp
from lbspeaker.cli.config_cmd import config_group
from lbspeaker.cli.lab_cmd import lab
from lbspeaker.cli.show_cmd import explain_cmd, pools, services


@click.group()
@click.version_option(__version__, prog_name="lbctl")
def cli() -> None:
    """lbctl: the lbspeaker command-line tool."""


cli.add_command(lab)
cli.add_command(apiserver)
cli.add_command(pools)
cli.add_command(services)
cli.add_command(explain_cmd)
cli.add_command(config_group)
cli.add_command(bgp)


def main() -> None:
    """Console-script entry point."""
    cli()


if __name__ == "__main__":
    main()

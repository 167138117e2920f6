"""Which API lbctl talks to: --kubeconfig, $KUBECONFIG, the running lab, or ~/.kube/config."""

from __future__ import annotations

import os
from pathlib import Path

import click

from lbspeaker.core.config import ParseResult, parse_config
from lbspeaker.core.errors import LbError
from lbspeaker.k8s.client import IPADDRESSPOOLS, JSON, L2ADVERTISEMENTS, NAMESPACES, Kube
from lbspeaker.lab.topology import Topology

SPEAKER_NS = "lbspeaker-system"


def connect(kubeconfig: str | None) -> Kube:
    """A Kube for the chosen API; a clear error when none is reachable."""
    path = kubeconfig or os.environ.get("KUBECONFIG")
    if not path:
        lab = Topology().kubeconfig
        if lab.exists():
            path = str(lab)
        elif not (Path.home() / ".kube" / "config").exists():
            raise click.ClickException("no Kubernetes API: pass --kubeconfig, set KUBECONFIG, or run 'lbctl lab up'")
    try:
        return Kube.from_kubeconfig(path)
    except LbError as err:
        raise click.ClickException(str(err)) from err


def load_config(kube: Kube, namespace: str = SPEAKER_NS) -> tuple[ParseResult, list[JSON]]:
    """Parse the config CRs the way the daemons do; returns the result and the raw pools."""
    pools, _ = kube.list(IPADDRESSPOOLS, namespace)
    l2, _ = kube.list(L2ADVERTISEMENTS, namespace)
    nss, _ = kube.list(NAMESPACES)
    return parse_config(pools=pools, l2_advertisements=l2, namespaces=nss), pools


kubeconfig_option = click.option("--kubeconfig", default=None, help="Kubeconfig (default: $KUBECONFIG, the lab, "
                                                                     "~/.kube/config).")
output_option = click.option("-o", "--output", type=click.Choice(["table", "wide", "json", "yaml"]), default="table",
                             show_default=True)

"""``lbctl lab ... --cluster real``: the real Kubernetes 1.20 cluster lab (see lbspeaker.lab.realk8s)."""

from __future__ import annotations

import sys

import click

from lbspeaker.core.errors import LbError
from lbspeaker.lab.netns import list_namespaces
from lbspeaker.lab.realk8s import cluster, install
from lbspeaker.lab.realk8s.shape import PREFIX, Cluster

CLUSTERS = ("embedded", "real")


def _say(msg: str) -> None:
    click.echo(msg)
    sys.stdout.flush()


def real_cluster(*, nodes: int = 3, mode: str = "l2", nics: int = 1) -> Cluster:
    """The user's real cluster (state in /var/tmp/lbspeaker-realk8s unless LBS_REALK8S_DIR)."""
    return Cluster(nodes=nodes, mode=mode, nics=nics)


def is_up() -> bool:
    """True when the real cluster's namespaces exist."""
    return bool(list_namespaces(PREFIX))


def up(*, nodes: int, mode: str, nics: int, with_lbspeaker: bool = True) -> Cluster:
    """Bring the real cluster up and install lbspeaker on it like a user."""
    c = real_cluster(nodes=nodes, mode=mode, nics=nics)
    try:
        cluster.up(c, say=_say)
        if with_lbspeaker:
            install.install(c, say=_say)
    except LbError as err:
        raise click.ClickException(f"real cluster up failed (processes and namespaces removed; logs kept in "
                                   f"{c.state_dir}): {err}") from err
    _say(f"real cluster is up. export KUBECONFIG={c.kubeconfig}   # kubectl get nodes; lbctl services list")
    return c


def demo(*, nodes: int, nics: int) -> None:
    """Real cluster + lbspeaker + the seed scenario (kubectl expose --type=LoadBalancer, client curl)."""
    c = up(nodes=nodes, mode="l2", nics=nics)
    try:
        install.demo(c, say=_say)
    except LbError as err:
        raise click.ClickException(f"demo on the real cluster failed: {err}") from err
    _say(f"the cluster stays up: export KUBECONFIG={c.kubeconfig}; remove it with: lbctl lab down")


def down() -> list[str]:
    """Remove the real cluster (processes, cgroups, mounts, namespaces, state); idempotent."""
    try:
        return cluster.down(real_cluster())
    except LbError as err:
        raise click.ClickException(str(err)) from err

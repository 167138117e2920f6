"""``lbctl lab``: the one-machine lab (network namespaces, no cluster needed)."""

from __future__ import annotations

import os
import shutil
import sys

import click

from lbspeaker.cli import realk8s_cmd
from lbspeaker.core.errors import LbError
from lbspeaker.lab import procs
from lbspeaker.lab.demo import demo
from lbspeaker.lab.lab import down, up
from lbspeaker.lab.netns import list_namespaces
from lbspeaker.lab.topology import MODES, Topology


def _topo(nodes: int = 3, speaker_args: tuple[str, ...] = (), mode: str = "l2", nics: int = 1) -> Topology:
    return Topology(nodes=nodes, speaker_args=speaker_args, mode=mode, nics=nics)


def _say(msg: str) -> None:
    click.echo(msg)
    sys.stdout.flush()


def _root() -> None:
    if os.geteuid() != 0:
        raise click.ClickException("the lab builds network namespaces: run it as root")


@click.group()
def lab() -> None:
    """Build, use and remove the one-machine lab."""


@lab.command("up")
@click.option("--nodes", default=3, show_default=True, type=click.IntRange(1, 16), help="Node namespaces.")
@click.option("--fresh", is_flag=True, help="Forget the API state of an earlier lab.")
@click.option("--membership-interval", type=float, default=None, help="Speaker heartbeat interval (s).")
@click.option("--membership-timeout", type=float, default=None, help="Speaker failure-detection timeout (s).")
@click.option("--mode", type=click.Choice(MODES), default="l2", show_default=True,
              help="bgp/both add a BIRD router peering with every node and a client behind it.")
@click.option("--nics", default=1, show_default=True, type=click.IntRange(1, 2),
              help="NICs per node; 2 = VirtualBox-shaped (enp0s3 NAT + enp0s8 LAN).")
@click.option("--cluster", "kind", type=click.Choice(realk8s_cmd.CLUSTERS), default="embedded", show_default=True,
              help="real = Kubernetes 1.20 (containerd, kubelet, kube-proxy per node) with lbspeaker "
                   "installed by kubectl apply -k config/default.")
def up_cmd(nodes: int, fresh: bool, membership_interval: float | None, membership_timeout: float | None,
           mode: str, nics: int, kind: str) -> None:
    """Build the lab: switch, API server, controller, N nodes with speakers, a client (+ BGP router)."""
    _root()
    if kind == "real":
        realk8s_cmd.up(nodes=nodes, mode=mode, nics=nics)
        return
    args: list[str] = []
    if membership_interval is not None:
        args += ["--membership-interval", str(membership_interval)]
    if membership_timeout is not None:
        args += ["--membership-timeout", str(membership_timeout)]
    topo = _topo(nodes, tuple(args), mode, nics)
    try:
        up(topo, say=_say, fresh=fresh)
    except LbError as err:
        raise click.ClickException(f"lab up failed (everything built was removed): {err}") from err
    _say(f"lab is up. export KUBECONFIG={topo.kubeconfig}   # or: lbctl lab kubectl -- get svc -A")
    if topo.bgp:
        _say(f"BGP: birdc -s {topo.bird_socket} show route   |   lbctl bgp peers   |   "
             f"ip netns exec {topo.wan_client_ns} curl http://EXTERNAL-IP/")


@lab.command("down")
@click.option("--purge", is_flag=True, help="Also delete the saved API state and logs.")
def down_cmd(purge: bool) -> None:
    """Stop every lab process and delete every lab namespace, real cluster included (idempotent)."""
    _root()
    removed = down(_topo(), purge=purge) + realk8s_cmd.down()
    _say(f"lab is down ({len(removed)} namespaces removed)")


@lab.command("demo")
@click.option("--nodes", default=3, show_default=True, type=click.IntRange(1, 16))
@click.option("--cluster", "kind", type=click.Choice(realk8s_cmd.CLUSTERS), default="embedded", show_default=True)
@click.option("--nics", default=1, show_default=True, type=click.IntRange(1, 2), help="(real cluster) NICs per node.")
def demo_cmd(nodes: int, kind: str, nics: int) -> None:
    """Lab up + a pool + a LoadBalancer Service + proof that a client reaches its EXTERNAL-IP."""
    _root()
    if kind == "real":
        realk8s_cmd.demo(nodes=min(nodes, 4), nics=nics)
        return
    try:
        demo(_topo(nodes), say=_say)
    except LbError as err:
        raise click.ClickException(f"demo failed: {err}") from err


@lab.command("kubectl", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def kubectl_cmd(args: tuple[str, ...]) -> None:
    """Run kubectl against the lab's API server: lbctl lab kubectl -- get svc -A."""
    exe = shutil.which("kubectl")
    if exe is None:
        raise click.ClickException("kubectl is not installed (apt-get install kubernetes-client)")
    kc = _topo().kubeconfig
    if realk8s_cmd.is_up() and not list_namespaces(_topo().prefix):
        kc = realk8s_cmd.real_cluster().kubeconfig
    os.execv(exe, [exe, "--kubeconfig", str(kc), *args])


@lab.command("status")
def status_cmd() -> None:
    """Show lab namespaces and processes."""
    topo = _topo()
    _say("namespaces: " + (" ".join(list_namespaces(topo.prefix)) or "(none)"))
    for name, pid in procs.recorded_pids(topo.state_dir).items():
        _say(f"{name:28} pid {pid:<8} {'running' if procs.alive(pid) else 'exited'}")


@lab.command("logs")
@click.argument("name")
@click.option("-n", "--lines", default=40, show_default=True)
def logs_cmd(name: str, lines: int) -> None:
    """Print the tail of a lab process log (apiserver, controller, speaker-node1, ...)."""
    _say(procs.log_tail(_topo().state_dir, name, lines))

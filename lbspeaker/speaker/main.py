"""Entry point of the speaker daemon (one per node)."""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from types import FrameType

import click

from lbspeaker.core.errors import LbError
from lbspeaker.k8s.client import Kube
from lbspeaker.speaker.bgpmode import BgpMode
from lbspeaker.speaker.daemon import Speaker, SpeakerSettings
from lbspeaker.speaker.membership import DEFAULT_INTERVAL, DEFAULT_TIMEOUT

INTERFACE_ENV = "LBSPEAKER_INTERFACE"


def interface_list(flags: tuple[str, ...], env: str) -> tuple[str, ...]:
    """The fixed interfaces: the --interface flags, else the env value (comma-separated); () = automatic.

    Empty values mean automatic, so a manifest may pass ``--interface $(LBSPEAKER_INTERFACE)``.
    """
    names = [n.strip() for raw in (flags or (env,)) for n in raw.split(",")]
    return tuple(dict.fromkeys(n for n in names if n))


@click.command()
@click.option("--node", envvar="LBSPEAKER_NODE_NAME", required=True, help="This node's name.")
@click.option("--interface", "interfaces", multiple=True,
              help="Answer ARP/NDP only on this interface (repeat for several). Default: automatic, each "
                   "VIP on the interface whose subnet holds it, else on every usable one. "
                   "Env LBSPEAKER_INTERFACE: comma-separated list, empty = automatic.")
@click.option("--kubeconfig", envvar="KUBECONFIG", default=None, help="Kubeconfig (default: in-cluster).")
@click.option("--namespace", default="lbspeaker-system", show_default=True, help="Config namespace.")
@click.option("--membership-port", default=7946, show_default=True, help="UDP heartbeat port.")
@click.option("--metrics-port", default=7472, show_default=True, help="/metrics, /healthz, /readyz (0 = off).")
@click.option("--membership-interval", type=float, default=DEFAULT_INTERVAL, show_default=True,
              help="Seconds between heartbeats.")
@click.option("--membership-timeout", type=float, default=DEFAULT_TIMEOUT, show_default=True,
              help="Silence (s) after which a peer is dead and its IPs move.")
@click.option("--bgp/--no-bgp", default=True, show_default=True,
              help="BGP mode (inert until a BGPPeer selects this node).")
@click.option("--bgp-workdir", type=click.Path(path_type=Path), default=None,
              help="exabgp config, API socket and log (default: /run/lbspeaker/NODE/bgp).")
@click.option("--log-level", default="INFO", show_default=True)
def main(node: str, interfaces: tuple[str, ...], kubeconfig: str | None, namespace: str, membership_port: int,
         metrics_port: int, membership_interval: float, membership_timeout: float, bgp: bool,
         bgp_workdir: Path | None, log_level: str) -> None:
    """Run the lbspeaker speaker on this node."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    done = threading.Event()

    def _term(_sig: int, _frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _term)
    signal.signal(signal.SIGINT, _term)
    settings = SpeakerSettings(node=node, interfaces=interface_list(interfaces, os.environ.get(INTERFACE_ENV, "")),
                               namespace=namespace,
                               membership_port=membership_port, metrics_port=metrics_port,
                               membership_interval=membership_interval, membership_timeout=membership_timeout)
    bgp_mode: BgpMode | None = None
    try:
        kube = Kube.from_kubeconfig(kubeconfig)
        speaker = Speaker(kube, settings)
        speaker.start()
        if bgp:
            bgp_mode = BgpMode(kube, node=node, namespace=namespace, reporter=speaker.reporter,
                               workdir=bgp_workdir or Path("/run/lbspeaker") / node / "bgp")
            bgp_mode.start()
            if speaker.endpoint is not None:  # BGP metrics on the speaker's /metrics
                speaker.endpoint.registry.register(bgp_mode.collector)
    except LbError as err:
        raise click.ClickException(str(err)) from err
    done.wait()
    if bgp_mode is not None:
        bgp_mode.stop()
    speaker.stop()


if __name__ == "__main__":
    main()

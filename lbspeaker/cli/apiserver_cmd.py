"""``lbctl apiserver``: run the embedded Kubernetes API server in the foreground.

Prints exactly one line ``apiserver listening on http://HOST:PORT`` when ready (the lab waits for
it), serves until SIGTERM/SIGINT, then saves the state file (if any) and exits 0.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

import click

from lbspeaker.apiserver.server import EmbeddedServer


def _split_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise click.BadParameter(f"'{listen}': expected HOST:PORT", param_hint="--listen")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


@click.command("apiserver")
@click.option("--listen", default="127.0.0.1:6443", show_default=True, help="HOST:PORT to listen on (plain HTTP).")
@click.option(
    "--kubeconfig-out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write a kubeconfig pointing at the server here.",
)
@click.option(
    "--state",
    "state_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Load objects from this file at start; save them on stop and every 2 s while dirty.",
)
@click.option(
    "--history",
    default=1000,
    show_default=True,
    type=click.IntRange(1, 10_000_000),
    help="Watch history kept per resource (older resourceVersions get 410 Expired).",
)
@click.option(
    "--bookmark-interval",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.05, 3600),
    help="Seconds between watch BOOKMARK events.",
)
@click.option(
    "--service-cidr",
    "service_cidrs",
    multiple=True,
    help="Service CIDR (repeat for dual-stack). Default 198.51.100.0/24 and 2001:db8:ffff::/108.",
)
def apiserver(
    listen: str,
    kubeconfig_out: str | None,
    state_file: str | None,
    history: int,
    bookmark_interval: float,
    service_cidrs: tuple[str, ...],
) -> None:
    """Run the embedded Kubernetes API server until SIGTERM/SIGINT."""
    host, port = _split_listen(listen)
    kwargs = {"service_cidrs": service_cidrs} if service_cidrs else {}
    srv = EmbeddedServer(
        host=host,
        port=port,
        state_file=state_file,
        history_size=history,
        bookmark_interval=bookmark_interval,
        **kwargs,
    )
    try:
        srv.start()
    except (OSError, RuntimeError, ValueError) as err:
        raise click.ClickException(f"starting apiserver on '{listen}': {err}") from err
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        if kubeconfig_out:
            srv.write_kubeconfig(kubeconfig_out)
        click.echo(f"apiserver listening on {srv.url}")
        sys.stdout.flush()
        while not done.wait(0.5):
            pass
    finally:
        srv.stop()

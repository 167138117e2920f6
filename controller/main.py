"""``lbspeaker-controller``: the cluster-wide IP allocator (thin wrapper around Controller).

With ``--leader-elect`` several replicas may run: each waits for the Lease before it starts its
informers, and a leader that loses the Lease stops writing and exits 1 (its pod restarts as a
standby), so exactly one replica writes at any time.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from controller.certrotation import CONFIGURATION, SECRET, SERVICE, CertRotator, CertSettings
from controller.certs import dns_names
from controller.controller import Controller
from controller.metrics import registry_for
from controller.webhook import WebhookServer, parse_listen
from lbspeaker.core.errors import ApiError
from lbspeaker.k8s.client import Kube
from lbspeaker.runtime.endpoint import Endpoint
from lbspeaker.runtime.leader import LeaderElector, LeaderSettings

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = argparse.ArgumentParser(
        prog="lbspeaker-controller", description="Assign pool addresses to LoadBalancer Services."
    )
    p.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: $KUBECONFIG or in-cluster)")
    p.add_argument("--namespace", default="lbspeaker-system", help="namespace of the config objects and the Lease")
    p.add_argument(
        "--load-balancer-class",
        default=None,
        help="handle only Services with this loadBalancerClass (default: those without one)",
    )
    p.add_argument("--leader-elect", action="store_true", help="run as one of several replicas, one active (Lease)")
    p.add_argument("--lease-name", default="lbspeaker-controller")
    p.add_argument("--lease-duration", type=float, default=15.0, help="seconds a silent leader keeps the Lease")
    p.add_argument("--metrics-host", default="0.0.0.0")
    p.add_argument("--metrics-port", type=int, default=0, help="serve /metrics, /healthz, /readyz (0: off)")
    p.add_argument("--webhook-listen", default="", metavar="HOST:PORT",
                   help="serve the validating admission webhook over HTTPS here (default: off)")
    p.add_argument("--webhook-secret", default=SECRET, help="Secret (in --namespace) holding the webhook certificate")
    p.add_argument("--webhook-configuration", default=CONFIGURATION,
                   help="ValidatingWebhookConfiguration whose caBundle the controller keeps current ('' : none)")
    p.add_argument("--webhook-dns-names", default="", metavar="NAME,...",
                   help=f"names of the serving certificate (default: {SERVICE}.<namespace>.svc[.cluster.local])")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def _elect(kube: Kube, args: argparse.Namespace, stop: threading.Event, lost: threading.Event) -> LeaderElector:
    identity = f"{os.environ.get('POD_NAME') or socket.gethostname()}_{secrets.token_hex(4)}"
    d = args.lease_duration
    settings = LeaderSettings(
        name=args.lease_name,
        namespace=args.namespace,
        identity=identity,
        lease_duration=d,
        renew_deadline=d * 2 / 3,
        retry_period=d * 2 / 15,
    )

    def on_stop() -> None:
        lost.set()
        stop.set()

    return LeaderElector(kube, settings, on_start=lambda: None, on_stop=on_stop)


def _webhook(kube: Kube, ctrl: Controller, args: argparse.Namespace) -> tuple[WebhookServer, CertRotator]:
    host, port = parse_listen(args.webhook_listen)
    names = tuple(n.strip() for n in args.webhook_dns_names.split(",") if n.strip())
    server = WebhookServer(host, port, config=ctrl.raw_config, namespace=args.namespace)
    settings = CertSettings(namespace=args.namespace, secret=args.webhook_secret,
                            configuration=args.webhook_configuration,
                            names=names or dns_names(SERVICE, args.namespace))
    return server, CertRotator(kube, settings, on_cert=server.load)


def main(argv: Sequence[str] | None = None) -> int:
    """Run until SIGTERM/SIGINT (or a lost Lease); returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    try:
        kube = Kube.from_kubeconfig(args.kubeconfig)
    except ApiError as err:
        log.error("startup_failed err=%s", err)
        return 1
    stop, lost = threading.Event(), threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal_received signal=%s action=stop", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    ctrl = Controller(kube, namespace=args.namespace, lb_class=args.load_balancer_class,
                      bgp_caches=bool(args.webhook_listen))
    endpoint = None
    elector = _elect(kube, args, stop, lost) if args.leader_elect else None
    try:
        webhook = _webhook(kube, ctrl, args) if args.webhook_listen else None
    except (ValueError, OSError) as err:
        log.error("startup_failed err=webhook: %s", err)
        kube.close()
        return 1

    def ready() -> bool:
        # every replica serves the webhook (the Service picks any ready pod): not ready without
        # a certificate and synced config caches
        if webhook is not None and not (webhook[0].ready and ctrl.raw_config() is not None):
            return False
        # a standby replica waiting for the Lease is ready too: otherwise a 2-replica Deployment
        # never becomes fully available and `kubectl rollout status` waits forever
        return ctrl.ready.is_set() or (elector is not None and not elector.leading and not stop.is_set())

    if args.metrics_port:
        endpoint = Endpoint(args.metrics_host, args.metrics_port, ready=ready, registry=registry_for(ctrl))
        endpoint.start()
    log.info(
        "controller_starting api=%s namespace=%s load_balancer_class=%s leader_elect=%s",
        kube.host,
        args.namespace,
        args.load_balancer_class or "",
        bool(elector),
    )
    try:
        if webhook is not None:
            webhook[0].start()
            webhook[1].start()
            # standbys judge reviews too: their caches run before (and regardless of) the Lease
            ctrl.start_informers(stop)
        if elector is not None:
            elector.start()
            while not elector.leading and not stop.wait(0.1):
                pass
        if not stop.is_set():
            ctrl.run(stop)
    finally:
        if elector is not None:
            elector.stop()
        if webhook is not None:
            webhook[1].stop()
            webhook[0].stop()
        if endpoint is not None:
            endpoint.stop()
        kube.close()
    log.info("controller_stopped lost_lease=%s", lost.is_set())
    return 1 if lost.is_set() else 0


if __name__ == "__main__":
    sys.exit(main())

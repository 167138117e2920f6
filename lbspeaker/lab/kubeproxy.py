"""kube-proxy stand-in for a lab node: VIPs on ``kube-ipvs0`` plus a tiny HTTP backend.

Real kube-proxy in IPVS mode puts every LoadBalancer ingress IP on the ``kube-ipvs0`` device of
every node and forwards the service ports to pods. Here the "pod" is an HTTP server in the node
namespace answering with the node's name on every port of every LoadBalancer Service. With the
strictARP sysctls the kernel never answers ARP for those VIPs: only the elected speaker does.
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

import click
from pyroute2 import IPRoute

from lbspeaker.core.service import IPAddress, parse_service
from lbspeaker.k8s.client import JSON, SERVICES, Kube
from lbspeaker.k8s.informer import Informer

log = logging.getLogger(__name__)

DEVICE = "kube-ipvs0"
MAX_PORTS = 64


class _DualStackServer(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def _handler_for(node: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"hello from {node}\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("http " + format, *args)

    return Handler


class KubeProxyStandIn:
    """Keeps kube-ipvs0 addresses and HTTP listeners in line with the LoadBalancer Services."""

    def __init__(self, kube: Kube, node: str) -> None:
        self.node = node
        self.informer = Informer(kube, SERVICES, on_event=self._changed)
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._servers: dict[int, ThreadingHTTPServer] = {}
        self._ipr = IPRoute()
        links = self._ipr.link_lookup(ifname=DEVICE)
        if not links:
            raise click.ClickException(f"kube-proxy stand-in: device '{DEVICE}' missing in this namespace")
        self._index = int(links[0])

    def _changed(self, _kind: str, _obj: JSON) -> None:
        self._dirty.set()

    def _current(self) -> set[IPAddress]:
        out: set[IPAddress] = set()
        for msg in self._ipr.get_addr(index=self._index):
            addr = msg.get_attr("IFA_ADDRESS")
            if addr and not ipaddress.ip_address(addr).is_link_local:
                out.add(ipaddress.ip_address(addr))
        return out

    def sync(self) -> None:
        """Make addresses and listeners match the Services."""
        want: set[IPAddress] = set()
        ports: set[int] = {80}
        for obj in self.informer.items():
            svc = parse_service(obj)
            if svc.is_load_balancer:
                want.update(svc.ingress_ips)
                ports.update(p.port for p in svc.ports if p.protocol == "TCP")
        have = self._current()
        for ip in want - have:
            self._ipr.addr("add", index=self._index, address=str(ip), prefixlen=ip.max_prefixlen)
            log.info("vip_added device=%s ip=%s", DEVICE, ip)
        for ip in have - want:
            self._ipr.addr("del", index=self._index, address=str(ip), prefixlen=ip.max_prefixlen)
            log.info("vip_removed device=%s ip=%s", DEVICE, ip)
        for port in sorted(ports)[:MAX_PORTS]:
            if port not in self._servers:
                self._listen(port)

    def _listen(self, port: int) -> None:
        try:
            srv = _DualStackServer(("::", port), _handler_for(self.node))
        except OSError as err:
            log.warning("listen_failed port=%d err=%s", port, err)
            return
        threading.Thread(target=srv.serve_forever, name=f"http-{port}", daemon=True).start()
        self._servers[port] = srv
        log.info("backend_listening node=%s port=%d", self.node, port)

    def run(self) -> None:
        """Serve until stop()."""
        self.informer.start()
        self.informer.wait_synced(30.0)
        self._dirty.set()
        while not self._stop.is_set():
            self._dirty.wait(1.0)
            self._dirty.clear()
            if self._stop.is_set():
                break
            try:
                self.sync()
            except Exception:
                log.exception("sync_failed node=%s", self.node)
        for srv in self._servers.values():
            srv.shutdown()
        self._ipr.close()

    def stop(self) -> None:
        """Ask run() to return."""
        self._stop.set()
        self._dirty.set()
        self.informer.stop()


@click.command()
@click.option("--node", required=True)
@click.option("--kubeconfig", required=True)
def main(node: str, kubeconfig: str) -> None:
    """Run the kube-proxy stand-in for one lab node."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    proxy = KubeProxyStandIn(Kube.from_kubeconfig(kubeconfig), node)

    def _term(_sig: int, _frame: FrameType | None) -> None:
        proxy.stop()

    signal.signal(signal.SIGTERM, _term)
    signal.signal(signal.SIGINT, _term)
    proxy.run()


if __name__ == "__main__":
    main()

"""End-to-end figures on a real Kubernetes 1.20 cluster: Service create → first good request, L2 failover gap.

Run as root from the repository root: ``.venv/bin/python bench/e2e.py`` (about 6 minutes;
``--quick`` = 2 services, 1 failover trial, about 2 minutes). Prints one JSON object on stdout
(progress on stderr); the speaker and controller logs of the run are kept in bench/out/e2e-logs.

Setup: its own real cluster (``lbspeaker.lab.realk8s``, prefix ``lbb-``, management index 9,
state in /var/tmp/lbspeaker-realk8s-bench), lbspeaker installed with ``kubectl apply -k
config/default`` plus the sample pool, a backend Deployment of 3 busybox httpd pods (ready before
any trial, so pod start-up is never measured). The cluster is always removed (try/finally, also on
Ctrl-C).

Create → first good request (what MetalLB/PureLB measure): a client-namespace prober is started
first and waits for its target; t0 is taken just before ``kubectl apply -f -`` of a LoadBalancer
Service; the Service is polled every 10 ms through ``lbspeaker.k8s.client.Kube`` until
status.loadBalancer.ingress has an IP (t_ip); that IP is handed to the prober, which starts an HTTP
GET every 10 ms (each with its own socket, 0.5 s timeout) until one gets a 200 (t_ok). The Service
is deleted after each trial and the next trial waits until the old IP no longer answers.

L2 failover gap: ICMP to a VIP is not DNATed by kube-proxy (no node answers it), so the prober
opens a TCP connection to VIP:80 every 10 ms on a fixed schedule (a fresh non-blocking socket each
time, 0.3 s timeout, closed with RST); a probe succeeds when the handshake completes, i.e. the
client reached a backend pod through the announcing node's DNAT — which is the client traffic
that matters. The SYN-ACK's source MAC (read from an AF_PACKET socket) says which node answered.
The victim is the node whose MAC answers the client steadily for 1 s, checked against the
Service's ServiceL2Status (``announcer_agrees``; they can differ, since kube-proxy DNATs the VIP
on every node and a client's ARP entry kept REACHABLE by TCP outlives an announcement).
A trial fails that node the way a real node fails: its LAN NIC down (netlink socket
opened in advance), then SIGKILL of its kubelet and of its speaker process (the
``lbspeaker-speaker`` process in that node's network namespace). gap = fault → first success of
a probe sent after the fault. ``loss_after_recovery`` is the share of probes failing in the 2 s
after that: the dead node's backend pod stays in the EndpointSlice until the node goes NotReady
(16 s grace), so kube-proxy on the new node still sends some connections there — a Kubernetes
effect, not an L2 one, reported separately. Restore between trials (method "restore"): link up,
the routes the kernel flushed with the link put back, kubelet restarted with its own command line
inside the node's mount namespace (containerd and kube-proxy kept running), then wait until the
speaker pod is Ready again and the VIP answers steadily for 1.5 s.

Invariants: only ``lbb-`` namespaces and documentation ranges; every wait is bounded; the probers
end on stdin EOF or --max-seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import selectors
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from prober import Events, Prober  # noqa: E402

PREFIX = "lbb-"
STATE_DIR = Path("/var/tmp/lbspeaker-realk8s-bench")
LOGS = REPO / "bench" / "out" / "e2e-logs"  # speaker/controller logs of the last run (post-mortem)
BACKEND = "bench-backend"
ETH_P_IP = 0x0800
SO_TIMESTAMPNS = 35
PACKET_OUTGOING = 4


def say(msg: str) -> None:
    """Progress on stderr (stdout carries only the JSON)."""
    print(f"[e2e {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- the prober, run inside the client namespace (stdlib only) ------------------------------------


def _syn_ack(frame: bytes, target: bytes, port: int) -> int | None:
    """Our local port if frame is a SYN-ACK from target:port, else None."""
    if len(frame) < 14 + 20 + 20 or frame[12:14] != b"\x08\x00" or frame[14 + 9] != 6 or frame[26:30] != target:
        return None
    tcp = 14 + (frame[14] & 0x0F) * 4
    sport, dport = struct.unpack("!HH", frame[tcp : tcp + 4])
    if sport != port or frame[tcp + 13] & 0x12 != 0x12:
        return None
    return int(dport)


def probe_main(argv: list[str]) -> int:
    """Fixed-schedule TCP/HTTP prober; target on the first stdin line; events on stdout.

    ``S seq t_ns`` per attempt started, ``R seq t_ns mac`` per success (the handshake done, or an
    HTTP 200 read), ``F seq t_ns why`` per failure (the lines bench/prober.py's Prober reads).
    Exits on stdin EOF, SIGTERM, --max-seconds, or after the first success with --until-first.
    """
    ap = argparse.ArgumentParser(prog="e2e --probe")
    ap.add_argument("--mode", choices=("tcp", "http"), default="tcp")
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--interface", default="eth0")
    ap.add_argument("--interval", type=float, default=0.01)
    ap.add_argument("--timeout", type=float, default=0.3)
    ap.add_argument("--max-seconds", type=float, default=600.0)
    ap.add_argument("--until-first", action="store_true")
    args = ap.parse_args(argv)
    stop = False

    def on_signal(_sig: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    end = time.monotonic_ns() + int(args.max_seconds * 1e9)
    sel = selectors.DefaultSelector()
    sel.register(sys.stdin.fileno(), selectors.EVENT_READ, "stdin")
    line = b""
    while b"\n" not in line and not stop and time.monotonic_ns() < end:  # wait for the target
        if sel.select(0.2):
            chunk = os.read(sys.stdin.fileno(), 256)
            if not chunk:
                return 0
            line += chunk
    if stop or b"\n" not in line:
        return 0
    target = line.split()[0].decode()
    tb = socket.inet_aton(target)
    rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
    rx.bind((args.interface, ETH_P_IP))
    rx.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    rx.setblocking(False)
    macs: dict[int, tuple[str, int]] = {}  # local port -> (SYN-ACK source MAC, kernel receive time)
    # fd -> [seq, socket, t_sent, local port, reading?, response bytes]
    live: dict[int, list[Any]] = {}
    step, t0, k, done = int(args.interval * 1e9), time.monotonic_ns(), 0, False
    request = f"GET / HTTP/1.0\r\nHost: {target}\r\n\r\n".encode()

    def emit(text: str) -> None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def finish(fd: int, ok: bool, why: str, t: int | None = None) -> None:
        nonlocal done
        seq, s, _ts, lport, _rd, _buf = live.pop(fd)
        sel.unregister(s)
        s.close()
        if ok:
            mac, t_rx = macs.pop(lport, ("-", 0))
            emit(f"R {seq} {t if t is not None else (t_rx or time.monotonic_ns())} {mac}")
            done = args.until_first
        else:
            macs.pop(lport, None)
            emit(f"F {seq} {time.monotonic_ns()} {why}")

    def drain() -> None:
        offset = time.monotonic_ns() - time.time_ns()
        while True:
            try:
                frame, anc, _flags, addr = rx.recvmsg(2048, 64)
            except BlockingIOError:
                return
            if addr[2] == PACKET_OUTGOING:
                continue
            lport = _syn_ack(frame, tb, args.port)
            if lport is None:
                continue
            t = time.monotonic_ns()
            for level, kind, data in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
                    sec, nsec = struct.unpack("qq", data[:16])
                    t = min(t, sec * 1_000_000_000 + nsec + offset)
            macs[lport] = (frame[6:12].hex(":"), t)

    while not stop and not done and time.monotonic_ns() < end:
        now = time.monotonic_ns()
        due = t0 + k * step
        if now >= due:
            if now - due > step:  # descheduled: skip the missed slots, never burst
                k = (now - t0) // step
                continue
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
            t_sent = time.monotonic_ns()
            err = s.connect_ex((target, args.port))
            emit(f"S {k} {t_sent}")
            if err not in (0, errno.EINPROGRESS):
                s.close()
                emit(f"F {k} {time.monotonic_ns()} connect-{errno.errorcode.get(err, err)}")
            else:
                live[s.fileno()] = [k, s, t_sent, s.getsockname()[1], False, b""]
                sel.register(s, selectors.EVENT_WRITE, "probe")
            k += 1
            continue
        for key, _mask in sel.select(min((due - now) / 1e9, 0.05)):
            if key.data == "stdin":
                if not os.read(sys.stdin.fileno(), 256):
                    stop = True
                continue
            fd = key.fd
            if fd not in live:
                continue
            st = live[fd]
            s = st[1]
            if not st[4]:
                drain()  # the SYN-ACK reached the packet socket before the TCP stack
                soerr = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if soerr:
                    finish(fd, False, errno.errorcode.get(soerr, str(soerr)))
                elif args.mode == "tcp":
                    finish(fd, True, "")
                else:
                    st[4] = True
                    try:
                        s.send(request)
                    except OSError as e:
                        finish(fd, False, f"send-{e.errno}")
                        continue
                    sel.modify(s, selectors.EVENT_READ, "probe")
            else:
                try:
                    chunk = s.recv(4096)
                except OSError as e:
                    finish(fd, False, f"recv-{e.errno}")
                    continue
                st[5] += chunk
                if b"\r\n" in st[5] or not chunk:
                    ok = st[5].split(b" ", 2)[1:2] == [b"200"]
                    finish(fd, ok, "" if ok else "status", time.monotonic_ns())
        drain()
        limit = time.monotonic_ns() - int(args.timeout * 1e9)
        for fd in [fd for fd, st in live.items() if st[2] < limit]:
            finish(fd, False, "timeout")
    for fd in list(live):
        finish(fd, False, "stopped")
    return 0


class NetProber(Prober):
    """bench/prober.py's Prober (events, stable_owner, stop) around this file's TCP/HTTP prober."""

    def __init__(self, ns: str, *, mode: str, interval: float, timeout: float, iface: str = "eth0",
                 until_first: bool = False, max_seconds: float = 600.0, log: Path | None = None) -> None:
        self.target = ""
        self.interval = interval
        self.events = Events()
        self.failures: dict[str, int] = {}
        """Failed probes by reason (timeout, ECONNREFUSED, ...)."""
        self._lock = threading.Lock()
        self._stderr = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
        cmd = [*["ip", "netns", "exec", ns], *(["chrt", "-f", "20"] if shutil.which("chrt") else []),
               sys.executable, str(Path(__file__).resolve()), "--probe", "--mode", mode, "--interval", str(interval),
               "--timeout", str(timeout), "--interface", iface, "--max-seconds", str(max_seconds),
               *(["--until-first"] if until_first else [])]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                     start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _other(self, parts: list[str]) -> None:
        if parts[:1] == ["F"] and len(parts) == 4:
            self.failures[parts[3]] = self.failures.get(parts[3], 0) + 1

    def start(self, target: str) -> None:
        """Give the waiting prober its target: probing starts now."""
        self.target = target
        assert self.proc.stdin is not None
        self.proc.stdin.write(target.encode() + b"\n")
        self.proc.stdin.flush()


# -- the benchmark (root namespace) ---------------------------------------------------------------

from pyroute2 import IPRoute  # noqa: E402

from lbspeaker.core.errors import ApiError, LabError  # noqa: E402
from lbspeaker.k8s.client import SERVICES, Kube  # noqa: E402
from lbspeaker.lab.procs import wait_until  # noqa: E402
from lbspeaker.lab.realk8s import cluster, install, network  # noqa: E402
from lbspeaker.lab.realk8s.shape import Cluster, image_tar  # noqa: E402


def pct(xs: list[float]) -> dict[str, float | int | None]:
    """p50/p99/max (nearest rank) of xs in ms."""
    if not xs:
        return {"n": 0, "p50": None, "p99": None, "max": None}
    s = sorted(xs)
    return {"n": len(s), "p50": round(statistics.median(s), 1),
            "p99": round(s[min(len(s) - 1, max(0, -(-99 * len(s) // 100) - 1))], 1), "max": round(s[-1], 1)}


def service(name: str, *, etp: str = "Cluster") -> str:
    """A LoadBalancer Service of the backend Deployment, port 80 → 8080."""
    return json.dumps({"apiVersion": "v1", "kind": "Service",
                       "metadata": {"name": name, "namespace": "default", "labels": {"bench": "e2e"}},
                       "spec": {"type": "LoadBalancer", "externalTrafficPolicy": etp, "selector": {"app": BACKEND},
                                "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}})


def ingress_ip(kube: Kube, name: str) -> str | None:
    """The Service's first status.loadBalancer.ingress IP, or None (also when it does not exist yet)."""
    try:
        svc = kube.get(SERVICES, name, "default")
    except ApiError:  # not created yet, or a transient API error: keep polling
        return None
    ing = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return next((str(i["ip"]) for i in ing if i.get("ip")), None)


class Saved(NamedTuple):
    """Which node to restore."""

    node: int


class Bench:
    """The cluster, its Kube client, the nodes' MACs and netlink sockets."""

    def __init__(self, c: Cluster, kube: Kube) -> None:
        self.c, self.kube = c, kube
        self.lan = network.lan_if(c)
        self.node_ns = {i: c.topo.node(i).ns for i in range(1, c.nodes + 1)}
        self.mac_to_node = {self._mac(ns): i for i, ns in self.node_ns.items()}
        # netlink sockets opened in each node namespace in advance: the link goes down ~ms after t_fault
        self.links: dict[int, tuple[IPRoute, int]] = {}
        for i, ns in self.node_ns.items():
            ipr = IPRoute(netns=ns)
            self.links[i] = (ipr, int(ipr.link_lookup(ifname=self.lan)[0]))

    def close(self) -> None:
        """Close the netlink sockets; idempotent."""
        for ipr, _ in self.links.values():
            ipr.close()
        self.links.clear()

    def node_of(self, mac: str) -> str:
        """The node name of a LAN NIC MAC (the MAC itself when unknown)."""
        return self.c.node_name(self.mac_to_node[mac]) if mac in self.mac_to_node else mac

    def _mac(self, ns: str) -> str:
        out = subprocess.run(["ip", "-n", ns, "-o", "link", "show", "dev", self.lan], capture_output=True,
                             text=True, check=True).stdout.split()
        return out[out.index("link/ether") + 1]

    # -- create → first good request --------------------------------------------------------------

    def create_trial(self, k: int, reused: set[str]) -> dict[str, Any]:
        """One Service: apply, IP in status, first HTTP 200 from the client; then delete it."""
        name = f"bench-create-{k}"
        pr = NetProber(self.c.topo.client.ns, mode="http", interval=0.01, timeout=0.5, until_first=True,
                       max_seconds=60.0, log=self.c.state_dir / "logs" / "prober-create.log")
        try:
            time.sleep(0.3)  # the prober process is up and waiting (not measured)
            t0 = time.monotonic_ns()
            cluster.kubectl(self.c, "apply", "-f", "-", input=service(name))
            t_applied = time.monotonic_ns()
            ip: str | None = None
            deadline = time.monotonic() + 30.0
            while ip is None and time.monotonic() < deadline:
                ip = ingress_ip(self.kube, name)
                if ip is None:
                    time.sleep(0.01)
            if ip is None:
                raise LabError(f"create trial {k}: default/{name} got no IP in 30s")
            t_ip = time.monotonic_ns()
            pr.start(ip)
            if not wait_until(lambda: bool(pr.snapshot().replies), 30.0, interval=0.005):
                raise LabError(f"create trial {k}: http://{ip}/ not answered within 30s of the IP")
            _seq, t_ok, mac = pr.snapshot().replies[0]
        finally:
            pr.stop()
        self.kube.delete(SERVICES, name, "default")
        self.wait_gone(ip)
        res = {"ip": ip, "total_ms": (t_ok - t0) / 1e6, "apply_to_ip_ms": (t_ip - t0) / 1e6,
               "ip_to_ok_ms": (t_ok - t_ip) / 1e6, "kubectl_apply_ms": (t_applied - t0) / 1e6,
               "kubectl_exit_to_ip_ms": (t_ip - t_applied) / 1e6,
               "failed_before_ok": {why: n for why, n in pr.failures.items() if why != "stopped"},
               "in_flight_at_ok": pr.failures.get("stopped", 0), "answered_by": self.node_of(mac),
               "ip_reused": ip in reused}
        reused.add(ip)
        return res

    def wait_gone(self, ip: str) -> None:
        """After a delete: wait (bounded) until the old IP refuses TCP for 0.5 s, so the next trial starts clean."""
        pr = NetProber(self.c.topo.client.ns, mode="tcp", interval=0.05, timeout=0.2, max_seconds=20.0)
        try:
            pr.start(ip)

            def quiet() -> bool:
                ev = pr.snapshot()
                recent = [t for _s, t in ev.sent if t > time.monotonic_ns() - 500_000_000]
                return len(recent) >= 8 and not [r for r in ev.replies if r[1] > time.monotonic_ns() - 700_000_000]

            if not wait_until(quiet, 15.0, interval=0.1):
                say(f"warning: {ip} still answers 15s after its Service was deleted")
        finally:
            pr.stop()

    # -- failover ---------------------------------------------------------------------------------

    def speaker_pid(self, i: int) -> int | None:
        """The lbspeaker-speaker process in node i's network namespace."""
        want = os.stat(f"/run/netns/{self.node_ns[i]}").st_ino
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                if b"lbspeaker-speaker" in (d / "cmdline").read_bytes() and os.stat(d / "ns" / "net").st_ino == want:
                    return int(d.name)
            except OSError:
                continue
        return None

    def l2status_node(self, svc: str) -> str | None:
        """The node a ServiceL2Status names for default/svc (cross-check of the MAC)."""
        p = cluster.kubectl(self.c, "-n", "lbspeaker-system", "get", "servicel2statuses", "-o", "json", check=False)
        if p.returncode != 0:
            return None
        for it in json.loads(p.stdout).get("items") or []:
            st = it.get("status") or {}
            if st.get("serviceName") == svc and st.get("serviceNamespace") == "default":
                return str(st.get("node"))
        return None

    def steady_owner(self, pr: NetProber, svc: str) -> tuple[str, str | None]:
        """The MAC answering the client steadily for 1 s, and the ServiceL2Status node (wait up to 30 s to agree).

        They can differ: kube-proxy DNATs the VIP on every node, so a client whose ARP entry still
        names a node that no longer announces (kept REACHABLE by TCP) is served anyway. Such a trial
        is kept but marked ``announcer_agrees: false``.
        """
        deadline = time.monotonic() + 30.0
        while True:
            owner = pr.wait_stable(1.0, 60.0)
            if owner is None:
                raise LabError(f"failover: VIP {pr.target} has no steady owner within 60s")
            l2 = self.l2status_node(svc)
            if l2 == self.node_of(owner) or time.monotonic() > deadline:
                return owner, l2
            time.sleep(0.5)

    def failover_trial(self, pr: NetProber, svc: str) -> dict[str, Any]:
        """Fail the announcing node (LAN NIC down, SIGKILL kubelet + speaker), measure, restore."""
        owner, l2 = self.steady_owner(pr, svc)
        victim = self.mac_to_node[owner]
        ns, nd = self.node_ns[victim], self.c.node_dir(victim)
        kubelet = int((nd / "kubelet.pid").read_text())
        speaker = self.speaker_pid(victim)
        if speaker is None:
            raise LabError(f"failover: no lbspeaker-speaker process in {ns}")
        ipr, idx = self.links[victim]
        with pr._lock:  # a lower bound: the reader may lag the prober by a few lines
            k_fault = pr.events.sent[-1][0] if pr.events.sent else -1
        t_fault = time.monotonic_ns()
        ipr.link("set", index=idx, state="down")
        t_down = time.monotonic_ns()
        for pid in (kubelet, speaker):
            os.kill(pid, signal.SIGKILL)
        t_killed = time.monotonic_ns()

        def recovered() -> bool:  # cheap wake-up test (newest replies only); the gap is computed exactly below
            with pr._lock:
                return any(r[0] > k_fault + 10 for r in pr.events.replies[-20:])

        ok = wait_until(recovered, 20.0, interval=0.01)
        time.sleep(2.2)  # the loss window after recovery
        ev = pr.snapshot()
        sent_t = {seq: t for seq, t in ev.sent[max(0, len(ev.sent) - 5000):]}
        after = [r for r in ev.replies if sent_t.get(r[0], 0) > t_fault]  # probes sent after the fault
        res: dict[str, Any] = {"killed": self.c.node_name(victim), "l2status_node": l2,
                               "announcer_agrees": l2 == self.c.node_name(victim), "recovered": ok,
                               "link_down_ms": round((t_down - t_fault) / 1e6, 2),
                               "killed_ms": round((t_killed - t_fault) / 1e6, 2)}
        if after:
            first = min(after, key=lambda r: r[1])
            answered = {r[0] for r in ev.replies}
            window = [s for s, t in ev.sent if first[1] <= t <= first[1] + 2_000_000_000]
            before = [r for r in ev.replies if r[1] <= t_fault]
            res.update(gap_ms=round((first[1] - t_fault) / 1e6, 1),
                       since_last_ok_ms=round((first[1] - before[-1][1]) / 1e6, 1) if before else None,
                       new_owner=self.node_of(first[2]),
                       loss_after_recovery=round(1 - len([s for s in window if s in answered]) / max(1, len(window)),
                                                 3))
        res["restore"] = Saved(victim)
        return res

    def restore(self, saved: Saved, pr: NetProber) -> None:
        """Link up, flushed routes back, kubelet restarted in the node's mount namespace; speaker Ready, VIP steady."""
        i = saved.node
        log = self.c.node_dir(i) / "log" / "kubelet.log"
        ipr, idx = self.links[i]
        ipr.link("set", index=idx, state="up")
        network.node_routes(self.c, i)
        cluster.restart_kubelet(self.c, i)  # cluster.down() ends it
        node = self.c.node_name(i)

        def speaker_ready() -> bool:
            q = cluster.kubectl(self.c, "-n", "lbspeaker-system", "get", "pods", "-l",
                                "app.kubernetes.io/component=speaker", "--field-selector", f"spec.nodeName={node}",
                                "-o", "jsonpath={.items[*].status.containerStatuses[*].ready}", check=False, timeout=15)
            return q.returncode == 0 and q.stdout.split() == ["true"] and self.speaker_pid(i) is not None

        if not wait_until(speaker_ready, 120.0, interval=0.5):
            raise LabError(f"restoring {node}: speaker pod not Ready within 120s ({log})")
        if pr.wait_stable(1.5, 60.0) is None:
            raise LabError(f"restoring {node}: VIP {pr.target} not steady within 60s")


MAIN_PID = os.getpid()


def _on_stop(sig: int, _frame: object) -> None:
    """SIGTERM/SIGINT unwind the bench like Ctrl-C, so its finally removes the cluster.

    Only in the bench's own process: pyroute2 stops the helper it forks for a netns socket with
    SIGTERM, and that fork must die at once, never run the bench's cleanup (it would take the
    cluster down under the running bench).
    """
    if os.getpid() != MAIN_PID:
        os._exit(128 + sig)
    raise KeyboardInterrupt


def keep_logs(c: Cluster, dest: Path) -> int:
    """Copy the speaker and controller container logs out of the cluster before down() removes them."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True, exist_ok=True)
    n = 0
    for f in sorted(c.state_dir.glob("nodes/*/varlog/pods/lbspeaker-system_*/*/*.log")):
        node, pod = f.parents[4].name, f.parents[1].name.split("_")[1]
        shutil.copyfile(f, dest / f"{node}-{pod}-{f.parent.name}-{f.stem}.log")
        n += 1
    return n


def loadavg() -> list[float]:
    """1, 5, 15 minute load averages."""
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def run(args: argparse.Namespace, result: dict[str, Any]) -> None:
    """The whole benchmark; fills result as it goes (kept when a later step fails)."""
    c = Cluster(prefix=PREFIX, mgmt_index=9, state_dir=STATE_DIR, nics=args.nics)
    if not image_tar().exists():
        say(f"{image_tar()} missing: bash scripts/build-image.sh")
        subprocess.run(["bash", str(REPO / "scripts" / "build-image.sh")], check=True, stdout=sys.stderr)
    b: Bench | None = None
    kube: Kube | None = None
    try:
        t = time.monotonic()
        cluster.up(c, say=say)
        result["cluster_up_s"] = round(time.monotonic() - t, 1)
        t = time.monotonic()
        install.install(c, say=say)
        result["install_s"] = round(time.monotonic() - t, 1)
        cluster.kubectl(c, "apply", "-f", "-", input=install.backend(BACKEND, replicas=3))
        cluster.kubectl(c, "rollout", "status", f"deployment/{BACKEND}", "--timeout=180s", timeout=190)
        kube = Kube.from_kubeconfig(str(c.kubeconfig))
        b = Bench(c, kube)
        say(f"create → first good request: {args.services} Services")
        trials: list[dict[str, Any]] = []
        result["create_trials"] = trials
        reused: set[str] = set()
        for k in range(args.services):
            trials.append(b.create_trial(k, reused))
            say(f"create #{k}: {trials[-1]['ip']} total {trials[-1]['total_ms']:.0f} ms "
                f"(IP {trials[-1]['apply_to_ip_ms']:.0f}, request {trials[-1]['ip_to_ok_ms']:.0f})")
        for key in ("total_ms", "apply_to_ip_ms", "ip_to_ok_ms", "kubectl_apply_ms", "kubectl_exit_to_ip_ms"):
            result["create_to_first_request"][key] = pct([tr[key] for tr in trials])
        say(f"failover: {args.failover_trials} trials")
        cluster.kubectl(c, "apply", "-f", "-", input=service("bench-failover"))
        if not wait_until(lambda: ingress_ip(kube, "bench-failover") is not None, 30.0, interval=0.1):  # type: ignore[arg-type]
            raise LabError("failover: default/bench-failover got no IP in 30s")
        vip = str(ingress_ip(kube, "bench-failover"))
        result["failover"]["vip"] = vip
        pr = NetProber(c.topo.client.ns, mode="tcp", interval=0.01, timeout=0.3, max_seconds=1500.0,
                       log=c.state_dir / "logs" / "prober-failover.log")
        ftrials: list[dict[str, Any]] = []
        result["failover"]["trials"] = ftrials
        try:
            pr.start(vip)
            for k in range(args.failover_trials):
                ftrials.append(b.failover_trial(pr, "bench-failover"))
                restore = ftrials[-1].pop("restore")
                say(f"failover #{k}: {ftrials[-1]}")
                t = time.monotonic()
                b.restore(restore, pr)
                ftrials[-1]["restore_s"] = round(time.monotonic() - t, 1)
        finally:
            pr.stop()
        result["failover"]["gap_ms"] = pct([tr["gap_ms"] for tr in ftrials if "gap_ms" in tr])
        result["failover"]["gap_ms_announcer_agreed"] = pct([tr["gap_ms"] for tr in ftrials
                                                             if "gap_ms" in tr and tr["announcer_agrees"]])
        result["failover"]["loss_after_recovery_pct"] = pct([100 * tr["loss_after_recovery"] for tr in ftrials
                                                             if "loss_after_recovery" in tr])
        result["failover"]["all_recovered"] = all(tr["recovered"] for tr in ftrials) and len(ftrials) > 0
    finally:
        if os.getpid() != MAIN_PID:  # a library's fork unwinding through here: not ours to clean up
            os._exit(1)
        if b is not None:
            b.close()
        if kube is not None:
            kube.close()
        result["load_average_end"] = loadavg()
        if c.state_dir.exists():
            with contextlib.suppress(OSError):
                if keep_logs(c, LOGS):
                    result["logs"] = str(LOGS)
        say("cluster down")
        cluster.down(c)


def main() -> int:
    if sys.argv[1:2] == ["--probe"]:
        return probe_main(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--services", type=int, default=20, help="Services created one after the other (1-200)")
    ap.add_argument("--failover-trials", type=int, default=5, help="announcing-node failures (1-50)")
    ap.add_argument("--quick", action="store_true", help="2 Services, 1 failover trial (smoke run)")
    ap.add_argument("--nics", type=int, choices=(1, 2), default=1, help="NICs per node (2 = VirtualBox-shaped)")
    args = ap.parse_args()
    if args.quick:
        args.services, args.failover_trials = 2, 1
    args.services = max(1, min(args.services, 200))
    args.failover_trials = max(1, min(args.failover_trials, 50))
    if os.geteuid() != 0:
        print(json.dumps({"error": "needs root (network namespaces)"}))
        return 2
    result: dict[str, Any] = {
        "bench": "e2e", "kubernetes": "1.20", "nodes": 3, "nics": args.nics, "load_average_start": loadavg(),
        "services": args.services, "failover_trials": args.failover_trials,
        "create_to_first_request": {
            "method": "t0 just before `kubectl apply -f -` of a LoadBalancer Service (3 ready backend pods); "
                      "IP read by polling the API every 10 ms; then HTTP GET from the client namespace every "
                      "10 ms (fresh socket, 0.5 s timeout) until a 200; Service deleted after each trial",
            "target_p99_ms": 1000, "anchor_purelb_ms": [588, 1417]},
        "failover": {
            "method": "restore: the announcing node's LAN NIC down, then SIGKILL of its kubelet and speaker; TCP "
                      "connect to VIP:80 every 10 ms (fresh socket, 0.3 s timeout); gap = fault -> first handshake "
                      "of a probe sent after it; then link up, routes back, kubelet restarted (containerd "
                      "and kube-proxy kept), speaker Ready and VIP steady before the next trial",
            "probe_interval_ms": 10, "target_p99_ms": 250, "membership_timeout_default_ms": 125},
    }
    t = time.monotonic()
    rc = 0
    prev = {s: signal.signal(s, _on_stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        run(args, result)
    except (LabError, ApiError, OSError, subprocess.SubprocessError, KeyboardInterrupt) as err:
        result["error"] = f"{type(err).__name__}: {err}"
        rc = 1
    finally:
        for s, h in prev.items():
            signal.signal(s, h)
    result["wall_s"] = round(time.monotonic() - t, 1)
    print(json.dumps(result, indent=1))
    return rc


if __name__ == "__main__":
    raise SystemExit(main())

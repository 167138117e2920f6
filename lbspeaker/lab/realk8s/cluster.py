"""Bring the real cluster up and down.

Invariants: ``up`` first removes leftovers of an earlier (possibly crashed) cluster and, when a
step fails, tears down what it built before raising; ``down`` is idempotent and ends only
processes this module started (pid files, the nodes' cgroups, processes whose command line names
this cluster's state folder), then removes cgroups, mounts, ``lbr-`` namespaces and the state.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from lbspeaker.core.errors import LabError
from lbspeaker.lab import bgp
from lbspeaker.lab.netns import delete_namespaces, ip, kill_pids, run
from lbspeaker.lab.procs import wait_until
from lbspeaker.lab.realk8s import configs, network
from lbspeaker.lab.realk8s.pki import make_pki
from lbspeaker.lab.realk8s.shape import API_PORT, Cluster

Say = Callable[[str], None]
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_SUBSYSTEMS = ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd",
                     "unified")
# Children started by this process, kept so they are reaped (not warned about) when they exit.
_CHILDREN: list[subprocess.Popen[bytes]] = []
NODE_BINARIES = ("kubelet", "kube-proxy", "kube-controller-manager", "kube-scheduler", "kube-apiserver", "etcd")


def _quiet(_msg: str) -> None:
    pass


def check_built(c: Cluster) -> None:
    """Raise with the build command when a binary, the runtime or a base image is missing."""
    missing = [str(c.bin_dir / b) for b in NODE_BINARIES if not os.access(c.bin_dir / b, os.X_OK)]
    if not (c.runtime_dir / "usr/bin/containerd").exists():
        missing.append(str(c.runtime_dir / "usr/bin/containerd"))
    missing += [str(p) for p in c.images if not p.exists()]
    if missing:
        raise LabError("real cluster: missing " + ", ".join(missing)
                       + " (build: bash scripts/build-real-apiservers.sh kube && bash scripts/build-image.sh)")


def spawn(c: Cluster, name: str, ns: str, cmd: list[str], *, env: dict[str, str] | None = None) -> int:
    """Start cmd in network namespace ns, detached, logged to logs/NAME.log, pid in pids/NAME.pid.

    nsenter, not ``ip netns exec``: the latter mounts a fresh /sys, which hides /sys/fs/cgroup
    from kubelet ("mountpoint for cpu not found").
    """
    (c.state_dir / "logs").mkdir(parents=True, exist_ok=True)
    (c.state_dir / "pids").mkdir(parents=True, exist_ok=True)
    with open(c.state_dir / "logs" / f"{name}.log", "ab") as log:
        p = subprocess.Popen(["nsenter", f"--net=/run/netns/{ns}", "--", *cmd], stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True, env={**os.environ, **(env or {})})
    _CHILDREN.append(p)
    (c.state_dir / "pids" / f"{name}.pid").write_text(str(p.pid))
    return p.pid


def _reap() -> None:
    for p in list(_CHILDREN):
        if p.poll() is not None:
            _CHILDREN.remove(p)


def _https_ok(url: str, c: Cluster) -> bool:
    ctx = ssl.create_default_context(cafile=str(c.pki / "ca.crt"))
    ctx.load_cert_chain(str(c.pki / "admin.crt"), str(c.pki / "admin.key"))
    try:
        with urllib.request.urlopen(url, timeout=2.0, context=ctx) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  userGroups: ["system:serviceaccounts:lbspeaker-system"]
- level: None
"""
"""What lbspeaker's service accounts do, one JSON line per request (the e2e RBAC check reads it)."""


def audit_log(c: Cluster) -> Path:
    """The API server's audit log of lbspeaker's service accounts."""
    return c.state_dir / "audit.log"


def start_control_plane(c: Cluster) -> None:
    """etcd, kube-apiserver, kube-controller-manager and kube-scheduler in the control-plane namespace."""
    ns, b, k, s = c.topo.api.ns, c.bin_dir, c.pki, c.state_dir
    (s / "audit-policy.yaml").write_text(AUDIT_POLICY)
    (s / "etcd").mkdir(parents=True, exist_ok=True)
    spawn(c, "etcd", ns, [str(b / "etcd"), "--name", "lbr", "--data-dir", str(s / "etcd"),
                          "--listen-client-urls", "http://127.0.0.1:2379",
                          "--advertise-client-urls", "http://127.0.0.1:2379",
                          "--listen-peer-urls", "http://127.0.0.1:2380",
                          "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
                          "--initial-cluster", "lbr=http://127.0.0.1:2380", "--logger", "zap", "--log-level", "warn"])
    spawn(c, "kube-apiserver", ns, [
        str(b / "kube-apiserver"), "--etcd-servers=http://127.0.0.1:2379", f"--advertise-address={c.api_ip}",
        "--bind-address=0.0.0.0", f"--secure-port={API_PORT}", "--insecure-port=0",
        f"--tls-cert-file={k / 'apiserver.crt'}", f"--tls-private-key-file={k / 'apiserver.key'}",
        f"--client-ca-file={k / 'ca.crt'}", "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction", "--allow-privileged=true",
        f"--service-cluster-ip-range={c.service_cidrs}", "--service-node-port-range=30000-32767", *c.gates,
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={k / 'sa.pub'}", f"--service-account-signing-key-file={k / 'sa.key'}",
        f"--kubelet-client-certificate={k / 'apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={k / 'apiserver-kubelet-client.key'}",
        "--kubelet-preferred-address-types=InternalIP",
        f"--audit-policy-file={s / 'audit-policy.yaml'}", f"--audit-log-path={audit_log(c)}",
        "--audit-log-format=json", "--v=1"])
    if not wait_until(lambda: _https_ok(c.host_url + "/readyz", c), 60.0):
        raise LabError(f"real cluster: kube-apiserver not ready after 60s ({s / 'logs/kube-apiserver.log'})")
    cm, sc = str(s / "controller-manager.kubeconfig"), str(s / "scheduler.kubeconfig")
    spawn(c, "kube-controller-manager", ns, [
        str(b / "kube-controller-manager"), f"--kubeconfig={cm}", f"--authentication-kubeconfig={cm}",
        f"--authorization-kubeconfig={cm}", "--bind-address=127.0.0.1", "--port=0", "--leader-elect=false",
        "--use-service-account-credentials=true", f"--service-account-private-key-file={k / 'sa.key'}",
        f"--root-ca-file={k / 'ca.crt'}", "--allocate-node-cidrs=false",
        f"--service-cluster-ip-range={c.service_cidrs}", f"--cluster-cidr={c.pod_cidrs}", *c.gates,
        "--node-monitor-grace-period=16s", "--pod-eviction-timeout=20s", "--v=1"])
    spawn(c, "kube-scheduler", ns, [
        str(b / "kube-scheduler"), f"--kubeconfig={sc}", f"--authentication-kubeconfig={sc}",
        f"--authorization-kubeconfig={sc}", "--bind-address=127.0.0.1", "--port=0", "--leader-elect=false",
        "--v=1"])


def start_node(c: Cluster, i: int) -> None:
    """Node i: cgroup parents, configs, then containerd + kubelet + kube-proxy in its own mount namespace."""
    n, cg = c.node_dir(i), c.cgroup_name(i)
    for sub in ("containerd/root", "containerd/state", "runc", "cni", "cni-ipam", "kubelet", "varlog",
                "run-containerd", "log", "certs"):
        (n / sub).mkdir(parents=True, exist_ok=True)
    for sub in CGROUP_SUBSYSTEMS:
        if (CGROUP_ROOT / sub).is_dir():
            (CGROUP_ROOT / sub / cg).mkdir(exist_ok=True)
    for f in ("cpuset.cpus", "cpuset.mems"):
        (CGROUP_ROOT / "cpuset" / cg / f).write_text((CGROUP_ROOT / "cpuset" / f).read_text())
    configs.write_if_changed(n / "containerd.toml", configs.containerd_toml(c, i))
    configs.write_if_changed(n / "cni" / "10-lbspeaker.conflist", configs.cni_conflist(c, i))
    configs.write_if_changed(n / "kubelet.yaml", configs.kubelet_yaml(c, i))
    configs.write_if_changed(n / "kube-proxy.yaml", configs.kube_proxy_yaml(c, i))
    configs.write_if_changed(n / "inner.sh", configs.inner_sh(c, i))
    (n / "inner.sh").chmod(0o755)
    Path("/run/containerd").mkdir(exist_ok=True)  # mount point of the node-private bind
    spawn(c, f"node-{c.node_name(i)}", c.topo.node(i).ns,
          ["unshare", "--mount", "--propagation", "slave", "--", str(n / "inner.sh")])


def write_wrappers(c: Cluster) -> None:
    """iptables/conntrack wrappers on the nodes' PATH."""
    d = c.state_dir / "path"
    d.mkdir(parents=True, exist_ok=True)
    for name, text in configs.tool_wrappers(c).items():
        configs.write_if_changed(d / name, text)
        (d / name).chmod(0o755)


def kubectl(c: Cluster, *args: str, timeout: float = 60.0, input: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the host's kubectl against the real cluster."""
    exe = shutil.which("kubectl")
    if exe is None:
        raise LabError("kubectl is not installed (apt-get install kubernetes-client)")
    p = subprocess.run([exe, "--kubeconfig", str(c.kubeconfig), *args], capture_output=True, text=True,
                       timeout=timeout, input=input, check=False)
    if check and p.returncode != 0:
        raise LabError(f"kubectl {' '.join(args)}: exit {p.returncode}: {p.stderr.strip()[-600:]}")
    return p


def _nodes_ready(c: Cluster) -> bool:
    p = kubectl(c, "get", "nodes", "-o",
                "jsonpath={range .items[*]}{.status.conditions[?(@.type=='Ready')].status}{' '}{end}",
                check=False, timeout=15)
    return p.returncode == 0 and p.stdout.split().count("True") >= c.nodes


def up(c: Cluster, *, say: Say = _quiet) -> None:
    """Build the real cluster; on failure remove what was built and raise."""
    check_built(c)
    t0 = time.monotonic()

    def step(title: str, fn: Callable[[], object]) -> None:
        t = time.monotonic()
        say(f"[real] {title} ...")
        fn()
        say(f"[real] {title}: ok ({time.monotonic() - t:.1f}s)")

    step("removing leftovers of an earlier real cluster", lambda: down(c))
    c.state_dir.mkdir(parents=True, exist_ok=True)
    try:
        step("certificates and kubeconfigs", lambda: make_pki(c))
        step(f"network namespaces, LAN, {c.nodes} nodes, client", lambda: network.build(c))
        if c.topo.bgp:
            step("BGP router (BIRD) and WAN client", lambda: bgp.start_router(c.topo))
        step("etcd, kube-apiserver, kube-controller-manager, kube-scheduler", lambda: start_control_plane(c))
        write_wrappers(c)
        for i in range(1, c.nodes + 1):
            start_node(c, i)
        step(f"{c.nodes} nodes Ready (containerd, kubelet, kube-proxy)", lambda: _wait_ready(c))
    except BaseException:
        down(c, keep_state=True)  # logs stay for the post-mortem; the next up or down removes them
        raise
    say(f"[real] cluster up in {time.monotonic() - t0:.1f}s: export KUBECONFIG={c.kubeconfig}")


def _wait_ready(c: Cluster) -> None:
    if not wait_until(lambda: _nodes_ready(c), 120.0, interval=1.0):
        raise LabError(f"real cluster: nodes not Ready after 120s (logs: {c.state_dir}/nodes/*/log/kubelet.log)")


def _pid_of(f: Path) -> int | None:
    try:
        return int(f.read_text().strip())
    except (OSError, ValueError):
        return None


def _cmdline_pids(marker: str) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if marker in (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                out.append(int(d.name))
    return out


def _cgroup_pids(cg: str) -> list[int]:
    out: list[int] = []
    base = CGROUP_ROOT / "pids" / cg
    if base.is_dir():
        for f in base.rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                out += [int(x) for x in f.read_text().split()]
    return out


def _remove_cgroups(cg: str) -> list[str]:
    left = []
    for sub in CGROUP_SUBSYSTEMS:
        top = CGROUP_ROOT / sub / cg
        if not top.is_dir():
            continue
        for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                d.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()
        if top.exists():
            left.append(str(top))
    return left


def down(c: Cluster, *, keep_state: bool = False) -> list[str]:
    """Stop every process of the cluster, remove cgroups, mounts and namespaces; idempotent."""
    pids = c.state_dir / "pids"
    for name in ("kube-scheduler", "kube-controller-manager"):
        _kill_file(pids / f"{name}.pid")
    for i in range(1, 1 + max(c.nodes, 4)):  # a crashed up may have had more nodes
        n, cg = c.node_dir(i), c.cgroup_name(i)
        for name in ("kube-proxy", "kubelet"):
            _kill_file(n / f"{name}.pid")
        kill_pids(_cgroup_pids(cg), grace=0.5)
        kill_pids(_cmdline_pids(str(n / "containerd.sock")), grace=0.5)
        _kill_file(n / "containerd.pid")
        _kill_file(pids / f"node-{c.node_name(i)}.pid")
    for name in ("kube-apiserver", "etcd"):
        _kill_file(pids / f"{name}.pid")
    kill_pids(_cmdline_pids(str(c.state_dir) + "/"), grace=1.0)
    if c.topo.bgp or (c.state_dir / "pids" / "bird.pid").exists():
        _kill_file(pids / "bird.pid")
    left = []
    for i in range(1, 1 + max(c.nodes, 4)):
        left += _remove_cgroups(c.cgroup_name(i))
    removed = delete_namespaces(c.prefix)
    _reap()
    ip("link", "del", c.topo.host_if, check=False)
    _unmount_under(c.state_dir)
    with contextlib.suppress(OSError):
        Path("/run/containerd").rmdir()
    if not keep_state and c.state_dir.exists():
        shutil.rmtree(c.state_dir, ignore_errors=True)
    if left:
        raise LabError("real cluster down: cgroups not removed: " + ", ".join(left))
    return removed


def _kill_file(f: Path) -> None:
    pid = _pid_of(f)
    if pid is not None:
        kill_pids([pid], grace=2.0)


def _unmount_under(top: Path) -> None:
    mounts = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            mp = line.split()[4]
            if mp.startswith(str(top) + "/"):
                mounts.append(mp)
    for mp in sorted(mounts, key=len, reverse=True):
        run(["umount", "-l", mp], check=False)


def restart_kubelet(c: Cluster, i: int) -> int:
    """Start node i's kubelet again inside the node's mount and network namespaces (after a kill)."""
    containerd = _pid_of(c.node_dir(i) / "containerd.pid")
    if containerd is None:
        raise LabError(f"restarting kubelet on {c.node_name(i)}: containerd pid unknown")
    log = c.node_dir(i) / "log" / "kubelet.log"
    with open(log, "ab") as out:
        p = subprocess.Popen(["nsenter", f"--target={containerd}", "--mount", "--net", "--",
                              *configs.kubelet_cmd(c, i)], stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True,
                             env={**os.environ, "PATH": configs.node_path(c)})
    _CHILDREN.append(p)
    (c.node_dir(i) / "kubelet.pid").write_text(str(p.pid))
    return p.pid

"""Small, reusable network-namespace fixtures for root tests.

``NetnsLab`` creates namespaces named ``lbt-<tag>-<pid>-<short>`` (unique per test run, so parallel
helpers never collide), veth pairs created directly inside the namespaces (the root namespace is
never touched), bridges, processes and *netns threads*, and removes all of it in ``close()`` — in
the right order: threads and processes first (they pin a namespace), then the namespaces.

``NetnsThread`` is a one-thread executor whose thread entered a namespace with setns(2): code run
through ``call`` creates its sockets in that namespace, and those sockets keep working from any
thread afterwards. Use it to run in-process objects (a Responder, a listener) "inside" a node.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _enter(ns: str) -> None:
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into '{ns}': {os.strerror(err)}")
    finally:
        os.close(fd)


class NetnsThread:
    """Runs callables on one thread that lives in network namespace ``ns``."""

    def __init__(self, ns: str) -> None:
        self.ns = ns
        self._pool = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"netns-{ns}", initializer=_enter, initargs=(ns,)
        )

    def call(self, fn: Callable[..., T], *args: Any, timeout: float = 60.0, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` inside the namespace and return its result (or raise)."""
        return self._pool.submit(fn, *args, **kwargs).result(timeout=timeout)

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Any:
        """Start ``fn`` inside the namespace; returns its Future."""
        return self._pool.submit(fn, *args, **kwargs)

    def close(self) -> None:
        """Stop the thread (waits for running work)."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def sh(*args: str, check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run a command; raise with its stderr when it fails and ``check`` is set."""
    res = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=False)
    if check and res.returncode != 0:
        raise RuntimeError(f"command failed: {' '.join(args)}: rc={res.returncode}: {res.stderr.strip()}")
    return res


class NetnsLab:
    """Namespaces, links, processes and threads of one test; ``close()`` removes them all."""

    def __init__(self, tag: str) -> None:
        self.prefix = f"lbt-{tag}-{os.getpid()}-"
        self.namespaces: list[str] = []
        self._threads: list[NetnsThread] = []
        self._procs: list[subprocess.Popen[str]] = []
        self._cleanups: list[Callable[[], None]] = []

    def ns(self, short: str) -> str:
        """Create namespace ``<prefix><short>`` with loopback up; returns its full name."""
        name = self.prefix + short
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def ip(self, ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``ip -n NS ARGS``."""
        return sh("ip", "-n", ns, *args, check=check)

    def exec(self, ns: str, *args: str, check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """``ip netns exec NS ARGS``."""
        return sh("ip", "netns", "exec", ns, *args, check=check, timeout=timeout)

    def sysctl(self, ns: str, **values: str | int) -> None:
        """Set sysctls in a namespace; keys use ``__`` for ``.`` (``net__ipv4__conf__all__arp_ignore``)."""
        for key, value in values.items():
            self.exec(ns, "sysctl", "-qw", f"{key.replace('__', '.')}={value}")

    def veth(self, a_ns: str, a_if: str, b_ns: str, b_if: str, *, up: bool = True) -> None:
        """A veth pair with one end in each namespace (created there directly)."""
        sh("ip", "link", "add", a_if, "netns", a_ns, "type", "veth", "peer", "name", b_if, "netns", b_ns)
        if up:
            self.ip(a_ns, "link", "set", a_if, "up")
            self.ip(b_ns, "link", "set", b_if, "up")

    def bridge(self, ns: str, name: str, *ports: str, snooping: bool = False, querier: bool = False) -> None:
        """A bridge (STP off) in ``ns`` enslaving ``ports``; IGMP/MLD snooping off unless asked.

        br_netfilter is switched off in ``ns`` when the kernel has it: it validates and drops malformed
        IPv4/IPv6/ARP frames on bridges, which a real switch never does.
        """
        for family in ("arptables", "iptables", "ip6tables"):
            self.exec(ns, "sysctl", "-qw", f"net.bridge.bridge-nf-call-{family}=0", check=False)
        self.ip(
            ns,
            "link",
            "add",
            name,
            "type",
            "bridge",
            "stp_state",
            "0",
            "mcast_snooping",
            "1" if snooping else "0",
            "mcast_querier",
            "1" if querier else "0",
        )
        for port in ports:
            self.ip(ns, "link", "set", port, "master", name)
        self.ip(ns, "link", "set", name, "up")

    def thread(self, ns: str) -> NetnsThread:
        """A NetnsThread in ``ns``, stopped by ``close()``."""
        t = NetnsThread(ns)
        self._threads.append(t)
        return t

    def popen(self, ns: str, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
        """Start a process inside ``ns``; killed by ``close()``."""
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *args], text=True, **kwargs)
        self._procs.append(proc)
        return proc

    def defer(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` first thing in ``close()`` (e.g. stop a Responder); errors are ignored."""
        self._cleanups.append(fn)

    def link_mac(self, ns: str, ifname: str) -> str:
        """The MAC address of an interface in ``ns``."""
        return str(json.loads(self.ip(ns, "-j", "link", "show", ifname).stdout)[0]["address"])

    def neigh(self, ns: str, addr: str) -> tuple[str | None, list[str]]:
        """(lladdr, states) of the neighbour entry for ``addr`` in ``ns``; (None, []) when absent."""
        rows = json.loads(self.ip(ns, "-j", "neigh", "show", "to", addr).stdout or "[]")
        for row in rows:
            if row.get("dst") == addr:
                return row.get("lladdr"), list(row.get("state", []))
        return None, []

    def close(self) -> None:
        """Remove everything this lab created; safe to call twice."""
        for fn in reversed(self._cleanups):
            with contextlib.suppress(Exception):
                fn()
        self._cleanups.clear()
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(Exception):
                proc.wait(timeout=10)
        self._procs.clear()
        for t in self._threads:
            t.close()
        self._threads.clear()
        for name in reversed(self.namespaces):
            sh("ip", "netns", "del", name, check=False)
        self.namespaces.clear()


@contextlib.contextmanager
def netns_lab(tag: str) -> Iterator[NetnsLab]:
    """A NetnsLab that is always closed, also when the body fails."""
    lab = NetnsLab(tag)
    try:
        yield lab
    finally:
        lab.close()

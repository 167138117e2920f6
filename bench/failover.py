"""L2 failover benchmark: probe gap when the announcing node dies, lbspeaker vs keepalived VRRP.

Run as root from the repository root: ``.venv/bin/python bench/failover.py`` (20 trials per
variant, about 15 minutes; ``--quick`` = 3 trials each). Prints one JSON object; writes it also to
``bench/out/failover.json`` and a timeline of one lbspeaker trial to ``bench/out/failover.png``.
Method and figures: docs/failover.md.

Setup: the netns lab (3 nodes, client, embedded API server; state in ``bench/out/failover-lab``),
the sample pool, one LoadBalancer Service. A prober in the client namespace sends an ICMP echo to
the VIP every 10 ms on a fixed schedule and records which MAC answers (bench/prober.py). One trial:
the node answering the VIP "dies" (SIGKILL of its speaker, then ``ip link set eth0 down``); the
gap between the last reply before and the first reply after is measured; the node is restored
(link up, speaker restarted, membership converged, VIP stable for 1.5 s) before the next trial.

Variants, same lab, same run: ``lbspeaker`` (shipped defaults), ``lbspeaker_api_down`` (API server
SIGSTOPped before the kill, SIGCONT after), ``lbspeaker_fast`` (membership 5 ms / 30 ms injected
through a wrapper: the speaker has no flag for it yet), then the speakers are stopped and
``keepalived_default`` (VRRPv2, advert_int 1) and ``keepalived_fast`` (VRRPv3, advert_int 0.01)
run on the node namespaces with their own VIP.

Invariants: only one lab at a time (global ``lbk-`` names): waits (bounded) while another lab is
up; every wait is bounded; on any failure the keepalived processes, the prober and the lab are
removed (try/finally) and the JSON carries ``error``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from failover_analysis import analyze, churn, milestones, report  # noqa: E402
from keepalived_lab import VIP as KA_VIP  # noqa: E402
from keepalived_lab import Keepalived  # noqa: E402
from prober import Prober  # noqa: E402
from pyroute2 import IPRoute  # noqa: E402

from lbspeaker.core.errors import LabError  # noqa: E402
from lbspeaker.k8s.client import ENDPOINTSLICES, SERVICES, Kube, apply  # noqa: E402
from lbspeaker.lab import bootstrap, procs  # noqa: E402
from lbspeaker.lab.lab import down, up  # noqa: E402
from lbspeaker.lab.netns import ip, list_namespaces  # noqa: E402
from lbspeaker.lab.topology import CLIENT_NS, Topology  # noqa: E402
from lbspeaker.speaker import membership  # noqa: E402

OUT = REPO / "bench" / "out"
FAST = {"interval": 0.005, "timeout": 0.03}  # bench/membership.py's "fast" profile
MAX_LINK_DOWN_MS = 20.0  # a trial whose link took longer to go down after the kill is repeated
RECOVER_S = {"lbspeaker": 10.0, "keepalived": 20.0}


def say(msg: str) -> None:
    """Progress on stderr (stdout carries only the JSON)."""
    print(f"[failover {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def wait_for_free_lab(timeout: float) -> None:
    """Wait until no other lab (``lbk-`` namespaces) is up."""
    deadline = time.monotonic() + timeout
    while list_namespaces():
        if time.monotonic() > deadline:
            raise LabError(f"waiting for the lab: another lab is still up after {timeout:.0f}s")
        say("another lab is up; waiting")
        time.sleep(5)


class Bench:
    """The lab, the prober and the trials."""

    def __init__(self, topo: Topology, kube: Kube) -> None:
        self.topo, self.kube, self.sd = topo, kube, topo.state_dir
        self.nodes = [m.name for m in topo.node_members]
        self.mac_to_node = {self._mac(m.ns): m.name for m in topo.node_members}
        self.speaker_args: list[str] = ["lbspeaker.speaker.main"]
        self.speaker_env: dict[str, str] | None = None
        self.trials: dict[str, list[dict[str, Any]]] = {}
        self.churn: dict[str, dict[str, int]] = {}
        # netlink sockets opened inside each node namespace in advance: taking eth0 down right after
        # the SIGKILL costs ~1-5 ms this way, against 10-30 ms for spawning `ip` on a loaded machine
        self._links: dict[str, tuple[IPRoute, int]] = {}
        for m in topo.node_members:
            ipr = IPRoute(netns=m.ns)
            self._links[m.name] = (ipr, int(ipr.link_lookup(ifname="eth0")[0]))
        self.stable_window = 1.0
        self.expected_owner: str | None = None
        self.discarded: list[dict[str, Any]] = []

    def set_link(self, node: str, *, up: bool) -> None:
        """eth0 of node administratively up or down (netlink, no process spawned)."""
        ipr, idx = self._links[node]
        ipr.link("set", index=idx, state="up" if up else "down")

    def close(self) -> None:
        """Close the netlink sockets; idempotent."""
        for ipr, _ in self._links.values():
            ipr.close()
        self._links.clear()

    @staticmethod
    def _mac(ns: str) -> str:
        out = ip("-o", "link", "show", "eth0", ns=ns).split()
        return out[out.index("link/ether") + 1]

    def node(self, mac: str | None) -> str | None:
        """Node name of an eth0 MAC."""
        return self.mac_to_node.get(mac or "", mac)

    # -- speakers -----------------------------------------------------------------------------

    def spawn_speaker(self, node: str) -> None:
        """Start node's speaker the way the lab does (or through the fast wrapper)."""
        args = [
            *self.speaker_args,
            "--node",
            node,
            "--interface",
            "eth0",
            "--kubeconfig",
            str(self.topo.lan_kubeconfig),
        ]
        procs.spawn(self.sd, f"speaker-{node}", f"lbk-{node}", args, env=self.speaker_env)

    def stop_speaker(self, node: str) -> None:
        """SIGTERM node's speaker and wait (bounded) until it is gone."""
        pid = procs.recorded_pids(self.sd).get(f"speaker-{node}")
        if pid is not None and procs.alive(pid):
            os.kill(pid, signal.SIGTERM)
            if not procs.wait_until(lambda: not procs.alive(pid), 10.0):
                os.kill(pid, signal.SIGKILL)
        procs.reap()

    def converged(self, since_wall: float, fresh: set[str]) -> bool:
        """Every speaker's latest logged alive set has all nodes; fresh ones logged it after since_wall."""
        want = ",".join(sorted(self.nodes))
        for n in self.nodes:
            try:
                lines = (self.sd / "logs" / f"speaker-{n}.log").read_text(errors="replace").splitlines()
            except OSError:
                return False
            last = next((line for line in reversed(lines) if " membership_changed alive=" in line), None)
            if last is None or not last.endswith(f"alive={want}"):
                return False
            if n in fresh:
                stamp = time.mktime(time.strptime(last[:19], "%Y-%m-%d %H:%M:%S")) + int(last[20:23]) / 1000
                if stamp < since_wall - 0.01:
                    return False
        return True

    def restore_speaker_node(self, node: str, prober: Prober) -> None:
        """Link up, speaker restarted, membership converged, VIP stable."""
        self.set_link(node, up=True)
        t = time.time()
        self.spawn_speaker(node)
        if not procs.wait_until(lambda: self.converged(t, {node}), 30.0, 0.2):
            raise LabError(
                f"restoring {node}: membership did not converge in 30s:\n{procs.log_tail(self.sd, f'speaker-{node}')}"
            )
        if prober.wait_stable(1.5, 20.0) is None:
            raise LabError(f"restoring {node}: VIP {prober.target} not stable within 20s")

    # -- trials ---------------------------------------------------------------------------------

    def speaker_trial(self, variant: str, prober: Prober, vip: str, *, api_down: bool) -> dict[str, Any]:
        """Kill the announcing node, measure, restore."""
        owner_mac = self.owner_before_trial(prober, 1.0, 30.0)
        victim = str(self.node(owner_mac))
        res_cont: float | None = None
        if api_down:
            procs.kill_one(self.sd, "apiserver", signal.SIGSTOP)
            time.sleep(0.3)
        try:
            t_wall, t_fail = time.time(), time.monotonic_ns()
            procs.kill_one(self.sd, f"speaker-{victim}", signal.SIGKILL)
            self.set_link(victim, up=False)
            t_down = time.monotonic_ns()
            res = self._measure(prober, owner_mac, t_fail, t_down, RECOVER_S["lbspeaker"])
        finally:
            if api_down:
                procs.kill_one(self.sd, "apiserver", signal.SIGCONT)
                res_cont = round((time.monotonic_ns() - t_fail) / 1e6, 1)
        procs.reap()
        if api_down:
            res.update(api_stopped_ms=-300.0, api_resumed_ms=res_cont)
        logs = {n: self.sd / "logs" / f"speaker-{n}.log" for n in self.nodes}
        res.update(milestones(logs, victim=victim, new_owner=res["new_owner"], vip=vip, t_wall=t_wall))
        res.update(killed=victim)
        self.restore_speaker_node(victim, prober)
        return res

    def _measure(self, prober: Prober, owner_mac: str, t_fail: int, t_down: int, limit: float) -> dict[str, Any]:
        def moved() -> bool:
            return any(r[2] != owner_mac for r in prober.replies_between(t_down, time.monotonic_ns()))

        procs.wait_until(moved, limit, 0.02)
        time.sleep(0.4)  # replies after the recovery, for the gap's end and the plot
        t_end = time.monotonic_ns()
        ev = prober.snapshot()
        res = analyze(ev.sent, ev.replies, t_fail=t_fail, t_end=t_end, old_mac=owner_mac)
        res["new_owner"] = self.node(res.pop("new_mac"))
        res["link_down_ms"] = round((t_down - t_fail) / 1e6, 1)
        lo, hi = t_fail - 300_000_000, t_end
        res["timeline_sent_ms"] = [round((t - t_fail) / 1e6, 2) for _, t in ev.sent if lo <= t <= hi]
        res["timeline_replies_ms"] = [
            (round((t - t_fail) / 1e6, 2), self.node(mac)) for _, t, mac in ev.replies if lo <= t <= hi
        ]
        return res

    def keepalived_trial(self, ka: Keepalived, prober: Prober) -> dict[str, Any]:
        """Kill the VRRP master (child + parent SIGKILL, link down), measure, restore."""
        owner_mac = self.owner_before_trial(prober, self.stable_window, 60.0)
        victim = str(self.node(owner_mac))
        pids = ka.kill_pids(victim)
        t_fail = time.monotonic_ns()
        ka.kill_hard(pids)
        self.set_link(victim, up=False)
        t_down = time.monotonic_ns()
        ka.reap(victim)
        res = self._measure(prober, owner_mac, t_fail, t_down, RECOVER_S["keepalived"])
        res.update(killed=victim)
        ka.remove_vip(victim)  # a SIGKILLed master keeps the VIP: delete it before the link returns
        self.set_link(victim, up=True)
        ka.start(victim)
        # the restored node has the highest priority and preempts: wait for that, then for stable replies
        if not procs.wait_until(lambda: ka.holders() == [victim], 30.0, 0.05):
            raise LabError(
                f"keepalived {ka.profile}: {victim} did not become master again within 30s: holders {ka.holders()}"
            )
        if prober.wait_stable(self.stable_window, 60.0) is None:
            raise LabError(
                f"keepalived {ka.profile}: VIP {KA_VIP} replies not stable for "
                f"{self.stable_window}s within 60s after restoring {victim}"
            )
        return res

    def owner_before_trial(self, prober: Prober, window: float, timeout: float) -> str:
        """The MAC that stably answers the VIP, preferably the variant's usual owner.

        The usual owner (the election's winner, keepalived's highest priority) is learned from a
        3 s stable window; later trials wait for the VIP to be back there, so a trial does not start
        on a node that only holds the VIP because of a spurious takeover. If it does not come back
        within half the timeout, any owner stable for 3 s is accepted (and becomes the usual one).
        """
        start = time.monotonic()
        while True:
            elapsed = time.monotonic() - start
            if elapsed > timeout:
                raise LabError(
                    f"VIP {prober.target}: no stable owner within {timeout:.0f}s "
                    f"(usually {self.node(self.expected_owner)})"
                )
            relaxed = self.expected_owner is None or elapsed > timeout / 2
            owner = prober.wait_stable(3.0 if relaxed else window, min(1.0, timeout - elapsed))
            if owner is not None and (relaxed or owner == self.expected_owner):
                self.expected_owner = owner
                return owner

    def run_variant(self, name: str, n: int, one: Any) -> None:
        """n valid trials of one variant (at most n extra attempts), counting takeovers in the logs.

        A trial where the new owner answered before the old owner's link even went down was not a
        failover caused by the kill (a spurious takeover was under way), and one where the link went
        down more than ``MAX_LINK_DOWN_MS`` after the kill was not a clean node death (the old node
        kept answering meanwhile): both are kept under ``discarded_trials`` and repeated.
        """
        out = self.trials.setdefault(name, [])
        self.expected_owner = None
        logs = sorted((self.sd / "logs").glob("speaker-*.log")) + sorted(
            (self.sd / "keepalived").glob("*/*/keepalived.log")
        )
        sizes = {f: f.stat().st_size for f in logs}
        try:
            for attempt in range(2 * n):
                if len(out) >= n:
                    break
                res = one()
                res.update(variant=name, trial=len(out), attempt=attempt, nodes=self.nodes)
                early = res.get("first_new_ms") is not None and res["first_new_ms"] < res["link_down_ms"]
                slow = res["link_down_ms"] > MAX_LINK_DOWN_MS
                if early or slow:
                    res["discarded"] = (
                        "the new owner answered before the old owner's link went down"
                        if early
                        else f"eth0 went down {res['link_down_ms']} ms after the kill (rtnl contention?): "
                        "the node did not die at once"
                    )
                    self.discarded.append(res)
                    say(f"{name}: attempt {attempt} discarded: {res['discarded']}")
                    continue
                out.append(res)
                say(
                    f"{name} #{res['trial']}: {res['killed']} -> {res['new_owner']} gap {res['gap_ms']} ms "
                    f"(detect {res.get('detect_ms')}, owned {res.get('owned_ms')}, "
                    f"first reply {res.get('first_new_ms')})"
                )
        finally:
            self.churn[name] = churn(sizes, len(out), keepalived=name.startswith("keepalived"))


def run(args: argparse.Namespace, result: dict[str, Any]) -> None:
    """The whole benchmark; fills result."""
    n = args.trials
    wait_for_free_lab(args.wait_lab)
    topo = Topology(nodes=3, state_dir=args.out / "failover-lab")
    probers: list[Prober] = []
    ka: Keepalived | None = None
    bench: list[Bench] = []
    say("lab up")
    up(topo, fresh=True)
    try:
        kube = Kube.from_kubeconfig(str(topo.kubeconfig))
        for obj in bootstrap.load_manifests(bootstrap.SAMPLES_DIR / "lab.yaml"):
            apply(kube, obj)
        kube.create(SERVICES, bootstrap.demo_service("failover"), namespace="default")
        kube.create(ENDPOINTSLICES, bootstrap.demo_endpoints(topo, "failover"), namespace="default")
        vip = bootstrap.wait_ingress(kube, "failover")[0]
        b = Bench(topo, kube)
        bench.append(b)
        result["vip"] = vip
        result["trial_details"] = b.trials  # filled as trials run: kept when a later step fails
        result["takeover_churn"] = b.churn
        result["discarded_trials"] = b.discarded
        probers.append(Prober(CLIENT_NS, vip, log=topo.state_dir / "logs" / "prober.log"))
        pr = probers[-1]
        if pr.wait_stable(1.0, 30.0) is None:
            raise LabError(f"VIP {vip}: the client gets no steady replies after 30s")
        if not args.skip_lbspeaker:
            b.run_variant("lbspeaker", n, lambda: b.speaker_trial("lbspeaker", pr, vip, api_down=False))
            b.run_variant(
                "lbspeaker_api_down", n, lambda: b.speaker_trial("lbspeaker_api_down", pr, vip, api_down=True)
            )
            say("restarting the speakers with the fast membership profile")
            b.speaker_args = ["lbspeaker.speaker.main", "--membership-interval", str(FAST["interval"]),
                              "--membership-timeout", str(FAST["timeout"])]
            for node in b.nodes:
                b.stop_speaker(node)
            t = time.time()
            for node in b.nodes:
                b.spawn_speaker(node)
            if not procs.wait_until(lambda: b.converged(t, set(b.nodes)), 30.0, 0.2):
                raise LabError("fast profile: speakers did not converge")
            if pr.wait_stable(1.5, 20.0) is None:
                raise LabError("fast profile: speakers did not converge")
            b.run_variant("lbspeaker_fast", n, lambda: b.speaker_trial("lbspeaker_fast", pr, vip, api_down=False))
        pr.stop()
        say("stopping the speakers for the keepalived trials")
        for node in b.nodes:
            b.stop_speaker(node)
        probers.append(Prober(CLIENT_NS, KA_VIP, log=topo.state_dir / "logs" / "prober-keepalived.log"))
        pk = probers[-1]
        for profile in ("default", "fast"):
            ka = Keepalived(topo.state_dir, [(m.name, m.ns) for m in topo.node_members], profile)
            ka.start_all()
            b.stable_window = 1.0 if profile == "default" else 0.5
            if not procs.wait_until(lambda k=ka: k.holders() == [b.nodes[0]], 30.0, 0.1):
                raise LabError(f"keepalived {profile}: {b.nodes[0]} not master 30s after start")
            b.run_variant(f"keepalived_{profile}", n, functools.partial(b.keepalived_trial, ka, pk))
            ka.stop_all()
            ka = None
    finally:
        for p in probers:
            p.stop()
        for b_ in bench:
            b_.close()
        if ka is not None:
            ka.stop_all()
        procs.reap()
        with_api = procs.recorded_pids(topo.state_dir).get("apiserver")
        if with_api is not None and procs.alive(with_api):
            os.kill(with_api, signal.SIGCONT)
        say("lab down")
        down(topo)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--quick", action="store_true", help="3 trials per variant (smoke run)")
    ap.add_argument("--wait-lab", type=float, default=900.0, help="max seconds to wait for another lab")
    ap.add_argument("--out", type=lambda v: Path(v).resolve(), default=OUT, help="output folder (bench/out)")
    ap.add_argument("--skip-lbspeaker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quick:
        args.trials = 3
    if os.geteuid() != 0:
        print(json.dumps({"error": "needs root (network namespaces)"}))
        return 2
    result: dict[str, Any] = {
        "trials": args.trials,
        "probe_interval_ms": 10,
        "nodes": 3,
        "membership_default_ms": {
            "interval": membership.DEFAULT_INTERVAL * 1000,
            "timeout": membership.DEFAULT_TIMEOUT * 1000,
        },
        "membership_fast_ms": {k: v * 1000 for k, v in FAST.items()},
        "keepalived": {"default": "VRRPv2 advert_int 1", "fast": "VRRPv3 advert_int 0.01"},
        "loadavg_start": os.getloadavg(),
    }
    rc = 0
    try:
        run(args, result)
    except Exception as err:  # report what failed in the JSON, after the finally cleaned up
        result["error"] = f"{type(err).__name__}: {err}"
        rc = 1
    result["loadavg_end"] = os.getloadavg()
    report(result, out=args.out, repo=REPO)
    args.out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, sort_keys=False)
    (args.out / "failover.json").write_text(json.dumps(result, indent=1) + "\n")
    print(text)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())

"""The pool-typo outage, reproduced as the user met it, must not happen: last good config everywhere.

One typo in a live pool (a reversed range appended with ``kubectl patch``) used to take every VIP
of that pool off the network: the controller kept its last good config, every speaker dropped the
pool. Here the same patch is applied while a client resolves the VIP afresh (ARP entry flushed
before every probe): the VIP keeps answering, and the error shows, naming object and field, in
every component's ConfigurationState, an Event, the config gauges and ``lbctl explain``. A
restarted speaker keeps the last good version (seeded from its ConfigurationState).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from lbspeaker.core.errors import ApiError
from lbspeaker.k8s.client import CONFIGURATION_STATES, EVENTS
from lbspeaker.lab import procs
from lbspeaker.lab.lab import CONTROLLER_METRICS
from tests.netns.lab_fixture import SPEAKER_NS, LabView, running_lab, wait_for

pytestmark = [pytest.mark.netns, pytest.mark.slow]

TYPO = '{"spec":{"addresses":["192.0.2.200-192.0.2.250","192.0.2.40-192.0.2.10"]}}'
GOOD = '{"spec":{"addresses":["192.0.2.200-192.0.2.250"]}}'
FIELD = "spec.addresses[1]"


@pytest.fixture(scope="module")
def view(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabView]:
    with running_lab(tmp_path_factory.mktemp("cfg"), prefix="lbt-cfg-", mgmt_index=11, config=[]) as v:
        v.wait_settled()
        yield v


def kubectl(view: LabView, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(view.topo.kubeconfig)}
    return subprocess.run(["kubectl", *args], capture_output=True, text=True, timeout=60, env=env, check=False)


def states(view: LabView) -> dict[str, dict[str, Any]]:
    try:
        items, _ = view.kube.list(CONFIGURATION_STATES, SPEAKER_NS)
    except ApiError:
        return {}
    return {str(o["metadata"]["name"]): o.get("status") or {} for o in items}


def all_states(view: LabView, result: str) -> bool:
    want = {"controller", *(f"speaker-{m.name}" for m in view.topo.node_members)}
    got = states(view)
    return want <= set(got) and all(got[n].get("result") == result for n in want)


def controller_metric(view: LabView, name: str) -> float:
    out = subprocess.run(["ip", "netns", "exec", view.topo.api.ns, sys.executable, "-c",
                          "import urllib.request;print(urllib.request.urlopen("
                          f"'http://127.0.0.1:{CONTROLLER_METRICS}/metrics',timeout=3).read().decode())"],
                         capture_output=True, text=True, timeout=20, check=True).stdout
    return sum(float(ln.rsplit(" ", 1)[1]) for ln in out.splitlines() if ln.startswith(name + "{"))


def answered_throughout(view: LabView, vip: str, node: str, seconds: float) -> list[list[str]]:
    """Probe the VIP every 100 ms for ``seconds`` with the client's neighbour entry flushed; the misses."""
    misses = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        subprocess.run(["ip", "-n", view.topo.client.ns, "neigh", "flush", "dev", "eth0"], check=False)
        got = view.answerers(vip, timeout=0.1)
        if got != [node]:
            misses.append(got)
    return misses


def test_pool_typo_keeps_vip_answered_and_reports_everywhere(view: LabView) -> None:
    view.service("typo-web")
    (vip,) = view.ingress("typo-web")
    node = view.wait_sole_answerer(vip)
    assert wait_for(lambda: all_states(view, "Valid"), 20), states(view)
    assert view.fetch(vip) == f"hello from {node}"

    p = kubectl(view, "patch", "ipaddresspool", "lab", "-n", SPEAKER_NS, "--type", "merge", "-p", TYPO)
    if p.returncode != 0:  # refused at admission: name object and field, nothing changed
        assert "IPAddressPool 'lab'" in p.stderr and FIELD in p.stderr, p.stderr
        return
    # positive signal first: every component has judged the edit
    assert wait_for(lambda: all_states(view, "Stale"), 20), states(view)
    misses = answered_throughout(view, vip, node, 3.0)
    assert misses == [], f"VIP {vip} not answered by {node} while the typo was live: {misses[:5]}"
    assert view.fetch(vip) == f"hello from {node}"
    for name, st in states(view).items():
        (err,) = st["errors"]
        assert (err["kind"], err["name"], err["field"], err["inForce"]) == ("IPAddressPool", "lab", FIELD, True), name
        assert "192.0.2.40-192.0.2.10" in err["message"] and st["lastGood"][0]["name"] == "lab"
    events, _ = view.kube.list(EVENTS, SPEAKER_NS, field_selector="involvedObject.name=lab")
    assert any(e.get("reason") == "InvalidConfig" and FIELD in str(e.get("message")) for e in events), events
    assert all(view.metric(m.name, "lbspeaker_config_stale") == 1 for m in view.topo.node_members)
    assert controller_metric(view, "lbspeaker_config_stale") == 1
    explain = subprocess.run([sys.executable, "-m", "lbspeaker.cli.main", "explain", "default/typo-web",
                              "--kubeconfig", str(view.topo.kubeconfig)],
                             capture_output=True, text=True, timeout=60, check=False).stdout
    assert "invalid edit ignored; last good config in force" in explain and FIELD in explain, explain
    assert f"holds {vip} from pool 'lab'" in explain, explain

    # the owner's speaker restarts while the typo is live: it keeps the last good pool (seeded)
    pid = procs.recorded_pids(view.topo.state_dir)[f"speaker-{node}"]
    os.kill(pid, 15)
    assert wait_for(lambda: not procs.alive(pid), 15)
    view.respawn_speaker(node)
    assert view.wait_sole_answerer(vip) == node
    assert answered_throughout(view, vip, node, 1.5) == []
    assert "configstate_seeded" in procs.log_tail(view.topo.state_dir, f"speaker-{node}", lines=400)

    fixed = kubectl(view, "patch", "ipaddresspool", "lab", "-n", SPEAKER_NS, "--type", "merge", "-p", GOOD)
    assert fixed.returncode == 0, fixed.stderr
    assert wait_for(lambda: all_states(view, "Valid"), 20), states(view)
    assert all(view.metric(m.name, "lbspeaker_config_stale") == 0 for m in view.topo.node_members)
    assert view.ingress("typo-web") == [vip]

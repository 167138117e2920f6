"""bench/e2e.py --quick runs end to end on its own ``lbb-`` cluster and prints sane JSON.

Named to run last (pytest takes files alphabetically): the bench brings up a second real cluster,
heavy beside the session's ``lbr-`` one. Uses no fixture of conftest.py; asserts no wall time.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lbspeaker.lab.realk8s import cluster
from lbspeaker.lab.realk8s.shape import Cluster

pytestmark = [pytest.mark.netns, pytest.mark.slow]

BENCH = Path(__file__).resolve().parents[2] / "bench" / "e2e.py"
# the bench's own cluster (bench/e2e.py PREFIX, mgmt_index, STATE_DIR): removed here only if the bench could not
BENCH_CLUSTER = Cluster(prefix="lbb-", mgmt_index=9, state_dir=Path("/var/tmp/lbspeaker-realk8s-bench"))


def run_quick() -> tuple[int, str, str]:
    """bench/e2e.py --quick; on overrun SIGTERM (the bench then removes its cluster), then SIGKILL + down."""
    p = subprocess.Popen([sys.executable, str(BENCH), "--quick"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        out, err = p.communicate(timeout=220)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGTERM)
        try:
            out, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            cluster.down(BENCH_CLUSTER)
        err += "\n(test: bench/e2e.py --quick overran 220 s: SIGTERM sent)"
    return p.returncode, out, err


def test_bench_e2e_quick() -> None:
    rc, stdout, stderr = run_quick()
    assert rc == 0, stderr[-3000:]
    out = json.loads(stdout)
    assert "error" not in out, out["error"]
    assert out["nodes"] == 3 and out["nics"] == 1
    assert out["cluster_up_s"] > 0 and out["install_s"] > 0
    assert len(out["load_average_start"]) == 3
    create = out["create_to_first_request"]
    assert len(out["create_trials"]) == out["services"] >= 1
    for key in ("total_ms", "apply_to_ip_ms", "ip_to_ok_ms"):
        assert create[key]["n"] == out["services"]
        assert 0 < create[key]["p50"] <= create[key]["p99"] <= create[key]["max"]
    for tr in out["create_trials"]:
        assert tr["ip"].startswith("192.0.2.")
        assert tr["total_ms"] >= tr["apply_to_ip_ms"] > 0
    fo = out["failover"]
    assert len(fo["trials"]) == out["failover_trials"] >= 1
    assert fo["all_recovered"] is True
    assert fo["gap_ms"]["n"] == out["failover_trials"]
    for tr in fo["trials"]:
        assert tr["recovered"] and tr["gap_ms"] > 0
        assert tr["new_owner"] in ("node1", "node2", "node3") and tr["new_owner"] != tr["killed"]

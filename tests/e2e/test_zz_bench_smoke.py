"""bench/e2e.py --quick runs end to end on its own ``lbb-`` cluster and prints sane JSON.

Named to run last (pytest takes files alphabetically): the bench brings up a second real cluster,
heavy beside the session's ``lbr-`` one. Uses no fixture of conftest.py; asserts no wall time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.netns, pytest.mark.slow]

BENCH = Path(__file__).resolve().parents[2] / "bench" / "e2e.py"


def test_bench_e2e_quick() -> None:
    p = subprocess.run([sys.executable, str(BENCH), "--quick"], capture_output=True, text=True, timeout=290,
                       check=False)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout)
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

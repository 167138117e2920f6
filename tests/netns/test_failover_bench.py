"""Smoke test of bench/failover.py --quick: valid JSON, every key, every trial recovered.

No wall-time assertions (figures are the benchmark's business, docs/failover.md); what is asserted
could fail: a trial whose replies never resumed has ``recovered: false`` and no gap, a crashed run
has ``error``. The benchmark brings the netns lab up and down itself (it waits while another lab
is up), so this test owns no namespaces.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.netns, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
VARIANTS = ("lbspeaker", "lbspeaker_api_down", "lbspeaker_fast", "keepalived_default", "keepalived_fast")
KEYS = (
    "lbspeaker_gap_ms_p50",
    "lbspeaker_gap_ms_p99",
    "lbspeaker_api_down_gap_ms_p99",
    "keepalived_default_gap_ms_p50",
    "keepalived_default_gap_ms_p99",
    "keepalived_fast_gap_ms_p99",
    "lbspeaker_fast_gap_ms_p99",
    "trials",
)


@pytest.mark.timeout(1500)
def test_failover_bench_quick(tmp_path: Path) -> None:
    p = subprocess.run(
        [sys.executable, str(REPO / "bench" / "failover.py"), "--quick", "--wait-lab", "600", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=1400,
        cwd=REPO,
        check=False,
    )
    lines = p.stdout.strip().splitlines()
    assert lines, f"no output; stderr:\n{p.stderr[-3000:]}"
    result = json.loads(lines[-1])
    assert "error" not in result, f"{result['error']}\nstderr:\n{p.stderr[-3000:]}"
    assert p.returncode == 0
    for key in KEYS:
        assert key in result, key
    assert result["trials"] == 3
    for variant in VARIANTS:
        trials = result["trial_details"][variant]
        assert len(trials) == 3, variant
        for t in trials:
            assert t["recovered"], f"{variant} trial {t['trial']}: replies never resumed: {t}"
            assert t["gap_ms"] is not None and t["gap_ms"] > 0
            assert t["new_owner"] != t["killed"], t  # another node answered after the failure
        assert result[f"{variant}_gap_ms_p99"] is not None, variant
    assert (REPO / result["plot"]).is_file()  # absolute when outside the repository
    assert json.loads((tmp_path / "failover.json").read_text())["trials"] == 3

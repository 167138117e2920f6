"""``lbctl lab down`` removes every namespace and process, also after a crashed ``up``; idempotent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lbspeaker.lab.netns import add_namespace, list_namespaces, pids_in
from lbspeaker.lab.procs import wait_until

pytestmark = pytest.mark.netns

PREFIX = "lbt-down-"  # a private lab name: never touches the user's lab (lbk-)
NODE = PREFIX + "node1"


def _lbctl(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LBS_LAB_DIR": str(tmp_path), "LBS_LAB_PREFIX": PREFIX, "LBS_LAB_MGMT_INDEX": "2"}
    return subprocess.run([sys.executable, "-m", "lbspeaker.cli.main", "lab", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_down_cleans_up_after_a_crashed_up(tmp_path: Path) -> None:
    # what a crashed `up` leaves: a lab namespace with a process in it, no pid file
    add_namespace(NODE)
    sleeper = subprocess.Popen(["ip", "netns", "exec", NODE, "sleep", "300"], start_new_session=True)
    try:
        assert wait_until(lambda: bool(pids_in(NODE)), 10)  # `ip netns exec` needs a moment to enter
        r = _lbctl(tmp_path, "down")
        assert r.returncode == 0, r.stderr
        assert list_namespaces(PREFIX) == []
        assert sleeper.wait(timeout=10) is not None
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
        subprocess.run(["ip", "netns", "del", NODE], capture_output=True, check=False)


def test_down_is_idempotent(tmp_path: Path) -> None:
    for _ in range(2):
        r = _lbctl(tmp_path, "down")
        assert r.returncode == 0, r.stderr
        assert "lab is down" in r.stdout
    assert list_namespaces(PREFIX) == []

"""The real cluster for the e2e suite: Kubernetes 1.20 from Debian, lbspeaker installed like a user does.

One session-wide cluster (VirtualBox-shaped nodes: NAT NIC enp0s3 + host-only LAN NIC enp0s8,
BGP router and WAN client), brought up from the cached build, with the image built from this
checkout; always removed at the end, also on failure. Nothing here skips: a missing build or a
failing bring-up fails the suite (CI is root and builds everything in scripts/test.sh).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from lbspeaker.lab.realk8s import cluster, install
from lbspeaker.lab.realk8s.shape import Cluster

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("e2e tests need root (CI runs as root); run: sudo bash scripts/test.sh")


def _build_image() -> None:
    p = subprocess.run(["bash", str(ROOT / "scripts" / "build-image.sh")], capture_output=True, text=True,
                       timeout=900, check=False)
    if p.returncode != 0:
        pytest.fail(f"scripts/build-image.sh failed (exit {p.returncode}):\n{p.stderr[-3000:]}")


@pytest.fixture(scope="package")
def real() -> Iterator[Cluster]:
    """The running real cluster with lbspeaker installed (kubectl apply -k config/default)."""
    if os.geteuid() != 0:
        pytest.fail("e2e tests need root")
    _build_image()
    c = Cluster(nodes=3, mode="both", nics=2)
    log: list[str] = []
    try:
        cluster.up(c, say=log.append)
        install.install(c, say=log.append)
    except BaseException as err:
        cluster.down(c, keep_state=True)
        pytest.fail(f"real cluster bring-up failed: {err}\n" + "\n".join(log[-20:]))
    try:
        yield c
    finally:
        cluster.down(c, keep_state=bool(os.environ.get("LBS_E2E_KEEP_LOGS")))

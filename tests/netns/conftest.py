"""Shared guards for root-only tests: they run in CI (root); elsewhere they fail loudly, not skip."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _need_root(request: pytest.FixtureRequest) -> None:
    if os.geteuid() != 0:
        pytest.fail("netns tests need root (CI runs as root); run: sudo bash scripts/test.sh")

"""Fixtures for the BGP interop tests: a lab that always removes what it built."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.netns.bgp.peers import Lab


def _need(*tools: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    missing = [t for t in tools if shutil.which(t) is None and not os.path.exists(t)]
    if missing:
        pytest.skip(f"missing {', '.join(missing)} (apt-get install bird2 frr)")


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A fresh lab; torn down also when the test fails."""
    _need("ip", "bird", "birdc", "/usr/lib/frr/bgpd")
    lab = Lab()
    try:
        yield lab
    finally:
        lab.close()

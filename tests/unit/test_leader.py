"""Lease leader election against the embedded API server: one leader, takeover, release."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lbspeaker.apiserver.server import EmbeddedServer
from lbspeaker.k8s.client import LEASES, Kube
from lbspeaker.runtime.leader import LeaderElector, LeaderSettings


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[Kube]:
    srv = EmbeddedServer(host="127.0.0.1", port=0)
    srv.start()
    try:
        srv.write_kubeconfig(str(tmp_path / "kc"))
        yield Kube.from_kubeconfig(str(tmp_path / "kc"))
    finally:
        srv.stop()


class Candidate:
    def __init__(self, kube: Kube, identity: str) -> None:
        self.events: list[str] = []
        self.elector = LeaderElector(
            kube, LeaderSettings("ctl", "default", identity, lease_duration=1.0, renew_deadline=0.6,
                                 retry_period=0.1),
            on_start=lambda: self.events.append("start"), on_stop=lambda: self.events.append("stop"))


def _wait(pred: object, timeout: float = 10.0) -> bool:
    assert callable(pred)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not pred():
        time.sleep(0.02)
    return bool(pred())


def test_exactly_one_leader_and_takeover_after_crash(kube: Kube) -> None:
    a, b = Candidate(kube, "a"), Candidate(kube, "b")
    a.elector.start()
    assert _wait(lambda: a.elector.leading)
    b.elector.start()
    samples = []
    for _ in range(30):  # 0.6 s of samples: never two leaders
        samples.append((a.elector.leading, b.elector.leading))
        time.sleep(0.02)
    assert all(x and not y for x, y in samples)
    # crash a: stop its loop without releasing the Lease
    a.elector._stop.set()
    a.elector._thread.join(timeout=5)
    assert _wait(lambda: b.elector.leading)
    assert kube.get(LEASES, "ctl", "default")["spec"]["holderIdentity"] == "b"
    assert kube.get(LEASES, "ctl", "default")["spec"]["leaseTransitions"] == 1
    b.elector.stop()


def test_release_lets_standby_take_over_at_once(kube: Kube) -> None:
    a, b = Candidate(kube, "a"), Candidate(kube, "b")
    a.elector.start()
    assert _wait(lambda: a.elector.leading)
    b.elector.start()
    time.sleep(0.3)
    assert not b.elector.leading
    a.elector.stop()  # graceful: releases the Lease
    assert _wait(lambda: b.elector.leading, timeout=3.0)
    b.elector.stop()


def test_only_one_wins_a_race_for_an_expired_lease(kube: Kube) -> None:
    cands = [Candidate(kube, f"c{i}") for i in range(4)]
    winners: list[str] = []
    lock = threading.Lock()

    def attempt(c: Candidate) -> None:
        if c.elector.try_acquire_or_renew():
            with lock:
                winners.append(c.elector.s.identity)

    threads = [threading.Thread(target=attempt, args=(c,)) for c in cands]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1
    assert kube.get(LEASES, "ctl", "default")["spec"]["holderIdentity"] == winners[0]

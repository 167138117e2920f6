"""A work queue of object keys for one worker: deduplicated, with delayed re-adds for backoff.

Invariant: a key is queued at most once; a key added while queued is not duplicated, so a
burst of watch events for one Service costs one reconcile.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque


class WorkQueue:
    """FIFO of unique keys plus a timer heap for ``add_after``."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque[str] = deque()
        self._queued: set[str] = set()
        self._delayed: list[tuple[float, str]] = []

    def add(self, key: str) -> None:
        """Queue key unless already queued."""
        with self._cond:
            if key not in self._queued:
                self._queued.add(key)
                self._queue.append(key)
                self._cond.notify()

    def add_after(self, key: str, delay: float) -> None:
        """Queue key after delay seconds."""
        with self._cond:
            heapq.heappush(self._delayed, (time.monotonic() + delay, key))
            self._cond.notify()

    def _promote(self, now: float) -> None:
        while self._delayed and self._delayed[0][0] <= now:
            _, key = heapq.heappop(self._delayed)
            if key not in self._queued:
                self._queued.add(key)
                self._queue.append(key)

    def get(self, timeout: float) -> str | None:
        """The next key, or None after timeout seconds without one."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                now = time.monotonic()
                self._promote(now)
                if self._queue:
                    key = self._queue.popleft()
                    self._queued.discard(key)
                    return key
                if now >= deadline:
                    return None
                wait = deadline - now
                if self._delayed:
                    wait = min(wait, max(0.0, self._delayed[0][0] - now))
                self._cond.wait(wait)

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue)

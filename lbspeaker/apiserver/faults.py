"""Fault injection for tests: the same switches from Python (``srv.faults``) and over HTTP.

HTTP form: ``POST /lbspeaker-admin/faults`` with a JSON object of any of ``closeWatches`` (bool),
``expireNextWatches`` (int), ``latencyMs`` (int), ``failNextWrites`` ({"count": N, "code":
409|500|503}), ``blackoutSeconds`` (float), ``clear`` (bool); ``GET`` returns the current state.

Blackout semantics: while a blackout lasts, the server accepts connections and reads requests but
never answers; when it ends, every request held meanwhile has its connection closed without a
reply, and every watch that was open (frozen, sending nothing) is dropped the same way, like a
peer that vanished. Requests arriving after the end are served normally.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from lbspeaker.apiserver.status import ApiStatusError
from lbspeaker.apiserver.store import Store

JsonObj = dict[str, Any]
_WRITE_REASONS = {
    409: "the object has been modified; please apply your changes to the latest version and try again (injected fault)",
    500: "Internal error occurred: injected fault",
    503: "the server is currently unable to handle the request (injected fault)",
}
MAX_BLACKOUT = 600.0


class Faults:
    """Test hooks; every method is thread-safe and effective at once."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        self.expire_watches = 0
        self.latency_ms = 0
        self.fail_writes = 0
        self.fail_code = 503
        self.blackout_until = 0.0

    def close_watches(self) -> int:
        """Close every open watch now (clients see the stream end); returns how many."""
        return self._store.close_watchers()

    def expire_next_watches(self, count: int) -> None:
        """Answer the next ``count`` watch requests with a single 410 Expired ERROR event."""
        with self._lock:
            self.expire_watches = max(0, int(count))

    def set_latency(self, ms: int) -> None:
        """Delay every request by ``ms`` milliseconds (0 disables)."""
        with self._lock:
            self.latency_ms = max(0, int(ms))

    def fail_next_writes(self, count: int, *, code: int = 503) -> None:
        """Fail the next ``count`` writes (create/update/patch/delete) with 409, 500 or 503."""
        if code not in _WRITE_REASONS:
            raise ValueError(f"injecting write failures: code {code}: must be 409, 500 or 503")
        with self._lock:
            self.fail_writes = max(0, int(count))
            self.fail_code = code

    def blackout(self, seconds: float) -> None:
        """Stop answering for ``seconds`` (see the module docstring for what clients observe)."""
        with self._lock:
            self.blackout_until = time.monotonic() + min(max(0.0, float(seconds)), MAX_BLACKOUT)

    def clear(self) -> None:
        """Remove every fault."""
        with self._lock:
            self.expire_watches = self.latency_ms = self.fail_writes = 0
            self.blackout_until = 0.0

    # ---- used by the HTTP layer -------------------------------------------------------------
    def blackout_left(self) -> float:
        """Seconds of blackout remaining (0 when none)."""
        return max(0.0, self.blackout_until - time.monotonic())

    def take_expire(self) -> bool:
        """Consume one forced 410 if any is pending."""
        with self._lock:
            if self.expire_watches > 0:
                self.expire_watches -= 1
                return True
            return False

    def take_write_failure(self) -> ApiStatusError | None:
        """Consume one forced write failure if any is pending."""
        with self._lock:
            if self.fail_writes <= 0:
                return None
            self.fail_writes -= 1
            code = self.fail_code
        return ApiStatusError(code, _WRITE_REASONS[code])

    def state(self) -> JsonObj:
        """The current fault switches."""
        with self._lock:
            return {
                "expireNextWatches": self.expire_watches,
                "latencyMs": self.latency_ms,
                "failNextWrites": {"count": self.fail_writes, "code": self.fail_code},
                "blackoutSeconds": round(self.blackout_left(), 3),
            }

    def apply(self, body: Any) -> JsonObj:
        """Apply the JSON form (admin endpoint); returns the new state plus what was done."""
        if not isinstance(body, dict):
            raise ApiStatusError(400, "faults: body must be a JSON object")
        done: JsonObj = {}
        try:
            if body.get("clear"):
                self.clear()
            if body.get("closeWatches"):
                done["closedWatches"] = self.close_watches()
            if "expireNextWatches" in body:
                self.expire_next_watches(int(body["expireNextWatches"]))
            if "latencyMs" in body:
                self.set_latency(int(body["latencyMs"]))
            if "failNextWrites" in body:
                fw = body["failNextWrites"]
                fw = fw if isinstance(fw, dict) else {"count": fw}
                self.fail_next_writes(int(fw.get("count", 1)), code=int(fw.get("code", 503)))
            if "blackoutSeconds" in body:
                self.blackout(float(body["blackoutSeconds"]))
        except (TypeError, ValueError) as err:
            raise ApiStatusError(400, f"faults: {err}") from err
        return {**self.state(), **done}

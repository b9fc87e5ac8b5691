"""Single-flight: concurrent callers asking for one key in one process share one computation.

The first caller (the leader) runs the function; callers arriving while it runs wait and receive
its result, or its exception. Nothing is remembered after the call ends (no result caching here).
The function receives ``close()``: once it is called, later callers start a new flight instead of
joining this one (a leader closes its flight once no later caller may take its result).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Call", "SingleFlight"]


class Call:
    """One computation in flight: its outcome, and how many callers wait for it."""

    __slots__ = ("done", "error", "value", "waiters")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None
        self.waiters = 0

    def result(self) -> Any:
        """Wait for the outcome: the value, or the leader's exception raised again."""
        self.done.wait()
        if self.error is not None:
            raise self.error
        return self.value


class SingleFlight:
    """Per-key deduplication of concurrent calls (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, Call] = {}

    def do(self, key: str, fn: Callable[[Callable[[], None]], Any]) -> tuple[Any, bool]:
        """Run ``fn`` once for all concurrent callers of ``key``: ``(result, True if this caller ran it)``."""
        with self._lock:
            call = self._calls.get(key)
            if call is None:
                call = self._calls[key] = Call()
                leader = True
            else:
                call.waiters += 1
                leader = False
        if leader:
            return self.run(key, call, fn), True
        return call.result(), False

    def claim(self, key: str) -> Call | None:
        """Become the leader of ``key`` without running yet (background refresh); None if taken."""
        with self._lock:
            if key in self._calls:
                return None
            call = self._calls[key] = Call()
            return call

    def run(self, key: str, call: Call, fn: Callable[[Callable[[], None]], Any]) -> Any:
        """As the leader of ``call``: run ``fn(close)``, hand its outcome to the waiters, return/raise it."""

        def close() -> None:
            with self._lock:
                if self._calls.get(key) is call:
                    del self._calls[key]

        try:
            call.value = fn(close)
        except BaseException as exc:
            call.error = exc
            raise
        finally:
            close()
            call.done.set()
        return call.value

    def waiting(self, key: str) -> int:
        """How many callers wait for the call in flight for ``key`` (0 if none): an observable that
        lets tests release a compute once every caller has joined, without sleeping."""
        with self._lock:
            call = self._calls.get(key)
            return call.waiters if call is not None else 0

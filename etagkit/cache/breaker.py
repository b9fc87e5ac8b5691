"""A circuit breaker for the remote store, so that a dead or slow Redis costs nothing per request.

``closed`` (normal) → after ``failure_threshold`` consecutive failures → ``open``: callers are refused
at once, without touching the network → after ``reset_timeout`` seconds on the injected timer →
``half_open``: exactly one caller is let through as a probe; its success closes the breaker, its
failure opens it again for another ``reset_timeout``.

It logs one line per state change (issue 13: not one per refused call): WARNING when it opens,
INFO when it closes again; a failed half-open probe (open again) is DEBUG.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Literal

from .._config import number, positive_int

__all__ = ["BreakerState", "CircuitBreaker"]

BreakerState = Literal["closed", "open", "half_open"]

log = logging.getLogger("etagkit.cache.breaker")


class CircuitBreaker:
    """Thread-safe breaker: ``allow()`` before a call, then ``record_success()`` or ``record_failure()``."""

    def __init__(
        self,
        *,
        failure_threshold: int = 3,
        reset_timeout: float = 2.0,
        timer: Callable[[], float] = time.monotonic,
        name: str = "store",
    ) -> None:
        self.name = name
        self.failure_threshold = positive_int("failure_threshold", failure_threshold)
        self.reset_timeout = number("reset_timeout", reset_timeout, positive=True)
        self._timer = timer
        self._lock = threading.Lock()
        self._state: BreakerState = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False
        self.opened_count = 0  # how many times it opened (for stats/metrics)

    @property
    def state(self) -> BreakerState:
        """``closed``, ``open`` or ``half_open`` (an open breaker whose timeout ran out reads half_open)."""
        with self._lock:
            if self._state == "open" and self._timer() - self._opened_at >= self.reset_timeout:
                return "half_open"
            return self._state

    def allow(self) -> bool:
        """May a call go to the remote now? False while open, and for all but one probe when half-open."""
        state: BreakerState = self._state
        if state == "closed":  # the hot path: one attribute read, no lock
            return True
        with self._lock:
            if self._state == "closed":
                return True
            if self._state == "open":
                if self._timer() - self._opened_at < self.reset_timeout:
                    return False
                self._state = "half_open"
                self._probing = False
            if self._probing:
                return False
            self._probing = True
            return True

    def record_success(self) -> None:
        """A call succeeded: reset the failure count and close the breaker."""
        state: BreakerState = self._state
        if state == "closed" and not self._failures:  # the hot path: nothing to reset
            return
        with self._lock:
            reopened = self._state != "closed"
            self._state = "closed"
            self._failures = 0
            self._probing = False
        if reopened:
            log.info("circuit breaker of %s closed: the store answers again", self.name)

    def record_failure(self) -> None:
        """A call failed: count it; open on the threshold, or at once if it was the half-open probe."""
        with self._lock:
            self._failures += 1
            if not (self._state == "half_open" or self._failures >= self.failure_threshold):
                return
            first = self._state == "closed"
            if self._state != "open":
                self.opened_count += 1
            self._state = "open"
            self._opened_at = self._timer()
            self._probing = False
        if first:
            log.warning(
                "circuit breaker of %s open after %d failures: store calls are refused for %ss at a time",
                self.name,
                self.failure_threshold,
                self.reset_timeout,
            )
        else:
            log.debug("circuit breaker of %s: the probe failed, open again", self.name)

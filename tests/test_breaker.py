"""The circuit breaker: consecutive failures open it, the timer half-opens it, one probe decides."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from etagkit import ConfigurationError
from etagkit.cache.breaker import CircuitBreaker


class FakeTimer:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_only() -> None:
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout=5, timer=FakeTimer())
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    breaker.record_success()  # not consecutive any more
    for _ in range(2):
        breaker.record_failure()
    assert breaker.state == "closed" and breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open"
    assert not breaker.allow()
    assert breaker.opened_count == 1


def test_half_open_lets_exactly_one_probe_through() -> None:
    timer = FakeTimer()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=5, timer=timer)
    breaker.record_failure()
    timer.now += 4.9
    assert breaker.state == "open" and not breaker.allow()
    timer.now += 0.1
    assert breaker.state == "half_open"
    assert breaker.allow()
    assert not breaker.allow()  # a second caller while the probe runs
    breaker.record_success()
    assert breaker.state == "closed" and breaker.allow()


def test_failed_probe_reopens_for_a_full_timeout() -> None:
    timer = FakeTimer()
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout=5, timer=timer)
    breaker.record_failure()
    breaker.record_failure()
    timer.now += 5
    assert breaker.allow()
    breaker.record_failure()  # the probe failed: open again at once, not after 2 more failures
    assert breaker.state == "open" and not breaker.allow()
    timer.now += 4.99
    assert not breaker.allow()
    timer.now += 0.01
    assert breaker.allow()
    assert breaker.opened_count == 2


def test_concurrent_callers_in_half_open_get_one_probe() -> None:
    timer = FakeTimer()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=1, timer=timer)
    breaker.record_failure()
    timer.now += 1
    barrier = threading.Barrier(16)
    allowed: list[bool] = []

    def probe() -> None:
        barrier.wait()
        allowed.append(breaker.allow())

    threads = [threading.Thread(target=probe) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert allowed.count(True) == 1


@pytest.mark.parametrize(
    ("threshold", "timeout"),
    [(0, 1.0), (1.5, 1.0), (True, 1.0), ("3", 1.0), (1, 0.0), (1, -1.0), (1, float("nan")), (1, "2")],
)
def test_invalid_settings(threshold: Any, timeout: Any) -> None:
    with pytest.raises(ConfigurationError):
        CircuitBreaker(failure_threshold=threshold, reset_timeout=timeout)

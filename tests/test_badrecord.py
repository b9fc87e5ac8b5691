"""A bad stored record is logged once per interval, not once per request (issue 13.3)."""

from __future__ import annotations

import logging

import pytest

from etagkit._badrecord import BadRecordLog, report_bad_record


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_one_line_then_a_count_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    log = BadRecordLog(interval=60, timer=clock)
    with caplog.at_level(logging.WARNING, logger="etagkit.records"):
        assert log.report("validator", "etagkit:etag:abc")
        assert [log.report("validator", "etagkit:etag:abc") for _ in range(99)] == [False] * 99
        clock.now += 59.9
        assert not log.report("response", "k2")
        clock.now += 0.1
        assert log.report("response", "k3")
    lines = [r.getMessage() for r in caplog.records if r.name == "etagkit.records"]
    assert len(lines) == 2
    assert (
        lines[0].startswith("etagkit: 1 stored record(s) did not decode") and "etagkit:etag:abc" in lines[0]
    )
    assert lines[1].startswith("etagkit: 101 stored record(s)") and "a response record at key k3" in lines[1]


def test_the_process_wide_log(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="etagkit.records"):
        first = report_bad_record("validator", "k")
        second = report_bad_record("validator", "k")
    assert not second  # within the minute: counted only
    assert len(caplog.records) == int(first)

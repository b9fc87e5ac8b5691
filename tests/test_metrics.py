"""etagkit.metrics: exact counts under threads, the dict summary, valid Prometheus text, sharing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from etagkit import ConfigurationError
from etagkit.metrics import Event, Metrics


def families(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Parse exposition text back: {sample name: {sorted labels: value}}."""
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_threads_hammering_counters_give_exact_totals() -> None:
    metrics = Metrics()
    threads, rounds = 8, 2_000
    barrier = threading.Barrier(threads)

    def work(i: int) -> None:
        barrier.wait()
        for _ in range(rounds):
            metrics.response("/a", 200)
            metrics.response("/a" if i % 2 else "/b", 304, bytes_saved=10, stored=True)
            metrics.event(Event.CACHE_HIT, "/a")

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    snap = metrics.snapshot()
    n = threads * rounds
    assert snap["totals"]["responses"]["200"] == n
    assert snap["totals"]["responses"]["304"] == n
    assert snap["totals"]["bytes_saved"] == 10 * n
    assert snap["totals"]["stored_304"] == n
    assert snap["totals"]["events"] == {"cache_hit": n}
    assert snap["routes"]["/b"]["responses"]["304"] == n // 2
    assert snap["routes"]["/a"]["ratio_304_to_200"] == 0.5


def test_snapshot_ratios_buckets_and_gauges() -> None:
    metrics = Metrics()
    assert metrics.snapshot()["totals"]["ratio_304_to_200"] is None
    assert metrics.snapshot()["totals"]["cache_hit_ratio"] is None
    for status in (200, 200, 304, 304, 304, 412, 428, 404, 500, 201):
        metrics.response("/r", status, bytes_saved=7 if status == 304 else 0)
    metrics.event("cache_hit", "/r")
    metrics.event("cache_miss", "/r")
    metrics.event("cache_miss", "/r")
    metrics.event(Event.STORE_ERROR)
    metrics.set_gauge("breaker_state", 2)
    metrics.set_gauge("probe", lambda: 1.5)
    metrics.set_gauge("broken", lambda: 1 / 0)
    snap = metrics.snapshot()
    assert snap["totals"]["responses"] == {"200": 2, "304": 3, "412": 1, "428": 1, "other": 3}
    assert snap["totals"]["ratio_304_to_200"] == 1.5
    assert snap["totals"]["bytes_saved"] == 21
    assert snap["totals"]["cache_hit_ratio"] == pytest.approx(1 / 3)
    assert snap["totals"]["events"] == {"cache_hit": 1, "cache_miss": 2, "store_error": 1}
    assert set(snap["routes"]) == {"/r"}  # an event without a route is only in the totals
    assert snap["routes"]["/r"]["events"] == {"cache_hit": 1, "cache_miss": 2}
    assert snap["gauges"] == {"breaker_state": 2.0, "probe": 1.5}
    json.dumps(snap)  # JSON-ready
    metrics.reset()
    snap = metrics.snapshot()
    assert (snap["routes"], snap["gauges"], snap["totals"]["events"]) == ({}, {}, {})
    assert set(snap["totals"]["responses"].values()) == {0}


def test_prometheus_text_parses_back_with_the_right_values() -> None:
    metrics = Metrics()
    metrics.response("/books", 200)
    metrics.response("/books", 304, bytes_saved=100, stored=True)
    metrics.response("/books", 304, bytes_saved=50)
    metrics.event(Event.CACHE_HIT, "/books")
    metrics.event(Event.CACHE_MISS, "/books")
    metrics.set_gauge("breaker_state", lambda: 1)
    parsed = families(metrics.prometheus_text())
    route = (("route", "/books"),)
    assert parsed["etagkit_responses_total"] == {
        (("route", "/books"), ("status", "200")): 1.0,
        (("route", "/books"), ("status", "304")): 2.0,
    }
    assert parsed["etagkit_bytes_saved_total"] == {route: 150.0}
    assert parsed["etagkit_stored_304_total"] == {route: 1.0}
    assert parsed["etagkit_events_total"] == {
        (("event", "cache_hit"), ("route", "/books")): 1.0,
        (("event", "cache_miss"), ("route", "/books")): 1.0,
    }
    assert parsed["etagkit_ratio_304_to_200"] == {(("route", ""),): 2.0, route: 2.0}
    assert parsed["etagkit_cache_hit_ratio"] == {(("route", ""),): 0.5, route: 0.5}
    assert parsed["etagkit_breaker_state"] == {(): 1.0}


@given(st.text(max_size=30))
def test_any_route_label_is_escaped_and_round_trips(route: str) -> None:
    metrics = Metrics()
    metrics.response(route or "/", 304, bytes_saved=3)
    parsed = families(metrics.prometheus_text())
    assert parsed["etagkit_responses_total"] == {(("route", route or "/"), ("status", "304")): 1.0}


def test_bad_names_are_configuration_errors() -> None:
    metrics = Metrics()
    with pytest.raises(ConfigurationError):
        metrics.event("cache hit")
    with pytest.raises(ConfigurationError):
        metrics.set_gauge("responses_total", 1)
    with pytest.raises(ConfigurationError):
        Metrics(flush_interval=-1)


def test_share_dir_sums_workers_and_paces_writes(tmp_path: Path) -> None:
    clock = FakeClock()
    here = Metrics(share_dir=tmp_path, flush_interval=5, timer=clock)
    # another worker's file, as it would have written it
    other = {"format": 1, "counts": [["responses", "/books", "304", 4], ["bytes_saved", "/books", "", 40]]}
    (tmp_path / "999999.json").write_text(json.dumps(other))
    (tmp_path / "garbage.json").write_text("{not json")
    here.response("/books", 200)  # first call flushes (the pacing starts due)
    own = tmp_path / f"{os.getpid()}.json"
    assert json.loads(own.read_text())["counts"] == [["responses", "/books", "200", 1]]
    here.response("/books", 200)  # within the interval: not written yet
    assert json.loads(own.read_text())["counts"] == [["responses", "/books", "200", 1]]
    clock.now = 5
    here.response("/books", 304, bytes_saved=10)  # interval elapsed: written
    assert len(json.loads(own.read_text())["counts"]) == 3
    snap = here.snapshot()
    assert snap["totals"]["responses"]["200"] == 2
    assert snap["totals"]["responses"]["304"] == 5
    assert snap["totals"]["bytes_saved"] == 50
    assert snap["totals"]["ratio_304_to_200"] == 2.5
    assert (
        families(here.prometheus_text())["etagkit_responses_total"][(("route", "/books"), ("status", "304"))]
        == 5.0
    )


def test_two_real_processes_share_counts(tmp_path: Path) -> None:
    """A child process counts and exits; the parent's read includes its counts (flushed at exit)."""
    code = (
        "import sys; from etagkit.metrics import Metrics; "
        "m = Metrics(share_dir=sys.argv[1], flush_interval=3600); "
        "[m.response('/x', 304, bytes_saved=2) for _ in range(3)]"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, timeout=60)
    here = Metrics(share_dir=tmp_path)
    here.response("/x", 200)
    totals = here.snapshot()["totals"]
    assert totals["responses"]["304"] == 3
    assert totals["responses"]["200"] == 1
    assert totals["bytes_saved"] == 6


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_starts_from_zero(tmp_path: Path) -> None:
    metrics = Metrics()
    metrics.response("/x", 200)
    out = tmp_path / "child.json"
    pid = os.fork()
    if pid == 0:  # child
        try:
            metrics.response("/x", 304)
            out.write_text(json.dumps(metrics.snapshot()["totals"]["responses"]))
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert json.loads(out.read_text()) == {"200": 0, "304": 1, "412": 0, "428": 0, "other": 0}
    assert metrics.snapshot()["totals"]["responses"]["200"] == 1


def test_import_needs_no_prometheus_client() -> None:
    code = (
        "import sys; sys.modules['prometheus_client'] = None; "
        "import etagkit.metrics as m; x = m.Metrics(); x.response('/', 304); "
        "print(x.snapshot()['totals']['responses']['304']); "
        "\ntry:\n    x.prometheus_text()\nexcept ImportError as e:\n    print(e)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[0] == "1"
    assert 'pip install "etagkit[metrics]"' in out.splitlines()[1]

"""The benchmark plumbing (harness, target grammar, runner, result files) on trivial scenarios.

Timings are never asserted: only that the figures exist, are consistent with each other, and that a
broken scenario becomes an error row and a non-zero exit status instead of a crash.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root holds benchmarks/

from benchmarks import __main__ as runner
from benchmarks import _harness
from benchmarks._harness import Timing, measure, measure_loops, row, target_met


def test_measure_times_every_contender_with_a_consistent_spread() -> None:
    calls = {"a": 0, "b": 0}

    def a() -> None:
        calls["a"] += 1

    def b() -> None:
        calls["b"] += 1
        sum(range(50))

    timings = measure({"a": a, "b": b}, quick=True)
    assert set(timings) == {"a", "b"}
    for name, timing in timings.items():
        assert calls[name] > 0
        assert 0 < timing.low <= timing.median <= timing.high


def test_measure_loops_passes_the_batch_size_to_the_loop() -> None:
    sizes: list[int] = []

    def loop(n: int) -> None:
        sizes.append(n)
        for _ in range(n):
            pass

    timings = measure_loops({"only": loop}, quick=True)
    assert sizes and all(n >= 1 for n in sizes)
    assert timings["only"].median > 0


def test_the_collector_stays_on_and_every_batch_starts_with_the_young_generations_collected() -> None:
    seen: list[tuple[bool, int]] = []

    def loop(n: int) -> None:
        seen.append((gc.isenabled(), gc.get_count()[1]))  # gen 1's count: reset by a gen-1 collection
        junk = [[i] for i in range(n)]  # garbage that triggers collections of its own
        del junk

    assert gc.isenabled()
    measure_loops({"a": loop, "b": loop}, quick=True)
    assert seen and all(enabled for enabled, _ in seen)
    assert all(gen1 == 0 for _, gen1 in seen)


def test_the_clock_is_the_one_asked_for_and_the_rows_say_which(monkeypatch: pytest.MonkeyPatch) -> None:
    reads = {"cpu": 0, "wall": 0}
    ticks = {"cpu": 0.0, "wall": 0.0}

    def fake(name: str) -> Any:
        def clock() -> float:
            reads[name] += 1
            return ticks[name]

        return clock

    def loop(n: int) -> None:  # one fake microsecond per operation, on the cpu clock only
        ticks["cpu"] += n * 1e-6

    monkeypatch.setattr(_harness, "CLOCKS", {"cpu": fake("cpu"), "wall": fake("wall")})
    timings = measure_loops({"a": loop, "b": loop}, quick=True)  # the default: the thread's CPU time
    assert reads["wall"] == 0 and reads["cpu"] > 0
    assert timings["a"].clock == "cpu"
    assert timings["a"].median == pytest.approx(1e-6)
    assert row("x", timings["a"], "b", timings["b"])["clock"] == "cpu"
    with pytest.raises(ValueError, match="does not grow with n"):  # the wall clock never moved
        measure_loops({"a": loop}, quick=True, clock="wall")
    assert reads["wall"] > 0


def test_the_real_clocks_and_a_ratio_of_two_clocks_is_refused() -> None:
    assert {"cpu": time.thread_time, "wall": time.perf_counter} == _harness.CLOCKS
    wall = measure({"a": lambda: None}, quick=True, clock="wall")["a"]
    cpu = measure({"a": lambda: None}, quick=True)["a"]
    assert (wall.clock, cpu.clock) == ("wall", "cpu")
    with pytest.raises(ValueError, match="cpu time compared with wall time"):
        row("mixed", cpu, "b", wall)
    with pytest.raises(ValueError, match="unknown clock"):
        measure({"a": lambda: None}, quick=True, clock="sundial")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("target", "etagkit_s", "baseline_s", "expected"),
    [
        ("<= 2x", 1.9, 1.0, True),
        ("≤ 2\u00d7", 2.1, 1.0, False),
        (">= 50x faster", 1.0, 60.0, True),
        ("≥ 50\u00d7 faster", 1.0, 40.0, False),
        ("<= 10us added", 15e-6, 6e-6, True),
        ("≤ 10 µs added", 17e-6, 6e-6, False),
        ("<= 20us", 19e-6, 1.0, True),
        ("<= 20 µs", 21e-6, 1e-9, False),
        ("", 5.0, 1.0, None),
    ],
)
def test_target_grammar(target: str, etagkit_s: float, baseline_s: float, expected: bool | None) -> None:
    assert target_met(target, etagkit_s, baseline_s) is expected


def test_the_ratio_is_the_median_of_per_round_ratios() -> None:
    # Round 3 is slow for both sides (noise): per-round ratios are 0.5, 0.5, 0.5.
    etagkit = Timing(2.0, 1.0, 50.0, (1.0, 2.0, 50.0))
    baseline = Timing(4.0, 2.0, 100.0, (2.0, 4.0, 100.0))
    assert row("x", etagkit, "b", baseline)["ratio"] == 0.5
    assert row("x", Timing(1.0, 1.0, 1.0), "b", Timing(4.0, 4.0, 4.0))["ratio"] == 0.25  # no rounds
    assert target_met(">= 2x faster", 1.0, 1.0, ratio=0.5) is True


def test_a_loop_that_ignores_n_is_refused() -> None:
    with pytest.raises(ValueError, match="does not grow with n"):
        measure_loops({"ignores n": lambda n: None}, quick=True)


def test_a_target_that_does_not_parse_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown target"):
        target_met("about 2x", 1.0, 1.0)


def _trivial(quick: bool) -> list[dict[str, Any]]:
    timings = measure({"fast": lambda: None, "slow": lambda: sum(range(100))}, quick)
    return [
        row("trivial", timings["fast"], "sum(range(100))", timings["slow"], target="<= 1000x"),
        row("info only", timings["fast"], "sum(range(100))", timings["slow"]),
        {**row("typo", timings["fast"], "x", timings["slow"]), "target": "roughly"},
    ]


def _importer(name: str) -> Any:
    if name.endswith("boom"):
        raise ImportError("not landed")
    if name.endswith("raises"):
        return SimpleNamespace(run=lambda quick: 1 / 0)
    return SimpleNamespace(run=_trivial)


def test_run_module_rows_errors_and_met() -> None:
    rows = runner.run_module("fine", True, importer=_importer)
    by_name = {r["scenario"]: r for r in rows}
    assert by_name["trivial"]["module"] == "fine"
    assert by_name["trivial"]["ratio"] > 0
    assert by_name["trivial"]["met"] is (by_name["trivial"]["ratio"] <= 1000)
    assert by_name["info only"]["met"] is None
    assert "unknown target" in by_name["typo"]["error"]

    (failed_import,) = runner.run_module("boom", True, importer=_importer)
    assert failed_import["error"] == "ImportError: not landed"
    (raised,) = runner.run_module("raises", True, importer=_importer)
    assert raised["error"].startswith("ZeroDivisionError")


def test_main_writes_markdown_and_json_and_exit_status_reports_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(runner, "MODULES", ("fine", "boom"))
    status = runner.main(["--quick", "--out", str(tmp_path)], importer=_importer)
    assert status == 1  # the "boom" module failed to import

    printed = capsys.readouterr().out
    assert "| scenario" in printed and "ERROR" in printed
    data = json.loads((tmp_path / "last-partial.json").read_text(encoding="utf-8"))
    assert data["meta"]["quick"] is True
    assert [r["scenario"] for r in data["rows"]] == ["trivial", "info only", "typo", "boom (module)"]
    markdown = (tmp_path / "last-partial.md").read_text(encoding="utf-8")
    assert "| trivial" in markdown and "boom (module)" in markdown


def test_table_shows_speedups_and_missing_values() -> None:
    fast = Timing(1e-6, 0.9e-6, 1.2e-6)
    slow = Timing(1e-4, 0.9e-4, 1.1e-4)
    result = {**row("x", fast, "peer", slow, target=">= 50x faster", note="a footnote"), "met": True}
    count = {
        "scenario": "c",
        "etagkit_s": 1.0,
        "baseline": "one",
        "baseline_s": 1.0,
        "ratio": 1.0,
        "unit": "commands",
    }
    text = runner.table([result, {"scenario": "y", "error": "E: boom"}, count])
    assert "| 1 commands" in text
    assert text.splitlines()[0].rstrip(" |").endswith("clock")
    clocks = {line.split("|")[1].strip(): line.split("|")[-2].strip() for line in text.splitlines()[2:5]}
    assert clocks == {"x [1]": "cpu", "y": "-", "c": "-"}  # a timed row names its clock; a count does not
    assert "| x [1] " in text and text.endswith("[1] a footnote")
    assert "(100x faster)" in text
    assert "1 µs (900 ns to 1.2 µs)" in text
    assert "E: boom" in text and "ERROR" in text


def test_load_run_verdicts_can_fail() -> None:
    """The read-your-writes judge flags a read older than an acknowledged write, and only that."""
    from benchmarks.load.run_load import Ledger

    ledger = Ledger()
    ledger.acknowledged(1, 5)
    after = time.monotonic() + 1
    ledger.judge("fresh", {1: 5, 2: 1}, after, not_modified=False)
    ledger.judge("before the write", {1: 4}, 0.0, not_modified=False)  # started before: not stale
    assert ledger.stale == []
    ledger.judge("stale", {1: 4}, after, not_modified=True)
    assert ledger.stale == ["stale: 304 for book 1 v4 after v5 was acknowledged"]
    assert (ledger.reads, ledger.revalidated) == (3, 1)


def test_wrk_result_line_is_parsed() -> None:
    from benchmarks.load.run_load import parse_wrk

    line = (
        'WRK_RESULT {"statuses": {"304": 90, "502": 2}, "requests": 92, "duration_us": 2000000, '
        '"errors": {"connect": 0, "read": 1, "write": 0, "status": 2, "timeout": 0}, '
        '"latency_p50_us": 1500, "latency_p99_us": 9000}'
    )
    result = parse_wrk("Running 2s test\n" + line + "\n")
    assert result.rps == 46
    assert result.count(lambda s: s >= 500) == 2
    assert (result.p50_ms, result.p99_ms) == (1.5, 9.0)
    with pytest.raises(RuntimeError, match="no result line"):
        parse_wrk("wrk: connection refused")


def test_load_report_marks_a_nonzero_must_be_zero_figure() -> None:
    from benchmarks.load.run_load import render

    run = {"date": "d", "commit": "c", "what": "w", "stale_reads": 2, "errors": 0, "nested": {"a": 1}}
    text = render({"ryw": run})
    assert (
        "| `stale_reads` | reads older than a write that had returned when they started | 2 | NOT met |"
        in text
    )
    assert "| `errors` | failed requests | 0 | met |" in text
    assert "| `nested.a` | 1 |" in text


def test_load_report_shows_the_throughput_goal_met_or_not() -> None:
    from benchmarks.load.run_load import render

    def throughput(ratio: float, computed: int) -> str:
        run = {
            "date": "d",
            "commit": "c",
            "what": "w",
            "etagkit_vs_floor": ratio,
            "etagkit_304_not_from_store": computed,
            "errors": 0,
        }
        return render({"throughput": run})

    assert "| `etagkit_vs_floor` |" in throughput(0.4, 0) and "| 0.4 | >= 0.8 | NOT met |" in throughput(
        0.4, 0
    )
    assert "| 0.85 | >= 0.8 | met |" in throughput(0.85, 0)
    assert "| `etagkit_304_not_from_store` |" in throughput(0.85, 3)
    assert throughput(0.85, 3).count("NOT met") == 1  # a run that outlived its validators says so

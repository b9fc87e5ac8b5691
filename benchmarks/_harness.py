"""Timing for the benchmarks: warm-up, interleaved rounds, medians with min-max, ratios vs targets.

Absolute times on a shared 2-core machine are noise; the result is the *ratio* between etagkit and a
peer or floor measured in the same rounds. So every contender of a comparison runs in the same
round, one batch after the other (the order rotates each round), and each contender's figure is the
median over rounds of its per-call time in that round, with the fastest and slowest rounds beside it.

Two clocks (the ``clock`` argument of :func:`measure` and :func:`measure_loops`; every row says which
one it used, in its ``clock`` key):

* ``"cpu"`` (the default): the measuring thread's CPU time, ``time.thread_time()``. For in-process
  scenarios: time the thread spends descheduled (another process on the shared cores) is not billed
  to whichever contender happened to be running.
* ``"wall"``: ``time.perf_counter()``. For scenarios that wait on I/O (a socket to Redis or to an HTTP
  origin): the wait is part of what they cost, and the thread's CPU time would leave it out.

The garbage collector stays ON while timing: a server pays for its collections, so a contender that
allocates more pays for the collections its allocations trigger. Before each contender's batch the
young generations are collected (untimed), so every batch starts from the same collector state and no
contender is billed for the garbage of the one before; a full collection runs between rounds.

A scenario module exposes ``run(quick: bool) -> list[dict]`` whose rows have the keys
``scenario, etagkit_s, baseline, baseline_s, ratio, target`` (seconds per call; ``ratio`` is
etagkit / baseline: :func:`row` takes the median of the per-round ratios). Optional keys:
``etagkit_min/etagkit_max/baseline_min/baseline_max`` (as made by :func:`row`); ``met``, a bool
that overrides the target check, for targets that are not timings ("commands per read: 1");
``unit``, when the row's two values are counts of that unit (``"commands"``), not seconds; ``note``;
``clock`` (``"cpu"`` or ``"wall"``, set by :func:`row`; a hand-made row of rates says ``"wall"``).

Targets are short strings, checked by :func:`target_met`:

* ``"<= 2x"``: ``ratio <= 2`` (etagkit at most twice the baseline's time);
* ``">= 50x faster"``: ``1 / ratio >= 50``;
* ``"<= 10us added"``: ``etagkit_s - baseline_s <= 10 µs``;
* ``"<= 20us"``: ``etagkit_s <= 20 µs`` (an absolute bound; the baseline is shown for scale);
* ``""``: no target (a comparison reported for information).

``≤``, ``≥``, the multiplication sign and ``µs`` are accepted for ``<=``, ``>=``, ``x`` and
``us``; ``ms`` and ``ns`` work too.
"""

from __future__ import annotations

import gc
import re
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "CLOCKS",
    "Budget",
    "Clock",
    "Timing",
    "budget",
    "error_row",
    "measure",
    "measure_loops",
    "row",
    "target_met",
]

Loop = Callable[[int], object]  # runs its operation n times
Clock = Literal["cpu", "wall"]
CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.thread_time, "wall": time.perf_counter}
_MAX_N = 1 << 32


@dataclass(frozen=True, slots=True)
class Budget:
    """How long one comparison may take: rounds, and the wall time of one contender's batch."""

    rounds: int
    batch_s: float
    warmup_s: float


QUICK = Budget(rounds=7, batch_s=0.004, warmup_s=0.01)
FULL = Budget(rounds=61, batch_s=0.008, warmup_s=0.1)  # short batches: a burst of noise spoils few


def budget(quick: bool) -> Budget:
    """The budget of a ``--quick`` smoke run (seconds per scenario) or of a full run."""
    return QUICK if quick else FULL


@dataclass(frozen=True, slots=True)
class Timing:
    """Seconds per call of one contender: median over rounds, fastest and slowest round, each round,
    and the clock that measured them (``"cpu"`` or ``"wall"``)."""

    median: float
    low: float
    high: float
    rounds: tuple[float, ...] = ()
    clock: str = "cpu"


def _time_loop(loop: Loop, n: int, timer: Callable[[], float]) -> float:
    """One batch, the collector on. The young generations are collected first (untimed), so the
    batch neither inherits nor leaves behind another contender's pending collections."""
    gc.collect(1)
    start = timer()
    loop(n)
    return timer() - start


def _calibrate(loop: Loop, batch_s: float, warmup_s: float, timer: Callable[[], float]) -> int:
    """Warm ``loop`` up for ``warmup_s`` and return the n whose batch takes about ``batch_s``."""
    n, spent = 1, 0.0
    while True:
        elapsed = _time_loop(loop, n, timer)
        spent += elapsed
        if elapsed >= batch_s / 4 and spent >= warmup_s:
            return max(1, round(n * batch_s / max(elapsed, 1e-9)))
        n *= 2
        if n > _MAX_N:
            raise ValueError("the loop's time does not grow with n: does it run its operation n times?")


def measure_loops(loops: Mapping[str, Loop], quick: bool, *, clock: Clock = "cpu") -> dict[str, Timing]:
    """Time several contenders in interleaved rounds; each loop runs its operation ``n`` times.

    Use this form when one call is too short to time alone or needs a driver (an event loop:
    ``lambda n: asyncio_loop.run_until_complete(many(n))``). ``clock`` is ``"cpu"`` (the thread's
    CPU time: in-process work) or ``"wall"`` (anything that waits on a socket); see the module doc.
    """
    if clock not in CLOCKS:
        raise ValueError(f"unknown clock {clock!r}: 'cpu' or 'wall'")
    timer = CLOCKS[clock]
    plan = budget(quick)
    names = list(loops)
    sizes = {name: _calibrate(loops[name], plan.batch_s, plan.warmup_s, timer) for name in names}
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_no in range(plan.rounds):
        shift = round_no % len(names)
        for name in names[shift:] + names[:shift]:  # rotate who goes first: shared drift, shared noise
            samples[name].append(_time_loop(loops[name], sizes[name], timer) / sizes[name])
        gc.collect()  # untimed: the old generation's pending work is not left to the next round
    return {
        name: Timing(statistics.median(values), min(values), max(values), tuple(values), clock)
        for name, values in samples.items()
    }


def _repeat(fn: Callable[[], object]) -> Loop:
    def loop(n: int) -> None:
        for _ in range(n):
            fn()

    return loop


def measure(
    fns: Mapping[str, Callable[[], object]], quick: bool, *, clock: Clock = "cpu"
) -> dict[str, Timing]:
    """Time several zero-argument callables in interleaved rounds (see :func:`measure_loops`)."""
    return measure_loops({name: _repeat(fn) for name, fn in fns.items()}, quick, clock=clock)


_UNITS = {"": 1.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
_TARGET = re.compile(r"^\s*(<=|>=)\s*([0-9.]+)\s*(x|s|ms|us|ns)?\s*(faster|added)?\s*$")


def target_met(target: str, etagkit_s: float, baseline_s: float, ratio: float | None = None) -> bool | None:
    """Whether the measured pair meets ``target`` (grammar in the module doc); None if no target.

    ``ratio`` (etagkit / baseline, e.g. the row's per-round median) is used for the ``x`` targets
    when given; otherwise the ratio of the two times.

    Raises ValueError for a target that does not parse, so a typo in a scenario cannot pass silently.
    """
    text = target.replace("≤", "<=").replace("≥", ">=").replace("\u00d7", "x").replace("µs", "us").strip()
    if not text or text == "-":
        return None
    match = _TARGET.match(text)
    if match is None:
        raise ValueError(f"unknown target {target!r}")
    op, number, unit, kind = match.groups()
    bound = float(number)
    if ratio is None:
        ratio = etagkit_s / baseline_s if baseline_s > 0 else float("inf")
    if unit == "x" and kind == "faster":
        value = 1 / ratio if ratio > 0 else float("inf")
    elif unit == "x" and kind is None:
        value = ratio
    elif unit != "x" and kind == "added":
        value, bound = etagkit_s - baseline_s, bound * _UNITS[unit or ""]
    elif unit != "x" and kind is None:
        value, bound = etagkit_s, bound * _UNITS[unit or ""]
    else:
        raise ValueError(f"unknown target {target!r}")
    return value <= bound if op == "<=" else value >= bound


def row(
    scenario: str,
    etagkit: Timing,
    baseline_name: str,
    baseline: Timing,
    *,
    target: str = "",
    note: str = "",
) -> dict[str, Any]:
    """One result row in the runner's format, from two timings measured in the same rounds.

    The ratio is the median over rounds of that round's etagkit time / baseline time: noise that
    slows one round slows both sides of its ratio (timings without rounds: ratio of the medians).
    The row carries the clock both sides were measured with; two clocks in one ratio raise ValueError.
    """
    if etagkit.clock != baseline.clock:
        raise ValueError(f"{scenario}: {etagkit.clock} time compared with {baseline.clock} time")
    if etagkit.rounds and len(etagkit.rounds) == len(baseline.rounds) and min(baseline.rounds) > 0:
        # Same rounds: each round's ratio compares batches run back to back, under the same load.
        ratio = statistics.median(e / b for e, b in zip(etagkit.rounds, baseline.rounds, strict=True))
    else:
        ratio = etagkit.median / baseline.median if baseline.median > 0 else float("inf")
    result: dict[str, Any] = {
        "scenario": scenario,
        "etagkit_s": etagkit.median,
        "baseline": baseline_name,
        "baseline_s": baseline.median,
        "ratio": ratio,
        "target": target,
        "etagkit_min": etagkit.low,
        "etagkit_max": etagkit.high,
        "baseline_min": baseline.low,
        "baseline_max": baseline.high,
        "clock": etagkit.clock,
    }
    if note:
        result["note"] = note
    return result


def error_row(scenario: str, error: BaseException) -> dict[str, Any]:
    """The row that stands for a scenario (or a whole module) that failed to import or raised."""
    return {
        "scenario": scenario,
        "etagkit_s": None,
        "baseline": "",
        "baseline_s": None,
        "ratio": None,
        "target": "",
        "error": f"{type(error).__name__}: {error}",
    }

"""load.md: the goals and must-be-zero checks of each run first, then every figure.

Split from ``run_load.py`` (which re-exports ``render``) to keep each module short.
"""

from __future__ import annotations

import json
from typing import Any

# The figures that must be 0, per run: (key path, what it counts).
MUST_BE_ZERO: dict[str, list[tuple[str, str]]] = {
    "throughput": [
        ("errors", "responses other than 304, and socket errors, in all three apps"),
        (
            "etagkit_304_not_from_store",
            "bookstore 304s that ran the view (stored validator expired or evicted): the rate would "
            "silently mix two paths",
        ),
    ],
    "fault": [
        ("5xx", "5xx responses while Redis was down and coming back"),
        ("socket_errors", "socket errors seen by wrk"),
        (
            "stale_304_under_load_after_the_write",
            "304s for the pre-write validator after the write returned (wrk)",
        ),
        ("probe_after_the_write.stale_304", "the same, seen by the timestamped probe"),
        ("stale_after_recovery", "responses carrying or matching a pre-outage validator after recovery"),
    ],
    "stall": [],  # the same checks as "fault", filled in below
    "ryw": [
        ("stale_reads", "reads older than a write that had returned when they started"),
        ("errors", "failed requests"),
    ],
}


MUST_BE_ZERO["stall"] = MUST_BE_ZERO["fault"]
MUST_BE_ZERO["chaos"] = [
    ("stale_304", "304s for a validator older than a write that had returned when the read started"),
    ("stale_bodies", "200s showing a version older than such a write"),
    ("read_5xx", "5xx answers to reads"),
]


# The goals of a run (issue 15): (key path, what it is, ">=" or "<=", bound).
GOALS: dict[str, list[tuple[str, str, str, float]]] = {
    "throughput": [
        (
            "etagkit_vs_floor",
            "bookstore revalidations/s / the constant-304 app's revalidations/s, same run",
            ">=",
            0.8,
        ),
        (
            "etagkit_early_vs_floor",
            "the same with ETAGKIT_EARLY_304 (answered before Flask dispatches)",
            ">=",
            0.8,
        ),
        (
            "etagkit_early_local_vs_floor",
            "that with a two-level store (local hits, Redis pub/sub invalidation)",
            ">=",
            0.8,
        ),
    ],
}


def goal_met(value: Any, op: str, bound: float) -> bool | None:
    """Whether ``value`` meets ``op bound``; None when the run did not produce it."""
    if not isinstance(value, int | float):
        return None
    return value >= bound if op == ">=" else value <= bound


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
        return [pair for key, inner in value.items() for pair in _flatten(inner, f"{prefix}{key}.")]
    return [(prefix.rstrip("."), value)]


def render(results: dict[str, Any]) -> str:
    """load.md: one section per run, the must-be-zero checks first, every figure under them."""
    lines = [
        "# etagkit load and fault runs",
        "",
        "Produced by `python -m benchmarks.load.run_load all` (see `benchmarks/README.md`). Loopback only, "
        "on a 2-core machine: the load tool, gunicorn and Redis share the same cores, so absolute rates are "
        "modest; compare within a run.",
        "",
    ]
    for name, checks in MUST_BE_ZERO.items():  # every run, in the order of RUNS
        run = results.get(name)
        if run is None:
            continue
        figures = dict(_flatten({k: v for k, v in run.items() if k not in ("what", "date", "commit")}))
        lines += [f"## {name}", "", f"{run['date']}, commit {run['commit']}: {run['what']}.", ""]
        if name in GOALS:
            lines += ["| goal | what | value | target | met? |", "|---|---|---|---|---|"]
            for key, meaning, op, bound in GOALS[name]:
                value = figures.get(key)
                verdict = {True: "met", False: "NOT met", None: "-"}[goal_met(value, op, bound)]
                shown = "-" if value is None else value
                lines.append(f"| `{key}` | {meaning} | {shown} | {op} {bound:g} | {verdict} |")
            lines.append("")
        lines += ["| must be 0 | counts | value | met? |", "|---|---|---|---|"]
        for key, meaning in checks:
            value = figures.get(key)
            verdict = "-" if value is None else ("met" if value == 0 else "NOT met")
            lines.append(f"| `{key}` | {meaning} | {value if value is not None else '-'} | {verdict} |")
        lines += ["", "| figure | value |", "|---|---|"]
        lines += [f"| `{key}` | {json.dumps(value, ensure_ascii=False)} |" for key, value in figures.items()]
        lines.append("")
    return "\n".join(lines)

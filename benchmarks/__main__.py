"""``python -m benchmarks [--quick] [--only NAME ...]``: every scenario in one process, one table.

Each scenario module's ``run(quick)`` returns rows (format in ``benchmarks/_harness.py``). A module
that fails to import or raises becomes an error row and the exit status is 1; targets that are not
met are reported, never turned into a failure (timings are not asserted anywhere).

A complete full run writes ``benchmarks/results/results.md`` and ``results.json``; a ``--quick``
or ``--only`` run writes ``last-partial.md`` / ``.json`` beside them, so a smoke run never
overwrites the published figures.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks._harness import error_row, target_met

MODULES = ("core", "peers", "cache_memory", "cache_redis", "adapters", "asgi", "client", "servers")
RESULTS = Path(__file__).resolve().parent / "results"
PEERS = (
    "cachetools",
    "django",
    "fastapi",
    "starlette",
    "uvicorn",
    "flask",
    "flask-caching",
    "hishel",
    "httpx",
    "redis",
    "werkzeug",
    "waitress",
    "xxhash",
    "blake3",
)


def run_module(
    name: str, quick: bool, importer: Callable[[str], Any] = importlib.import_module
) -> list[dict[str, Any]]:
    """Import ``benchmarks.bench_<name>`` and run it; any failure becomes one error row.

    Each row gets its module's name and ``met`` (from its target, unless the row set it itself).
    """
    try:
        module = importer(f"benchmarks.bench_{name}")
        rows = list(module.run(quick))
    except Exception as exc:  # a broken scenario is reported, the others still run
        failed = error_row(f"{name} (module)", exc)
        failed["module"] = name
        return [failed]
    for result in rows:
        result.setdefault("module", name)
        if "met" in result or "error" in result:
            continue
        try:
            result["met"] = target_met(
                result.get("target", ""), result["etagkit_s"], result["baseline_s"], result.get("ratio")
            )
        except (KeyError, TypeError, ValueError) as exc:
            result["error"] = f"bad row: {type(exc).__name__}: {exc}"
    return rows


def _seconds(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-9:.3g} ns"


def _spread(result: dict[str, Any], side: str) -> str:
    unit = result.get("unit")
    if unit is not None and result.get(f"{side}_s") is not None:  # a count, not a time
        return f"{result[f'{side}_s']:g} {unit}"
    median = _seconds(result.get(f"{side}_s"))
    low, high = result.get(f"{side}_min"), result.get(f"{side}_max")
    if low is None or high is None:
        return median
    return f"{median} ({_seconds(low)} to {_seconds(high)})"


def _ratio(result: dict[str, Any]) -> str:
    ratio = result.get("ratio")
    if ratio is None:
        return "-"
    text = f"{ratio:.3f}x" if ratio < 10 else f"{ratio:.1f}x"  # enough digits to see which side of a target
    if 0 < ratio < 1:
        text += f" ({1 / ratio:.3g}x faster)"
    return text


def _met(result: dict[str, Any]) -> str:
    if "error" in result:
        return "ERROR"
    return {True: "met", False: "NOT met", None: "-"}[result.get("met")]


HEADER = (
    "scenario",
    "etagkit median (min to max)",
    "baseline",
    "baseline median (min to max)",
    "ratio",
    "target",
    "met?",
    "clock",
)


CLOCK_NOTE = (
    "Clock: `cpu` = the measuring thread's CPU time (`time.thread_time`), for in-process scenarios; "
    "`wall` = `time.perf_counter`, for scenarios that wait on a socket (Redis, the HTTP origin, other "
    "processes); `-` = a count. The garbage collector is on while timing."
)


def table(rows: Sequence[dict[str, Any]]) -> str:
    """The results as an aligned Markdown table (readable on a terminal and in a .md file).

    Notes become numbered footnotes under the table, so that they do not widen its first column.
    """
    lines = [HEADER]
    notes: list[str] = []
    for result in rows:
        baseline = result["error"] if "error" in result else result.get("baseline", "")
        scenario = result["scenario"]
        if result.get("note"):
            if result["note"] not in notes:
                notes.append(result["note"])
            scenario += f" [{notes.index(result['note']) + 1}]"
        lines.append(
            (
                scenario,
                _spread(result, "etagkit"),
                baseline,
                _spread(result, "baseline"),
                _ratio(result),
                result.get("target") or "-",
                _met(result),
                result.get("clock") or "-",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]

    def render(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    footnotes = [""] + [f"[{number}] {note}" for number, note in enumerate(notes, 1)] if notes else []
    return "\n".join([render(lines[0]), rule, *(render(line) for line in lines[1:]), *footnotes])


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _versions() -> dict[str, str]:
    versions = {}
    for name in ("etagkit", *PEERS):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def meta(argv: Sequence[str], quick: bool, seconds: float) -> dict[str, Any]:
    """Where and how the figures were made: rerunnable command, machine, versions, commit."""
    return {
        "command": "python -m benchmarks " + " ".join(argv),
        "quick": quick,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "seconds": round(seconds, 1),
        "versions": _versions(),
    }


def write_results(rows: list[dict[str, Any]], info: dict[str, Any], stem: str, out: Path) -> Path:
    """Write ``<stem>.md`` and ``<stem>.json`` under ``out``; return the Markdown path."""
    out.mkdir(parents=True, exist_ok=True)
    versions = ", ".join(f"{name} {version}" for name, version in info["versions"].items())
    markdown = (
        "# etagkit benchmark results\n\n"
        f"`{info['command']}` on {info['date']}, commit {info['commit']}, Python {info['python']}, "
        f"{info['platform']}, {info['cpus']} CPUs, {info['seconds']} s.\n\n"
        "Times are per call: the median over interleaved rounds, with the fastest and slowest round. "
        "Ratio = etagkit time / baseline time: the median over rounds of each round's ratio. "
        f"{CLOCK_NOTE}\n\n"
        f"{table(rows)}\n\nVersions: {versions}.\n"
    )
    md_path = out / f"{stem}.md"
    md_path.write_text(markdown, encoding="utf-8")
    (out / f"{stem}.json").write_text(
        json.dumps({"meta": info, "rows": rows}, indent=2) + "\n", encoding="utf-8"
    )
    return md_path


def main(argv: Sequence[str] | None = None, importer: Callable[[str], Any] = importlib.import_module) -> int:
    """Run the benchmarks; exit status 1 if a scenario module failed, else 0."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: few short rounds (< 1 minute)")
    parser.add_argument(
        "--only",
        action="append",
        choices=MODULES,
        metavar="NAME",
        help=f"run only these: {', '.join(MODULES)}",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder (default: %(default)s)")
    args = parser.parse_args(args_list)

    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for name in args.only or MODULES:
        t0 = time.perf_counter()
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows.extend(run_module(name, args.quick, importer))
        print(f"  {name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    info = meta(args_list, args.quick, time.perf_counter() - started)
    stem = "last-partial" if args.quick or args.only else "results"
    path = write_results(rows, info, stem, args.out)

    print(table(rows))
    print(f"\n{CLOCK_NOTE}")
    errors = [r for r in rows if "error" in r]
    missed = [r for r in rows if r.get("met") is False]
    print(
        f"\n{len(rows)} rows, {len(missed)} target(s) not met, {len(errors)} error(s); "
        f"{info['seconds']} s; written to {path}"
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

"""The pure core is fully covered (lines and branches) by its own tests, through the public API."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import etagkit

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(etagkit.__file__).resolve().parent
CORE = ["core/etag.py", "core/preconditions.py", "core/policy.py", "core/dates.py", "core/headers.py"]
CORE_TESTS = [
    "test_etag.py",
    "test_preconditions.py",
    "test_policy.py",
    "test_dates.py",
    "test_conformance.py",
    "test_headers.py",
]


@pytest.mark.slow
def test_core_has_full_branch_coverage(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COV_CORE_", "COVERAGE_"))}
    data = ["--data-file", str(tmp_path / ".coverage")]
    include = "--include=" + ",".join(str(PACKAGE / name) for name in CORE)
    tests = [str(ROOT / "tests" / name) for name in CORE_TESTS]
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "coverage",
            "run",
            "--branch",
            *data,
            include,
            "-m",
            "pytest",
            "-q",
            "-x",
            "-p",
            "no:cacheprovider",
            *tests,
        ],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = subprocess.run(
        [sys.executable, "-m", "coverage", "report", *data, include, "--show-missing", "--fail-under=100"],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert report.returncode == 0, report.stdout
    assert all(name in report.stdout for name in CORE)

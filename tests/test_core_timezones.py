"""The pure core's own tests, re-run in processes whose local time zone is not UTC.

Validators and HTTP-dates must not depend on the server's zone (RFC 9110 §8.8.1, §5.6.7): the core
suite passes under TZ=UTC, America/New_York (behind UTC, with DST) and Europe/Berlin (ahead, DST).
The default run covers this machine's zone; the two DST zones (and UTC, when this machine is not on
UTC) each get one subprocess here, a few seconds each.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE_TESTS = [
    "test_etag.py",
    "test_preconditions.py",
    "test_policy.py",
    "test_dates.py",
    "test_conformance.py",
    "test_core_properties.py",
    "test_headers.py",
]
_ON_UTC = time.timezone == 0 and not time.daylight
ZONES = ["America/New_York", "Europe/Berlin", *([] if _ON_UTC else ["UTC"])]


@pytest.mark.slow
@pytest.mark.parametrize("zone", ZONES)
def test_core_suite_passes_in_zone(zone: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COV_CORE_", "COVERAGE_"))}
    env["TZ"] = zone
    probe = "import time; print(time.strftime('%Z', time.localtime(1720000000)))"
    local = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True, timeout=60
    )
    # the zone really applies (July 2024: daylight time in both DST zones)
    assert local.stdout.strip() == {"UTC": "UTC", "America/New_York": "EDT", "Europe/Berlin": "CEST"}[zone]
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-x",
            "-p",
            "no:cacheprovider",
            *(str(ROOT / "tests" / name) for name in CORE_TESTS),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=280,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert " passed" in run.stdout and "skipped" not in run.stdout, run.stdout[-500:]

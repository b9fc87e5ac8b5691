"""The public surface: ``__all__`` is exact and sorted, and importing etagkit stays light."""

from __future__ import annotations

import subprocess
import sys

import etagkit


def test_all_is_sorted_and_exact() -> None:
    public = {n for n in vars(etagkit) if not n.startswith("_")} | {"__version__"}
    public -= {"annotations"}
    assert etagkit.__all__ == sorted(etagkit.__all__)
    assert set(etagkit.__all__) == public


def test_import_does_not_pull_in_frameworks_or_clients() -> None:
    code = (
        "import sys, etagkit, etagkit.cache; "
        "print(' '.join(m for m in ('flask', 'werkzeug', 'redis', 'httpx') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""

"""The public surface: ``__all__`` is exact and sorted, and importing etagkit stays light."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

import etagkit


def test_all_is_sorted_and_exact() -> None:
    # submodules (etagkit.cache, etagkit.wsgi, ...) become attributes once imported: not names of __all__
    names = vars(etagkit).items()
    public = {n for n, v in names if not n.startswith("_") and not isinstance(v, types.ModuleType)}
    public |= {"__version__"}
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


@pytest.mark.parametrize(
    ("module", "hidden", "extra"),
    [
        ("etagkit.flask", "flask", "flask"),
        ("etagkit.cache.redis", "redis", "redis"),
        ("etagkit.client", "httpx", "client"),
    ],
)
def test_an_adapter_without_its_dependency_names_the_extra(module: str, hidden: str, extra: str) -> None:
    code = (
        f"import sys; sys.modules[{hidden!r}] = None\n"  # makes `import {hidden}` raise ImportError
        f"try:\n    import {module}\nexcept ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert f"etagkit[{extra}]" in out

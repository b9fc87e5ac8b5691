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
    public |= {"__version__", "MemoryStore", "TagCache"}  # loaded on first use (module __getattr__)
    public -= {"annotations"}
    assert etagkit.__all__ == sorted(etagkit.__all__)
    assert set(etagkit.__all__) == public


def test_import_loads_no_io_module() -> None:
    """``import etagkit`` (the sans-I/O core) loads no framework, client, socket or event loop."""
    code = (
        "import sys, etagkit; "
        "print(' '.join(m for m in ('flask', 'werkzeug', 'redis', 'httpx', 'asyncio', 'socket', "
        "'etagkit.cache', 'etagkit.wsgi') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""


def test_cache_names_load_on_first_use() -> None:
    from etagkit.cache import MemoryStore, TagCache

    assert etagkit.TagCache is TagCache
    assert etagkit.MemoryStore is MemoryStore
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        etagkit.nothing  # noqa: B018


def test_the_core_imports_nothing_outside_itself() -> None:
    """etagkit.core is sans-I/O: its modules import the stdlib, each other and etagkit._errors only."""
    import ast
    from pathlib import Path

    allowed_stdlib = {
        "__future__", "base64", "binascii", "collections", "dataclasses", "datetime", "email", "enum",
        "functools", "hashlib", "http", "json", "math", "re", "typing", "urllib",
        "blake3", "xxhash",  # optional hash functions (the [fast] extra)
    }  # fmt: skip
    for path in (Path(etagkit.__file__).parent / "core").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                assert node.level == 1 or node.module == "_errors", (path.name, node.module)
            elif isinstance(node, ast.ImportFrom | ast.Import):
                names = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                for name in names:
                    assert str(name).split(".")[0] in allowed_stdlib, (path.name, name)


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
        ("etagkit.cache.twolevel", "redis", "redis"),
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
    assert out.lower().startswith(f"{module} needs {hidden}"), out  # the module imported, not its helper

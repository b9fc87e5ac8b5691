"""The README's two fresh-machine commands: CI runs the test command verbatim, and both stay valid."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Two commands on a fresh machine", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def test_the_readme_gives_two_commands_run_and_test() -> None:
    run, test = _commands()
    assert run.endswith("python examples/bookstore.py")
    assert test.endswith("pytest")
    assert (ROOT / "examples" / "bookstore.py").is_file()


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    _, test = _commands()
    lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert test in lines


# Every ```python block of the README runs in tests/test_docs.py (with those of docs/).


# -- the promise about Redis: without one, the Redis tests skip with the reason (fail in CI) ------------

_REDIS_NODES = [
    "tests/test_redis_store.py::test_value_and_entry_fields_round_trip",  # the shared Redis (redis_url)
    "tests/test_redis_store.py::test_works_under_allkeys_lru",  # a private server with options
    "tests/test_redis_faults.py::test_killed_redis_gives_misses_and_opens_the_breaker",  # private_redis
    "tests/test_redis_faults.py::test_lost_invalidation_forces_a_global_one_after_recovery",  # durable
]
# the bookstore's in-process variant: it must not pick up ETAGKIT_REDIS_URL (an unreachable one here)
_MEMORY_NODE = (
    "tests/test_bookstore.py::test_one_book_has_a_version_validator_and_404s_carry_none[wsgi-memory]"
)


def _pytest_without_redis(tmp_path: Path, nodes: list[str], *, require: bool) -> tuple[int, str]:
    """Run some tests in a child pytest where nothing answers at ETAGKIT_REDIS_URL and no redis-server
    is on PATH (PATH is an empty folder: the child needs nothing from it)."""
    import os
    import subprocess
    import sys

    from support import free_port

    empty = tmp_path / "empty-bin"
    empty.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "PATH": str(empty),
        "ETAGKIT_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "ETAGKIT_REQUIRE_REDIS": "1" if require else "",
    }
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", *nodes]
    run = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    return run.returncode, run.stdout + run.stderr


def test_without_redis_the_redis_tests_skip_with_the_reason(tmp_path: Path) -> None:
    code, out = _pytest_without_redis(tmp_path, [*_REDIS_NODES, _MEMORY_NODE], require=False)
    assert code == 0, out
    assert re.search(r"^1 passed, 4 skipped in ", out, re.M), out
    skipped = re.findall(r"^SKIPPED \[\d+\] \S+: (.+)$", out, re.M)
    assert sorted(set(skipped)) == [
        "no Redis: nothing answers at redis://127.0.0.1:"
        + out.split("nothing answers at redis://127.0.0.1:", 1)[1].split("/", 1)[0]
        + "/0 and redis-server is not on PATH",
        "no Redis: redis-server is not on PATH (needed for a private server)",
    ], out
    assert "FileNotFoundError" not in out and "Error" not in out


def test_without_redis_the_redis_tests_fail_when_redis_is_required(tmp_path: Path) -> None:
    code, out = _pytest_without_redis(tmp_path, _REDIS_NODES, require=True)
    assert code == 1, out
    summary = re.search(r"^(?:(\d+) failed)?(?:, )?(?:(\d+) errors?)? in ", out, re.M)
    assert summary is not None and sum(int(n or 0) for n in summary.groups()) == 4, out  # none passed
    assert out.count("Redis required (ETAGKIT_REQUIRE_REDIS is set) but unavailable") >= 4, out
    assert "FileNotFoundError" not in out

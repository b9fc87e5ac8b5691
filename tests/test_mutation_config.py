"""The README's mutation run stays runnable: its extra, its scope and its tests exist and agree."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = {f"etagkit/core/{name}.py" for name in ("etag", "preconditions", "dates", "policy", "headers")}
EXTRA = {f"etagkit/core/{name}.py" for name in ("keys", "records", "reply")}


def _pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _contributing_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Contributing\n", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    return block.strip().splitlines()


def test_the_readme_commands_use_the_mutation_extra_and_mutmut() -> None:
    install, run, results = _contributing_commands()
    assert install == 'pip install -e ".[mutation]"'
    assert run.startswith("mutmut run")
    assert results == "mutmut results"
    extras = _pyproject()["project"]["optional-dependencies"]  # type: ignore[index]
    assert any(dep.startswith("mutmut>=3") for dep in extras["mutation"])
    assert not any("mutmut" in dep for dep in extras["dev"])  # not part of the default set-up


def test_mutmut_is_scoped_to_the_pure_core_and_its_tests() -> None:
    config = _pyproject()["tool"]["mutmut"]  # type: ignore[index]
    assert set(config["only_mutate"]) == CORE | EXTRA
    assert all((ROOT / path).is_file() for path in config["only_mutate"])
    selection = config["pytest_add_cli_args_test_selection"]
    assert all((ROOT / path).is_file() for path in selection)
    from test_core_coverage import CORE as COVERED
    from test_core_coverage import CORE_TESTS

    assert {f"etagkit/{name}" for name in COVERED} == CORE
    assert {f"tests/{name}" for name in CORE_TESTS} <= set(selection)
    # workers fork from a process that never ran a test: no warm lru_cache hides a mutant
    assert config["process_isolation"] == "forkserver"


def test_the_default_test_command_does_not_run_mutmut() -> None:
    addopts = _pyproject()["tool"]["pytest"]["ini_options"]["addopts"]  # type: ignore[index]
    assert "mutmut" not in addopts
    assert "mutants/" in (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()

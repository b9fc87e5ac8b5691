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

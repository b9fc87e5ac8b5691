"""The ```python blocks of Markdown pages (the README, docs/), with their markers, and how to run them.

One extractor for every test that runs documentation code (tests/test_docs.py runs them all). The
conventions, an HTML comment on the line just before a block (invisible on GitHub and on the site):

* ``<!-- needs: redis -->``: the block talks to Redis at ``redis://127.0.0.1:6379/0`` under the key
  prefix ``demo:``; the tests run it on its own (so it must be self-contained) against the test
  Redis under a prefix of their own, and the rest of its page runs even where Redis does not.
* ``<!-- needs: bookstore -->``: the block talks to the bookstore at ``http://127.0.0.1:8000``; the
  tests run it against ``examples/bookstore.py`` started on a free port.
* ``<!-- fragment -->``: the block only shows code that cannot run here (a Django project, a Redis
  Cluster at a made-up address); it is compiled, not run. Keep these few.

A block that names one of those URLs without its marker is refused (it would touch the real
server), and so is a Python block the runner would miss: an indented fence or one that says
``py``, ``python3`` or ``pycon`` instead of ``python``.
"""

from __future__ import annotations

import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NEEDS = frozenset({"redis", "bookstore"})
REDIS_URL, REDIS_PREFIX = "redis://127.0.0.1:6379/0", '"demo:"'
BOOKSTORE_URL = "http://127.0.0.1:8000"

_FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.M | re.S)
_MARK = re.compile(r"<!--\s*(fragment|needs:\s*[a-z, ]+?)\s*-->\s*\Z")
_HEADING = re.compile(r"^## (.+?)[ \t]*$", re.M)


@dataclass(frozen=True)
class Block:
    """One ```python block: where it is (page, first code line, ``## `` section), its code and marker."""

    page: Path
    line: int
    code: str
    fragment: bool = False
    needs: frozenset[str] = frozenset()
    section: str = ""

    @property
    def where(self) -> str:
        page = self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page
        return f"{page}:{self.line}"


def python_blocks(page: Path) -> list[Block]:
    """The ```python blocks of a Markdown page, in order, with their markers (see the module doc);
    ValueError for a block the runner would miss or that would touch a real server."""
    text = page.read_text(encoding="utf-8")
    blocks = []
    for match in _FENCE.finditer(text):
        lang, code = match.group(1).strip(), match.group(2)
        line = text.count("\n", 0, match.start()) + 1
        if lang != "python":
            if lang.lower().startswith("py"):
                raise ValueError(f"{page.name}:{line}: fence ```{lang}: use ```python so the block runs")
            continue
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        mark = _MARK.search(before)
        fragment, needs = False, frozenset[str]()
        if mark is not None and mark.group(1) == "fragment":
            fragment = True
        elif mark is not None:
            needs = frozenset(n.strip() for n in mark.group(1).split(":", 1)[1].split(","))
            if not needs <= NEEDS:
                raise ValueError(f"{page.name}:{line}: unknown needs {sorted(needs - NEEDS)}")
        for url, need in ((REDIS_URL, "redis"), (BOOKSTORE_URL, "bookstore")):
            if url in code and need not in needs and not fragment:  # never touch the real one
                raise ValueError(f"{page.name}:{line}: the block uses {url}: mark it <!-- needs: {need} -->")
        headings = _HEADING.findall(text, 0, match.start())
        blocks.append(Block(page, line + 1, code, fragment, needs, headings[-1] if headings else ""))
    # an indented fence (inside a list) is not matched above: it would silently never run
    indented = len(re.findall(r"^[ \t]+```python", text, re.M))
    if indented:
        raise ValueError(f"{page.name}: {indented} indented ```python block(s): put them at the margin")
    return blocks


def run_blocks(blocks: list[Block], substitutions: dict[str, str] | None = None) -> int:
    """Run blocks in order in one fresh module namespace (a page's blocks build on each other);
    fragments are only compiled. Returns the number run; a failing block raises AssertionError
    naming its page and line (its traceback shows the block's own lines under that name)."""
    module = types.ModuleType("docs_page")
    sys.modules[module.__name__] = module  # dataclasses and pickling look their module up here
    ran = 0
    try:
        for block in blocks:
            code = block.code
            for old, new in (substitutions or {}).items():
                code = code.replace(old, new)
            compiled = compile(code, block.where, "exec")
            if block.fragment:
                continue
            try:
                exec(compiled, module.__dict__)
            except Exception as exc:
                raise AssertionError(f"the block at {block.where} failed: {exc!r}") from exc
            ran += 1
    finally:
        del sys.modules[module.__name__]
    return ran

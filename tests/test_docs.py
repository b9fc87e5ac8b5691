"""Every ```python block of the README and of the documentation site (docs/) runs here.

The blocks of one page run in order, in one namespace (a page may set something up in one block and
use it in the next), against real things. Conventions, written as an HTML comment on the line just
before a block (invisible on GitHub and on the site):

* ``<!-- needs: redis -->``: the block talks to Redis at ``redis://127.0.0.1:6379/0`` under the key
  prefix ``demo:``. It runs against the test Redis (``redis_url``) under a prefix of its own, whose
  keys are deleted afterwards.
* ``<!-- needs: bookstore -->``: the block talks to the bookstore at ``http://127.0.0.1:8000``. It
  runs against ``examples/bookstore.py`` started on a free port (in-memory SQLite, in-process cache).
* ``<!-- fragment -->``: the block only shows code that cannot run here (it needs a Django project
  or a Redis Cluster at a made-up address). It is compiled, not run. Keep these few: at most
  ``MAX_FRAGMENTS`` in all.

Other fences (```sh, ```console, ```text) are shell sessions and output, not run. A block whose
fence says ``py``, ``python3`` or ``pycon`` would escape this test, so it fails it.

The site itself is built with ``mkdocs build --strict`` (``test_the_site_builds_without_warnings``),
which fails on a broken link, anchor or API reference and on a page left out of the nav.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import free_port, serve_process

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
MAX_FRAGMENTS = 3
NEEDS = frozenset({"redis", "bookstore"})

REDIS_URL, REDIS_PREFIX = "redis://127.0.0.1:6379/0", '"demo:"'
BOOKSTORE_URL = "http://127.0.0.1:8000"

_FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.M | re.S)
_MARK = re.compile(r"<!--\s*(fragment|needs:\s*[a-z, ]+?)\s*-->\s*\Z")


@dataclass(frozen=True)
class Block:
    """One ```python block: where it is, its code, and what its marker comment says."""

    page: Path
    line: int
    code: str
    fragment: bool = False
    needs: frozenset[str] = frozenset()

    @property
    def where(self) -> str:
        page = self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page
        return f"{page}:{self.line}"


def python_blocks(page: Path) -> list[Block]:
    """The ```python blocks of a Markdown page, with their markers; a fence that would hide Python
    from this test (indented, or ``py`` / ``python3`` / ``pycon``) raises ValueError."""
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
        blocks.append(Block(page, line + 1, code, fragment, needs))
    # an indented fence (inside a list) is not matched above: it would silently never run
    indented = len(re.findall(r"^[ \t]+```python", text, re.M))
    if indented:
        raise ValueError(f"{page.name}: {indented} indented ```python block(s): put them at the margin")
    return blocks


def run_blocks(blocks: list[Block], substitutions: dict[str, str] | None = None) -> int:
    """Run a page's blocks in order in one fresh module namespace; the number of blocks run.

    A failing block raises AssertionError naming the page and line (the traceback shows the block's
    own lines under that name)."""
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


def _page_param(page: Path) -> object:
    blocks = python_blocks(page)
    needs = frozenset().union(*(b.needs for b in blocks)) if blocks else frozenset()
    marks = [pytest.mark.redis] if "redis" in needs else []
    return pytest.param(page, marks=marks, id=str(page.relative_to(ROOT)))


PAGES_WITH_CODE = [page for page in PAGES if python_blocks(page)]


@pytest.fixture(scope="module")
def bookstore(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python examples/bookstore.py`` on a free port, as the docs tell a reader to run it (in-memory
    SQLite and cache: the environment's Redis and database settings are cleared); its base URL."""
    port = free_port()
    argv = [sys.executable, str(ROOT / "examples" / "bookstore.py"), "--port", str(port)]
    cleared = {"ETAGKIT_REDIS_URL": "", "BOOKSTORE_DB": "", "BOOKSTORE_METRICS_DIR": ""}
    log = tmp_path_factory.mktemp("bookstore") / "server.log"
    with serve_process(argv, port, log=log, cwd=ROOT, env=cleared):
        yield f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("page", [_page_param(p) for p in PAGES_WITH_CODE])
def test_the_code_blocks_of_a_page_run(page: Path, request: pytest.FixtureRequest) -> None:
    blocks = python_blocks(page)
    needs = frozenset().union(*(b.needs for b in blocks))
    substitutions: dict[str, str] = {}
    if "redis" in needs:
        substitutions[REDIS_URL] = request.getfixturevalue("redis_url")
        substitutions[REDIS_PREFIX] = repr(request.getfixturevalue("redis_prefix"))
    if "bookstore" in needs:
        substitutions[BOOKSTORE_URL] = request.getfixturevalue("bookstore")
    for block in blocks:  # a marked block must contain what its marker promises to replace
        if "redis" in block.needs:
            assert REDIS_URL in block.code, f"{block.where} is marked needs: redis but names no {REDIS_URL}"
        if "bookstore" in block.needs:
            assert BOOKSTORE_URL in block.code, f"{block.where} is marked needs: bookstore without its URL"
    ran = run_blocks(blocks, substitutions)
    assert ran == sum(not b.fragment for b in blocks)


def test_every_page_is_covered_and_fragments_stay_few() -> None:
    assert (DOCS / "index.md").is_file()
    covered = {p.relative_to(ROOT).as_posix() for p in PAGES_WITH_CODE}
    for page in ("README.md", "docs/cache.md", "docs/stacks/flask.md", "docs/guides/external-api.md"):
        assert page in covered, page
    fragments = [b.where for p in PAGES for b in python_blocks(p) if b.fragment]
    assert len(fragments) <= MAX_FRAGMENTS, fragments


# -- the runner itself can fail --------------------------------------------------------------------


def test_a_broken_block_fails_with_its_page_and_line(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# t\n\n```python\nx = 1\n```\n\ntext\n\n```python\nassert x == 2, 'x is 1'\n```\n", encoding="utf-8"
    )
    blocks = python_blocks(page)
    assert [b.line for b in blocks] == [4, 10]
    with pytest.raises(AssertionError, match=r"page\.md:10 failed: AssertionError\('x is 1'\)"):
        run_blocks([Block(b.page, b.line, b.code) for b in blocks])


def test_a_fragment_is_compiled_not_run(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("<!-- fragment -->\n```python\nraise SystemExit(1)\n```\n", encoding="utf-8")
    (block,) = python_blocks(page)
    assert block.fragment and run_blocks([block]) == 0
    page.write_text("<!-- fragment -->\n```python\ndef broken(:\n```\n", encoding="utf-8")
    with pytest.raises(SyntaxError, match="invalid syntax"):
        run_blocks(python_blocks(page))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("```py\nx = 1\n```\n", "use ```python"),
        ("- item\n\n  ```python\n  x = 1\n  ```\n", "indented"),
        ("<!-- needs: postgres -->\n```python\nx = 1\n```\n", "unknown needs"),
        (f"```python\nurl = '{REDIS_URL}'\n```\n", "mark it <!-- needs: redis -->"),
        (f"```python\nurl = '{BOOKSTORE_URL}'\n```\n", "mark it <!-- needs: bookstore -->"),
    ],
)
def test_a_block_that_would_escape_the_runner_is_refused(tmp_path: Path, text: str, message: str) -> None:
    page = tmp_path / "page.md"
    page.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=re.escape(message)):
        python_blocks(page)


# -- links and the site ----------------------------------------------------------------------------


def test_the_readme_links_into_the_site_and_its_links_resolve() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    local = [t for t in targets if "://" not in t]
    assert any(t.startswith("docs/") for t in local), "the README must link into docs/"
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, missing


def test_every_public_module_has_a_reference_entry() -> None:
    import pkgutil

    import etagkit

    public = {"etagkit"} | {
        m.name
        for m in pkgutil.walk_packages(etagkit.__path__, "etagkit.")
        if not any(part.startswith("_") for part in m.name.split("."))
    }
    documented = set()
    for page in (DOCS / "reference").glob("*.md"):
        documented |= set(re.findall(r"^::: ([\w.]+)\s*$", page.read_text(encoding="utf-8"), re.M))
    assert public <= documented, sorted(public - documented)


def test_the_site_builds_without_warnings(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="the site needs the docs extra: pip install -e '.[docs]'")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert (tmp_path / "site" / "reference" / "core" / "index.html").is_file()

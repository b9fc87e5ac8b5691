"""Every ```python block of the README and of the documentation site (docs/) runs here.

The blocks of one page run in order, in one namespace, against real things: a block marked
``<!-- needs: redis -->`` runs on its own against the test Redis under a key prefix of its own
(deleted afterwards), one marked ``<!-- needs: bookstore -->`` against ``examples/bookstore.py`` started on a
free port, and a ``<!-- fragment -->`` (code that cannot run here, at most ``MAX_FRAGMENTS``) is
compiled only. The conventions and the extractor are in tests/docblocks.py. Other fences (```sh,
```console, ```text) are shell sessions and output, not run.

The site itself is built with ``mkdocs build --strict`` (``test_the_site_builds_without_warnings``),
which fails on a broken link, anchor or API reference and on a page left out of the nav.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from docblocks import BOOKSTORE_URL, REDIS_PREFIX, REDIS_URL, ROOT, Block, python_blocks, run_blocks
from support import free_port, serve_process

DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
MAX_FRAGMENTS = 3


PAGES_WITH_CODE = [page for page in PAGES if python_blocks(page)]
REDIS_BLOCKS = [b for page in PAGES for b in python_blocks(page) if "redis" in b.needs]


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


@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_code_blocks_of_a_page_run(page: Path, request: pytest.FixtureRequest) -> None:
    """Every block of the page, in order, in one namespace; a Redis block only compiles here (it runs
    on its own in test_a_redis_block_runs, so the rest of the page runs even without Redis)."""
    blocks = [replace(b, fragment=True) if "redis" in b.needs else b for b in python_blocks(page)]
    substitutions: dict[str, str] = {}
    if any("bookstore" in b.needs for b in blocks):
        substitutions[BOOKSTORE_URL] = request.getfixturevalue("bookstore")
    ran = run_blocks(blocks, substitutions)
    assert ran == sum(not b.fragment for b in blocks) and ran > 0


@pytest.mark.redis
@pytest.mark.parametrize("block", REDIS_BLOCKS, ids=lambda b: b.where)
def test_a_redis_block_runs(block: Block, redis_url: str, redis_prefix: str) -> None:
    """A ``needs: redis`` block, on its own (such blocks are self-contained), against the test Redis
    under this test's key prefix instead of the reader's ``redis://127.0.0.1:6379/0`` and ``demo:``."""
    assert REDIS_URL in block.code and REDIS_PREFIX in block.code, f"{block.where}: nothing to redirect"
    # Generous timeouts in the URL (its query wins over RedisStore's arguments): the blocks' 50 ms are
    # for a production Redis, not for the shared test Redis on a busy machine.
    url = f"{redis_url}{'&' if '?' in redis_url else '?'}socket_timeout=5&socket_connect_timeout=5"
    assert run_blocks([block], {REDIS_URL: url, REDIS_PREFIX: repr(redis_prefix)}) == 1


def test_bookstore_blocks_name_the_bookstore() -> None:
    for page in PAGES:
        for block in python_blocks(page):
            if "bookstore" in block.needs:
                assert BOOKSTORE_URL in block.code, f"{block.where}: needs: bookstore without its URL"


def test_every_page_is_covered_and_fragments_stay_few() -> None:
    assert (DOCS / "index.md").is_file()
    covered = {p.relative_to(ROOT).as_posix() for p in PAGES_WITH_CODE}
    for page in ("README.md", "docs/cache.md", "docs/stacks/flask.md", "docs/guides/external-api.md"):
        assert page in covered, page
    assert {b.page.name for b in REDIS_BLOCKS} == {"README.md", "cache.md"}
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


def test_ci_builds_the_site_strictly() -> None:
    lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert any(line.strip().endswith('mkdocs build --strict --site-dir "$site_dir"') for line in lines)


def test_getting_started_gives_the_readmes_two_commands() -> None:
    def commands(page: Path) -> list[str]:
        text = page.read_text(encoding="utf-8")
        section = text.split("## Two commands on a fresh machine", 1)[1].split("\n## ", 1)[0]
        return re.findall(r"```sh\n(.+?)\n```", section)

    readme = commands(ROOT / "README.md")
    assert len(readme) == 2
    assert commands(DOCS / "getting-started.md") == readme

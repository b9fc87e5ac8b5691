"""The bookstore under gunicorn with two worker processes sharing an SQLite file and the local Redis:
a write through one worker is never followed by an old ETag (or old data) from the other."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gunicorn  # type: ignore[import-untyped]
import httpx
import pytest
from support import free_port, serve_process

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = 12
READERS = 8  # concurrent fresh connections per batch of reads
MAX_BATCHES = 50  # batches sent until the worker that did not write has answered one

# gunicorn >= 25 opens a control socket under $HOME by default: a test leaves nothing behind.
NO_CONTROL_SOCKET = ["--no-control-socket"] if gunicorn.version_info >= (25,) else []

pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def gunicorn_bookstore(tmp_path: Path, redis_url: str, redis_prefix: str) -> Iterator[str]:
    """``gunicorn -w 2`` running the factory exactly as the README shows; its base URL."""
    port = free_port()
    factory = (
        f"examples.bookstore:create_app(db={str(tmp_path / 'books.db')!r}, redis_url={redis_url!r}, "
        f"redis_prefix={redis_prefix + '{bookstore}:'!r}, metrics_dir={str(tmp_path / 'metrics')!r}, "
        "redis_timeout=5)"  # generous against the shared test Redis: a busy machine answers late
    )
    argv = [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "--chdir", str(ROOT)]
    argv += NO_CONTROL_SOCKET
    with serve_process([*argv, factory], port, log=tmp_path / "gunicorn.log", cwd=ROOT):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    """Every request on a new connection (``Connection: close``), so the next may reach the other worker."""
    with httpx.Client(timeout=10, headers={"Connection": "close"}) as shared:
        yield shared


def _together(client: httpx.Client, calls: list[tuple[str, dict[str, str]]]) -> list[httpx.Response]:
    """GET each (url, headers) at once, on concurrent connections."""
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda call: client.get(call[0], headers=call[1]), calls))


def _reads_reaching_the_other_worker(
    client: httpx.Client, calls: list[tuple[str, dict[str, str]]], writer: str
) -> list[httpx.Response]:
    """Send the batch of concurrent reads, again while only ``writer`` answered; every reply is kept
    (to be checked), and at least one comes from the worker that did not write."""
    replies: list[httpx.Response] = []
    for _ in range(MAX_BATCHES):
        batch = _together(client, calls)
        replies += batch
        if any(r.headers["x-worker-pid"] != writer for r in batch):
            return replies
    pytest.fail(f"worker {writer} answered all {len(replies)} reads; the other one never did")


def test_a_write_through_one_worker_is_never_followed_by_an_old_etag(
    gunicorn_bookstore: str, client: httpx.Client
) -> None:
    base = gunicorn_bookstore
    list_etag = client.get(f"{base}/books").headers["etag"]
    book_etag = client.get(f"{base}/books/5").headers["etag"]

    for round_ in range(ROUNDS):
        title = f"Round {round_}"
        written = client.put(
            f"{base}/books/5",
            json={"title": title, "author": "A", "year": 2000},
            headers={"If-Match": book_etag},
        )
        assert written.status_code == 200, written.text
        writer = written.headers["x-worker-pid"]
        new_book_etag = written.headers["etag"]
        assert new_book_etag != book_etag

        replies = _reads_reaching_the_other_worker(
            client,
            [(f"{base}/books/5", {"If-None-Match": book_etag})] * (READERS // 2)
            + [(f"{base}/books", {"If-None-Match": list_etag})] * (READERS // 2),
            writer,
        )
        list_etags = set()
        for reply in replies:
            assert reply.status_code == 200, (round_, reply.request.url, reply.status_code)
            if reply.request.url.path == "/books/5":
                assert reply.headers["etag"] == new_book_etag and reply.json()["title"] == title
            else:
                assert reply.headers["etag"] != list_etag
                assert next(b for b in reply.json() if b["id"] == 5)["title"] == title
                list_etags.add(reply.headers["etag"])
        assert len(list_etags) == 1  # every worker computes the same strong ETag for the new list
        book_etag, list_etag = new_book_etag, list_etags.pop()

        # The new validators are shared through Redis: a revalidation is a 304 whichever worker answers.
        revalidated = _reads_reaching_the_other_worker(
            client,
            [(f"{base}/books", {"If-None-Match": list_etag})] * (READERS // 2)
            + [(f"{base}/books/5", {"If-None-Match": book_etag})] * (READERS // 2),
            writer,
        )
        assert {r.status_code for r in revalidated} == {304}


def test_a_delete_is_seen_by_both_workers(gunicorn_bookstore: str, client: httpx.Client) -> None:
    base = gunicorn_bookstore
    etag = client.get(f"{base}/books/9").headers["etag"]
    deleted = client.delete(f"{base}/books/9", headers={"If-Match": etag})
    assert deleted.status_code == 204
    replies = _reads_reaching_the_other_worker(
        client, [(f"{base}/books/9", {"If-None-Match": etag})] * READERS, deleted.headers["x-worker-pid"]
    )
    assert {r.status_code for r in replies} == {404}
    assert all("etag" not in r.headers for r in replies)
    stats = [s.json() for s in _together(client, [(f"{base}/stats", {})] * READERS)]
    assert all(s["store"] == "redis" and s["breaker"] == "closed" for s in stats)

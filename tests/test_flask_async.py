"""``async def`` Flask views under ``@kit.conditional`` and ``@kit.cached`` (they used to answer 500,
"returned a coroutine"): the same exchange, the view awaited by Flask's own ``ensure_sync``."""

from __future__ import annotations

import asyncio

from flask import Flask

from etagkit.cache import TagCache
from etagkit.flask import ETagKit
from etagkit.metrics import Metrics


def _app() -> tuple[Flask, dict[str, int]]:
    app = Flask(__name__)
    cache, calls = TagCache(), {"conditional": 0, "cached": 0, "version": 0}
    cache.invalidate_tags("books")  # the store has seen the tag (a first store is never refused)
    kit = ETagKit(app, cache=cache, metrics=Metrics())

    @app.get("/books")
    @kit.conditional(tags=["books"])
    async def books() -> dict[str, object]:
        await asyncio.sleep(0)
        calls["conditional"] += 1
        return {"books": ["Dune"]}

    @app.get("/cached")
    @kit.cached(ttl=60, tags=["books"])
    async def cached() -> str:
        await asyncio.sleep(0)
        calls["cached"] += 1
        return "cached"

    @app.route("/book/<int:book_id>", methods=["GET", "PUT"])
    @kit.conditional(etag=lambda book_id: calls["version"])
    async def book(book_id: int) -> str:
        calls["version"] += 1
        return f"book {book_id}"

    return app, calls


def test_an_async_conditional_view_gets_its_etag_and_stored_304s() -> None:
    app, calls = _app()
    client = app.test_client()
    first = client.get("/books")
    assert first.status_code == 200 and first.json == {"books": ["Dune"]} and first.headers["ETag"]
    etag = first.headers["ETag"]
    statuses = [client.get("/books", headers={"If-None-Match": etag}).status_code for _ in range(3)]
    assert statuses == [304, 304, 304]
    assert calls["conditional"] <= 2  # after the store learned the route, revalidations never run it


def test_an_async_cached_view_runs_once() -> None:
    app, calls = _app()
    client = app.test_client()
    bodies = [client.get("/cached").get_data() for _ in range(3)]
    assert bodies == [b"cached"] * 3 and calls["cached"] == 1


def test_an_async_view_with_a_cheap_validator_is_not_run_on_a_stale_if_match() -> None:
    app, calls = _app()
    client = app.test_client()
    assert client.put("/book/1", headers={"If-Match": '"nope"'}).status_code == 412
    assert calls["version"] == 0
    assert client.get("/book/1").get_data() == b"book 1" and calls["version"] == 1

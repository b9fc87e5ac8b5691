"""Both adapters over real sockets: Flask under waitress, the middleware under gunicorn (2 workers),
stored validators in a real Redis, invalidated from a second process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from flask import Flask, request
from support import free_port, wait_for_port, waitress_server

from etagkit import etag_from_version
from etagkit.cache import TagCache
from etagkit.cache.redis import RedisStore
from etagkit.flask import ETagKit

pytestmark = pytest.mark.redis


def _invalidate_from_another_process(url: str, prefix: str, *tags: str) -> None:
    code = (
        "import sys; from etagkit.cache import TagCache; from etagkit.cache.redis import RedisStore; "
        "TagCache(RedisStore(sys.argv[1], prefix=sys.argv[2], socket_timeout=5, connect_timeout=5))"
        ".invalidate_tags(*sys.argv[3:])"
    )
    subprocess.run([sys.executable, "-c", code, url, prefix, *tags], check=True, timeout=60)


# -- Flask under waitress ---------------------------------------------------------------------------


def _bookstore(cache: TagCache, calls: Counter[str]) -> Flask:
    app = Flask(__name__)
    kit = ETagKit(app, cache=cache)
    books = {1: {"title": "Dune", "version": 1}}

    @app.get("/books")
    @kit.conditional(tags=["books"])
    def listing() -> Any:
        calls["books"] += 1
        return {"books": books}

    @app.route("/books/<int:book_id>", methods=["GET", "PUT"])
    @kit.conditional(
        etag=lambda book_id: books[book_id]["version"] if book_id in books else None,
        tags=["books", "book:{book_id}"],
        require_precondition=True,
    )
    def book(book_id: int) -> Any:
        calls["book"] += 1
        if request.method == "PUT":
            books[book_id] = {"title": (request.get_json() or {}).get("title", ""), "version": 2}
        return books[book_id]

    return app


@pytest.fixture
def waitress_flask(redis_url: str, redis_prefix: str) -> Iterator[tuple[str, Counter[str]]]:
    calls: Counter[str] = Counter()
    cache = TagCache(RedisStore(redis_url, prefix=redis_prefix, socket_timeout=5, connect_timeout=5))
    with waitress_server(_bookstore(cache, calls)) as port:
        yield f"http://127.0.0.1:{port}", calls


def test_flask_under_waitress_stored_etags_and_a_second_process(
    waitress_flask: tuple[str, Counter[str]], redis_url: str, redis_prefix: str
) -> None:
    base, calls = waitress_flask
    with httpx.Client(base_url=base, timeout=10) as client:
        tag = client.get("/books").headers["etag"]  # the 200 stored the validator
        for _ in range(5):
            hit = client.get("/books", headers={"If-None-Match": tag})
            assert hit.status_code == 304 and hit.headers["etag"] == tag and "content-type" not in hit.headers
        assert calls["books"] == 1  # the view never ran for these revalidations
        _invalidate_from_another_process(redis_url, redis_prefix, "books")
        assert client.get("/books", headers={"If-None-Match": tag}).status_code == 304
        assert calls["books"] == 2  # ran again right after the other process invalidated


def test_flask_under_waitress_writes(waitress_flask: tuple[str, Counter[str]]) -> None:
    base, calls = waitress_flask
    with httpx.Client(base_url=base, timeout=10) as client:
        listing = client.get("/books").headers["etag"]
        v1 = client.get("/books/1").headers["etag"]
        assert v1 == str(etag_from_version(1))
        assert client.put("/books/1", json={"title": "Emma"}).status_code == 428
        assert client.put("/books/1", json={"title": "Emma"}, headers={"If-Match": '"x"'}).status_code == 412
        assert calls["book"] == 1
        assert client.put("/books/1", json={"title": "Emma"}, headers={"If-Match": v1}).status_code == 200
        refreshed = client.get("/books", headers={"If-None-Match": listing})
        assert refreshed.status_code == 200 and refreshed.json()["books"]["1"]["title"] == "Emma"


# -- the middleware under gunicorn, two workers sharing Redis --------------------------------------

_WSGI_APP = textwrap.dedent(
    """
    import os
    import redis
    from etagkit.cache import TagCache
    from etagkit.cache.redis import RedisStore
    from etagkit.wsgi import ETagMiddleware

    URL, PREFIX = os.environ["IT_REDIS_URL"], os.environ["IT_PREFIX"]
    counter = redis.Redis.from_url(URL)

    def catalog(environ, start_response):
        counter.incr(PREFIX + "app-calls")
        body = b'{"books": ["Dune", "Emma"]}'
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                                  ("Cache-Tag", "books")])
        return [body]

    store = RedisStore(URL, prefix=PREFIX, socket_timeout=5, connect_timeout=5)
    app = ETagMiddleware(catalog, cache=TagCache(store))
    """
)


@pytest.fixture
def gunicorn_app(tmp_path: Path, redis_url: str, redis_prefix: str) -> Iterator[str]:
    (tmp_path / "itapp.py").write_text(_WSGI_APP)
    port = free_port()
    env = {**os.environ, "IT_REDIS_URL": redis_url, "IT_PREFIX": redis_prefix}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-w",
            "2",
            "-b",
            f"127.0.0.1:{port}",
            "--chdir",
            str(tmp_path),
            "itapp:app",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_middleware_under_gunicorn_shares_stored_etags_across_workers(
    gunicorn_app: str, redis_url: str, redis_prefix: str
) -> None:
    counter = redis.Redis.from_url(redis_url)

    def app_calls() -> int:
        return int(counter.get(redis_prefix + "app-calls") or 0)

    try:
        with httpx.Client(base_url=gunicorn_app, timeout=10) as client:
            tag = client.get("/catalog").headers["etag"]
            # "books" is first seen in a response header (no mark yet), so the 200's store is
            # refused; the first revalidation stores the validator (or a worker has it already)
            for _ in range(2):
                assert client.get("/catalog", headers={"If-None-Match": tag}).status_code == 304
            calls = app_calls()
            for _ in range(10):  # new connections: both workers answer some of them
                with httpx.Client(base_url=gunicorn_app, timeout=10) as fresh:
                    assert fresh.get("/catalog", headers={"If-None-Match": tag}).status_code == 304
            assert app_calls() == calls
            _invalidate_from_another_process(redis_url, redis_prefix, "books")
            again = client.get("/catalog", headers={"If-None-Match": tag})
            assert again.status_code == 304 and app_calls() == calls + 1
            assert client.get("/catalog").headers.get("cache-tag") is None
    finally:
        counter.close()

"""A crafted record in the real store (MemoryStore and Redis) is a miss (issue 13.3): the request gets
the app's 200, never a 500, and the next store overwrites the record. Both adapters run under a real
waitress server on loopback; the record is written with the store's own API, as an attacker with
access to the store (or a broken writer) would leave it."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from flask import Flask
from support import waitress_server

from etagkit.cache import MemoryStore, TagCache
from etagkit.core.keys import origin_of, path_tag, representation_key
from etagkit.core.records import CachedResponse, StoredValidator
from etagkit.flask import ETagKit
from etagkit.wsgi import ETagMiddleware

U, R = "\x1f", "\x1e"
CRAFTED_VALIDATORS = {
    # '²'.isdigit() is True but int('²') raises: once a 500 on every worker (issue 13.3)
    "superscript-length": U.join(("etagkit-validator-1", '"crafted"', "", "²", "", "")),
    # a CR LF in a stored 304 field: werkzeug / waitress refuse to send it
    "crlf-field": U.join(("etagkit-validator-1", '"crafted"', "", "1", "", "Cache-Control: x\r\nX-Evil: 1")),
    # a Vary index whose names are no list: a miss, and the next store rewrites it
    "bad-vary-index": {"vary-index": "accept"},
    "garbage": "\x00\xff" * 10,
}
CRAFTED_RESPONSES = {
    "crlf-field": {"s": 200, "h": [["ETag", '"crafted"'], ["X-Evil", "a\r\nSet-Cookie: s=1"]], "b": b"evil"},
    "connection-field": {"s": 200, "h": [["ETag", '"crafted"'], ["Connection", "close"]], "b": b"evil"},
    "set-cookie": {"s": 200, "h": [["ETag", '"crafted"'], ["Set-Cookie", "session=alice"]], "b": b"evil"},
    "status-as-text": {"s": "200", "h": [["ETag", '"crafted"']], "b": b"evil"},
    "wrong-length": {"s": 200, "h": [["ETag", '"crafted"'], ["Content-Length", "99"]], "b": b"evil"},
}


@pytest.fixture(params=["memory", "redis"])
def cache(request: pytest.FixtureRequest) -> TagCache:
    if request.param == "memory":
        return TagCache(MemoryStore())
    from etagkit.cache.redis import RedisStore

    url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
    return TagCache(RedisStore(url, prefix=prefix, socket_timeout=5, connect_timeout=5))


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    """``app`` under a real waitress on loopback; its ``host:port``."""
    with waitress_server(app, threads=2) as port:
        yield f"127.0.0.1:{port}"


@pytest.mark.parametrize("crafted", CRAFTED_VALIDATORS.values(), ids=list(CRAFTED_VALIDATORS))
def test_a_crafted_validator_is_a_miss_then_overwritten(cache: TagCache, crafted: object) -> None:
    calls: Counter[str] = Counter()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        calls["app"] += 1
        start_response("200 OK", [("Content-Type", "text/plain"), ("Cache-Tag", "books")])
        return [b"the real list"]

    with serve(ETagMiddleware(app, cache=cache)) as host, httpx.Client(base_url=f"http://{host}") as client:
        key = representation_key("GET", "/books", "", origin=origin_of("http", host))
        client.get("/books")  # a tag learned from the response: its first store only creates its mark
        real = client.get("/books")
        assert real.status_code == 200 and StoredValidator.from_value(cache.get(key)) is not None
        assert client.get("/books", headers={"If-None-Match": real.headers["etag"]}).status_code == 304

        cache.set(key, crafted, tags=[path_tag("/books", origin_of("http", host))])
        before = calls["app"]
        answer = client.get("/books", headers={"If-None-Match": '"crafted"'})
        assert answer.status_code == 200 and answer.text == "the real list"
        assert calls["app"] == before + 1  # a miss: the app answered
        # the 200 stored its validator again, over the crafted record
        overwritten = StoredValidator.from_value(cache.get(key))
        assert overwritten is not None and str(overwritten.etag) == real.headers["etag"]
        again = client.get("/books", headers={"If-None-Match": real.headers["etag"]})
        assert again.status_code == 304 and calls["app"] == before + 1


@pytest.mark.parametrize("crafted", CRAFTED_RESPONSES)
def test_a_crafted_cached_response_is_a_miss_then_overwritten(cache: TagCache, crafted: str) -> None:
    calls: Counter[str] = Counter()
    app = Flask(__name__)
    kit = ETagKit(app, cache=cache)

    @app.get("/top")
    @kit.cached(ttl=300, tags=["books"])
    def top() -> Any:
        calls["view"] += 1
        return {"top": ["Dune"]}

    with serve(app) as host, httpx.Client(base_url=f"http://{host}") as client:
        origin = origin_of("http", host)
        key = representation_key("GET", "/top", "", origin=origin, kind="response")
        assert client.get("/top").status_code == 200
        assert CachedResponse.from_value(cache.get(key)) is not None

        cache.set(key, CRAFTED_RESPONSES[crafted], tags=[path_tag("/top", origin), "books"])
        answer = client.get("/top")
        assert answer.status_code == 200 and answer.json() == {"top": ["Dune"]}
        assert "x-evil" not in answer.headers and "set-cookie" not in answer.headers
        assert calls["view"] == 2  # a miss: the view ran
        restored = CachedResponse.from_value(cache.get(key))
        assert restored is not None and b"Dune" in restored.body
        assert client.get("/top").json() == {"top": ["Dune"]} and calls["view"] == 2  # served from the cache

"""The ASGI middleware over a real Redis (a store that may block: its calls run off the event loop).

A write is never acknowledged unless its invalidation was recorded first: while the private Redis is
stopped, a write is refused with 503 + Retry-After and never reaches the app; reads go on, statelessly;
once Redis is back the write is applied. Stored 304s are answered from Redis without the app.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest

from etagkit.asgi import ETagMiddleware
from etagkit.cache import TagCache
from etagkit.cache.redis import RedisStore

pytestmark = pytest.mark.redis


class Doc:
    def __init__(self) -> None:
        self.text, self.writes, self.reads = b"v1", 0, 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["method"] == "PUT":
            self.writes += 1
            self.text = b"v%d" % (self.writes + 1)
            await send({"type": "http.response.start", "status": 204, "headers": [(b"cache-tag", b"doc")]})
            await send({"type": "http.response.body", "body": b""})
            return
        self.reads += 1
        headers = [(b"content-type", b"text/plain"), (b"cache-tag", b"doc")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": self.text})


def _client(app: Any) -> Any:
    async def call(method: str, headers: dict[str, str]) -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://doc") as client:
            return await client.request(method, "/doc", headers=headers)

    return lambda method, headers: asyncio.run(call(method, headers))


def test_stored_304s_come_from_redis_without_the_app(redis_url: str, redis_prefix: str) -> None:
    store = RedisStore(redis_url, prefix=f"{redis_prefix}{uuid.uuid4().hex[:8]}:")
    try:
        cache, doc = TagCache(store), Doc()
        cache.invalidate_tags("doc")
        call = _client(ETagMiddleware(doc, cache=cache))
        etag = call("GET", {}).headers["etag"]
        call("GET", {"If-None-Match": etag})  # the store learns the path's tag
        reads = doc.reads
        assert [call("GET", {"If-None-Match": etag}).status_code for _ in range(3)] == [304] * 3
        assert doc.reads == reads
    finally:
        store.close()


def test_a_write_is_refused_while_its_invalidation_cannot_be_recorded(private_redis: Any) -> None:
    store = RedisStore(private_redis.url, prefix="guarantee:", socket_timeout=0.5, connect_timeout=0.5)
    try:
        cache, doc = TagCache(store), Doc()
        call = _client(ETagMiddleware(doc, cache=cache))
        first = call("GET", {})
        assert first.status_code == 200 and "etag" in first.headers
        private_redis.stop()
        refused = call("PUT", {"If-Match": first.headers["etag"]})
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert doc.writes == 0  # never ran: nothing acknowledged, nothing lost
        assert call("GET", {}).status_code == 200  # reads go on, statelessly
        private_redis.start()
        deadline = time.monotonic() + 30  # the breaker closes and the owed invalidation is paid
        while not cache.healthy and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cache.healthy
        current = call("GET", {}).headers["etag"]
        assert call("PUT", {"If-Match": current}).status_code == 204 and doc.writes == 1
    finally:
        store.close()

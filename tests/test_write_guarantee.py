"""A write is never acknowledged unless its invalidation was recorded first (issue 12).

Through every face, over a private Redis the test stops: while it is down, a write is refused with
503 + Retry-After and never reaches the app (nothing acknowledged, nothing lost); reads keep being
answered, statelessly; once Redis is back the same write is applied and answered.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, request
from werkzeug.test import Client

from etagkit.cache import TagCache
from etagkit.cache.redis import RedisStore
from etagkit.flask import ETagKit
from etagkit.flow import ConditionalFlow
from etagkit.wsgi import ETagMiddleware

pytestmark = pytest.mark.redis

Call = Callable[[str, dict[str, str]], tuple[int, dict[str, str]]]


class Doc:
    def __init__(self) -> None:
        self.text, self.writes = b"v1", 0

    def answer(self, method: str) -> tuple[int, list[tuple[str, str]], bytes]:
        if method == "PUT":
            self.writes += 1
            self.text = b"v%d" % (self.writes + 1)
            return 204, [], b""
        return 200, [("Content-Type", "text/plain"), ("Content-Length", str(len(self.text)))], self.text


def _wsgi(doc: Doc, cache: TagCache) -> Call:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        status, headers, body = doc.answer(environ["REQUEST_METHOD"])
        start_response(f"{status} X", [*headers, ("Cache-Tag", "doc")])
        return [body]

    client = Client(ETagMiddleware(app, cache=cache))
    return lambda method, headers: _seen(client.open("/doc", method=method, headers=headers))


def _flask(doc: Doc, cache: TagCache) -> Call:
    app = Flask(__name__)
    kit = ETagKit(app, cache=cache)

    @app.route("/doc", methods=["GET", "PUT"])
    @kit.conditional(tags=["doc"])
    def view() -> Any:
        status, headers, body = doc.answer(request.method)
        return body, status, headers

    client = app.test_client()
    return lambda method, headers: _seen(client.open("/doc", method=method, headers=headers))


def _flow(doc: Doc, cache: TagCache) -> Call:
    flow = ConditionalFlow(cache)

    def call(method: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
        opened = flow.open(method, "/doc", {"Host": "localhost", **headers}, tags=["doc"])
        if opened.answer is not None:
            return opened.answer.status, dict(opened.answer.headers)
        status, response_headers, body = doc.answer(method)
        reply = opened.respond(status, response_headers, body)
        opened.close()
        return reply.status, dict(reply.headers)

    return call


def _seen(response: Any) -> tuple[int, dict[str, str]]:
    return response.status_code, dict(response.headers)


FACES = {"wsgi": _wsgi, "flask": _flask, "flow": _flow}


@pytest.mark.parametrize("face", sorted(FACES))
def test_a_write_is_refused_while_its_invalidation_cannot_be_recorded(face: str, private_redis: Any) -> None:
    store = RedisStore(private_redis.url, prefix="guarantee:", socket_timeout=0.5, connect_timeout=0.5)
    try:
        cache, doc = TagCache(store), Doc()
        call = FACES[face](doc, cache)
        status, headers = call("GET", {})
        assert status == 200 and "ETag" in headers
        private_redis.stop()
        status, headers = call("PUT", {"If-Match": headers["ETag"]})
        assert status == 503 and headers["Retry-After"] == "1"
        assert doc.writes == 0  # never ran: nothing acknowledged, nothing lost
        assert call("GET", {})[0] == 200  # reads go on, statelessly
        private_redis.start()
        deadline = time.monotonic() + 30  # the breaker closes and the owed invalidation is paid
        while not cache.healthy and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cache.healthy
        current = call("GET", {})[1]["ETag"]
        assert call("PUT", {"If-Match": current})[0] == 204 and doc.writes == 1
    finally:
        store.close()

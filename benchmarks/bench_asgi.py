"""ASGI: a stored 304 through ``etagkit.asgi.ETagMiddleware``, against the floors of the same stack.

* The middleware (a ``TagCache`` on a ``MemoryStore``) answering a stored validator, vs a raw ASGI
  app that sends a constant 304: what the middleware adds per request (target: <= 10 µs added).
* FastAPI: the same stored 304 in front of a FastAPI app, vs FastAPI's own endpoint returning a
  constant 304 (target: <= 0.5x: the stored answer comes before routing, validation and the endpoint).

Both contenders of a row run in the same event loop, in interleaved rounds (``_harness``); every call
gets a fresh scope (frameworks write into it) and awaits ``app(scope, receive, send)`` directly.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from typing import Any

from benchmarks._harness import Timing, measure_loops, row

BODY = b'{"books": [' + b", ".join(b'{"id": %d, "title": "Title %d"}' % (i, i) for i in range(10)) + b"]}"


def _scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"bench.local"), *headers], "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
    }  # fmt: skip


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


def _caller(app: Any, path: str, headers: list[tuple[bytes, bytes]], expect: int) -> Callable[[int], None]:
    """A loop of ``n`` requests through ``app``; checks that each one answered ``expect``."""
    loop = asyncio.new_event_loop()
    base = _scope(path, headers)
    got: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            got.append(message["status"])

    async def many(n: int) -> None:
        for _ in range(n):
            await app(dict(base), _receive, send)
        if got[-1] != expect:
            raise AssertionError(f"expected {expect}, got {got[-1]}")
        got.clear()

    return lambda n: loop.run_until_complete(many(n))


def _etag(app: Any, path: str) -> bytes:
    heads: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            heads.append(message)

    async def twice() -> None:  # the second GET stores the validator under the path's known tag
        await app(_scope(path, []), _receive, send)
        tag = dict(heads[0]["headers"])[b"etag"]
        await app(_scope(path, [(b"if-none-match", tag)]), _receive, send)

    asyncio.run(twice())
    return bytes(dict(heads[0]["headers"])[b"etag"])


def raw_scenario(quick: bool) -> list[dict[str, Any]]:
    from etagkit.asgi import ETagMiddleware
    from etagkit.cache import TagCache

    async def books(scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"application/json"), (b"cache-tag", b"books")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": BODY})

    async def constant_304(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 304, "headers": [(b"etag", b'"constant"')]})
        await send({"type": "http.response.body", "body": b""})

    cache = TagCache()
    cache.invalidate_tags("books")
    middleware = ETagMiddleware(books, cache=cache)
    tag = _etag(middleware, "/books")
    conditional = [(b"if-none-match", tag)]
    timings: dict[str, Timing] = measure_loops(
        {
            "etagkit": _caller(middleware, "/books", conditional, 304),
            "raw": _caller(constant_304, "/books", conditional, 304),
        },
        quick,
    )
    return [
        row(
            "ASGI ETagMiddleware stored 304 (app never runs)",
            timings["etagkit"],
            "raw ASGI app sending a constant 304",
            timings["raw"],
            target="<= 10us added",
        )
    ]


def fastapi_scenario(quick: bool) -> list[dict[str, Any]]:
    from fastapi import FastAPI, Response

    from etagkit.asgi import ETagMiddleware
    from etagkit.cache import TagCache
    from etagkit.starlette import ETagRoutes

    cache = TagCache()
    cache.invalidate_tags("books")
    app = FastAPI()
    app.add_middleware(ETagMiddleware, cache=cache)
    routes = ETagRoutes()

    @app.get("/books/{shelf}")
    @routes.conditional(tags=["books"])
    async def books(shelf: int) -> list[dict[str, Any]]:
        return [{"id": i, "title": f"Title {i}", "shelf": shelf} for i in range(10)]

    plain = FastAPI()

    @plain.get("/books/{shelf}")
    async def constant_304(shelf: int) -> Response:
        return Response(status_code=304, headers={"ETag": '"constant"'})

    tag = _etag(app, "/books/1")
    conditional = [(b"if-none-match", tag)]
    timings = measure_loops(
        {
            "etagkit": _caller(app, "/books/1", conditional, 304),
            "fastapi": _caller(plain, "/books/1", conditional, 304),
        },
        quick,
    )
    return [
        row(
            "FastAPI + ASGI ETagMiddleware stored 304",
            timings["etagkit"],
            "FastAPI endpoint returning a constant 304",
            timings["fastapi"],
            target="<= 0.5x",
        )
    ]


def run(quick: bool) -> list[dict[str, Any]]:
    """Every ASGI scenario, as rows for the benchmark runner."""
    return raw_scenario(quick) + fastapi_scenario(quick)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="etagkit ASGI benchmarks")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    args = parser.parse_args(argv)
    from benchmarks.__main__ import table

    print(table(run(args.quick)))


if __name__ == "__main__":
    main(sys.argv[1:])

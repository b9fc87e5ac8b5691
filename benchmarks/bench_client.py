"""The async client: fresh hits and the 304 path, against plain httpx and hishel, on loopback.

* **Fresh hit** through the transport (``ETagTransport.handle_async_request``: lookup, freshness,
  a response built from the stored record): target <= 20 µs (issue 6). Shown beside a plain httpx
  transport round trip to the same origin, for scale.
* **Fresh hit** through the whole client (``ETagClient.get``), against hishel 2's
  ``AsyncCacheClient`` (RFC mode, private, its SQLite storage) on the same resource, for information:
  most of this figure is httpx's own request building.
* **304 path**: a ``no-cache`` resource revalidated on every call (If-None-Match out, 304 back, the
  stored body returned) against a plain ``httpx.AsyncClient.get`` of the same resource (a 200 with
  its body): target <= 1.2x (issue 6), for a small body (4 KiB: the strict case, where the
  cache's own work shows most) and for a list the size of the bookstore's ``GET /books`` (~120 KiB).
  Also against plain httpx sending the same If-None-Match itself (the same 304 on the wire, so the
  difference is the cache's own cost), and against hishel's 304 path.

The origin is aiohttp on 127.0.0.1 in its own process, so it shares no interpreter with the client
measured. Runnable alone: ``python benchmarks/bench_client.py [--quick]``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` and ``etagkit`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from aiohttp import web

from benchmarks._harness import Loop, measure_loops, row
from etagkit.client import ETagClient, ETagTransport, Source


def _books(count: int) -> bytes:
    return json.dumps(
        [{"id": i, "title": f"Book {i}", "author": "Someone", "year": 1900 + i % 120} for i in range(count)]
    ).encode()


SMALL = _books(60)  # about 4 KiB
LIST = _books(1600)  # about the bookstore's GET /books (1,000 books: ~120 KiB of JSON)
ETAG = '"books-1"'


async def _handle(request: web.Request) -> web.Response:
    cache_control = "max-age=3600" if request.path == "/fresh" else "no-cache"
    headers = {"ETag": ETAG, "Cache-Control": cache_control}
    if request.headers.get("If-None-Match") == ETAG:
        return web.Response(status=304, headers=headers)
    body = LIST if request.path == "/list" else SMALL
    return web.Response(body=body, headers=headers, content_type="application/json")


def serve(port: int) -> None:
    """The origin: /fresh (max-age=3600), /nocache (no-cache, 4 KiB) and /list (no-cache, ~120 KiB)."""
    app = web.Application()
    app.router.add_get("/{name}", _handle)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


@contextmanager
def origin() -> Iterator[str]:
    """The origin in its own process (no GIL shared with the client being measured)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(15)


def _driver(loop: asyncio.AbstractEventLoop, call: Callable[[], Awaitable[object]]) -> Loop:
    async def many(n: int) -> None:
        for _ in range(n):
            await call()

    return lambda n: loop.run_until_complete(many(n))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 15
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def run(quick: bool) -> list[dict[str, Any]]:
    import hishel
    from hishel.httpx import AsyncCacheClient

    loop = asyncio.new_event_loop()
    with origin() as base, tempfile.TemporaryDirectory() as tmp:
        fresh, nocache, listing = f"{base}/fresh", f"{base}/nocache", f"{base}/list"
        inner = httpx.AsyncHTTPTransport()
        transport = ETagTransport(inner)
        client = ETagClient()
        plain = httpx.AsyncClient()
        storage = hishel.AsyncSqliteStorage(database_path=str(Path(tmp) / "hishel.db"))
        peer = AsyncCacheClient(storage=storage, rfc=hishel.CacheOptions(shared=False))
        request = httpx.Request("GET", fresh)
        conditional = {"If-None-Match": ETAG}

        async def warm() -> None:
            assert (await transport.handle_async_request(request)).extensions["etagkit"] is Source.NETWORK
            assert (await transport.handle_async_request(request)).extensions["etagkit"] is Source.CACHE
            for url in (fresh, nocache, listing):
                await client.get(url)
                await peer.get(url)
            assert (await client.get(nocache)).extensions["etagkit"] is Source.REVALIDATED
            assert (await client.get(fresh)).extensions["etagkit"] is Source.CACHE
            assert (await plain.get(nocache, headers=conditional)).status_code == 304

        async def hit_and_read() -> None:
            response = await transport.handle_async_request(request)
            await response.aread()

        async def raw_round_trip() -> None:
            response = await inner.handle_async_request(httpx.Request("GET", fresh))
            await response.aread()
            await response.aclose()

        try:
            loop.run_until_complete(warm())
            hit = measure_loops(
                {
                    "transport": _driver(loop, lambda: transport.handle_async_request(request)),
                    "read": _driver(loop, hit_and_read),
                    "raw": _driver(loop, raw_round_trip),
                },
                quick,
            )
            client_hit = measure_loops(
                {
                    "etagkit": _driver(loop, lambda: client.get(fresh)),
                    "hishel": _driver(loop, lambda: peer.get(fresh)),
                },
                quick,
            )
            revalidation = measure_loops(
                {
                    "etagkit": _driver(loop, lambda: client.get(nocache)),
                    "plain": _driver(loop, lambda: plain.get(nocache)),
                    "plain_inm": _driver(loop, lambda: plain.get(nocache, headers=conditional)),
                    "hishel": _driver(loop, lambda: peer.get(nocache)),
                },
                quick,
            )
            big = measure_loops(
                {
                    "etagkit": _driver(loop, lambda: client.get(listing)),
                    "plain": _driver(loop, lambda: plain.get(listing)),
                },
                quick,
            )
        finally:
            for closing in (transport, client, plain, peer):
                loop.run_until_complete(closing.aclose())
            loop.close()
    return [
        row(
            "fresh hit, ETagTransport.handle_async_request",
            hit["transport"],
            "httpx transport round trip (200, same origin)",
            hit["raw"],
            target="<= 20us",
        ),
        row(
            "fresh hit + await response.aread()",
            hit["read"],
            "httpx transport round trip (200, same origin)",
            hit["raw"],
            note="aread is httpx's own body reading and decoding, paid for any transport's response",
        ),
        row(
            "fresh hit, ETagClient.get",
            client_hit["etagkit"],
            "hishel 2 AsyncCacheClient.get",
            client_hit["hishel"],
        ),
        row(
            "304 path (no-cache), ETagClient.get",
            revalidation["etagkit"],
            "plain httpx.AsyncClient.get (200 + 4 KiB body)",
            revalidation["plain"],
            target="<= 1.2x",
        ),
        row(
            "304 path (no-cache, ~120 KiB list), ETagClient.get",
            big["etagkit"],
            "plain httpx.AsyncClient.get (200 + the list)",
            big["plain"],
            target="<= 1.2x",
            note="a body the size of the bookstore's GET /books",
        ),
        row(
            "304 path (no-cache), ETagClient.get",
            revalidation["etagkit"],
            "plain httpx get with the same If-None-Match (304)",
            revalidation["plain_inm"],
            note="the same 304 on the wire: the difference is the cache's own work",
        ),
        row(
            "304 path (no-cache), ETagClient.get",
            revalidation["etagkit"],
            "hishel 2 AsyncCacheClient.get (304 path)",
            revalidation["hishel"],
        ),
    ]


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        serve(int(sys.argv[2]))
        return
    for result in run("--quick" in sys.argv[1:]):
        target = result["target"] or "-"
        print(
            f"{result['scenario']:<46} {result['etagkit_s'] * 1e6:8.1f} us  vs {result['baseline']:<50}"
            f" {result['baseline_s'] * 1e6:8.1f} us  ratio {result['ratio']:5.2f}  target {target}"
        )


if __name__ == "__main__":
    main()

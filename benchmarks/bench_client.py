"""The client (issue 14): fresh hits, the 304 path and streaming, against plain httpx, hishel and the
client as it was before issue 14, on loopback, all in the same rounds.

* **Fresh hit** through the transport (``ETagTransport.handle_async_request``): target <= 20 µs
  (issue 6), beside a plain httpx transport round trip for scale.
* **Fresh hit through the whole client** (``ETagClient.get`` and the sync ``ETagSyncClient.get``)
  against the client *before issue 14* (commit ``38cd4dd``, loaded from git into a private package
  ``etagkit_before`` in the same process): target <= 0.5x. Also against hishel 2 (for information).
* **304 path**: a ``no-cache`` resource revalidated on every call (If-None-Match out, 304 back, the
  stored body returned) against plain httpx sending the same If-None-Match itself (the same 304 on
  the wire, so the difference is the cache's own work): target <= 1.1x, async and sync. Also against
  a plain 200 of a 4 KiB body and of a ~120 KiB list (the bookstore's ``GET /books``), and hishel.
* **First chunk of a streamed response** (``client.stream()``, first raw chunk, then close) from an
  origin that sends 1 KiB, then waits 0.2 s before the rest: target <= 1.1x plain httpx.

The origin is aiohttp on 127.0.0.1 in its own process, so it shares no interpreter with the client
measured. Every figure is wall time (``clock="wall"``): the calls wait on sockets (and hishel on a
thread). Runnable alone: ``python benchmarks/bench_client.py [--quick]``.
"""

from __future__ import annotations

import asyncio
import importlib
import io
import json
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` and ``etagkit`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from aiohttp import web

from benchmarks._harness import Loop, Timing, measure_loops, row
from etagkit.client import ETagClient, ETagSyncClient, ETagTransport, Source

BEFORE = "38cd4dd"  # the last commit before issue 14 (the client as one module, etagkit/client.py)
ROOT = Path(__file__).resolve().parent.parent


def _books(count: int) -> bytes:
    return json.dumps(
        [{"id": i, "title": f"Book {i}", "author": "Someone", "year": 1900 + i % 120} for i in range(count)]
    ).encode()


SMALL = _books(60)  # about 4 KiB
LIST = _books(1600)  # about the bookstore's GET /books (1,000 books: ~120 KiB of JSON)
ETAG = '"books-1"'
STREAM_DELAY = 0.2  # seconds between a streamed response's first chunk and the rest


async def _handle(request: web.Request) -> web.StreamResponse:
    if request.path == "/stream":
        return await _stream(request)
    cache_control = "max-age=3600" if request.path == "/fresh" else "no-cache"
    headers = {"ETag": ETAG, "Cache-Control": cache_control}
    if request.headers.get("If-None-Match") == ETAG:
        return web.Response(status=304, headers=headers)
    body = LIST if request.path == "/list" else SMALL
    return web.Response(body=body, headers=headers, content_type="application/json")


async def _stream(request: web.Request) -> web.StreamResponse:
    """1 KiB at once, the rest (63 KiB) after STREAM_DELAY, chunked: a slow producer."""
    response = web.StreamResponse(headers={"Cache-Control": "max-age=60", "Content-Type": "text/plain"})
    await response.prepare(request)
    try:
        await response.write(b"x" * 1024)
        await asyncio.sleep(STREAM_DELAY)
        await response.write(b"y" * 63 * 1024)
        await response.write_eof()
    except (ConnectionError, RuntimeError):
        pass  # the client read its first chunk and went away
    return response


def serve(port: int) -> None:
    """The origin: /fresh (max-age=3600), /nocache (no-cache, 4 KiB), /list (no-cache, ~120 KiB)
    and /stream (a slow chunked body)."""
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


def before_client(into: str) -> ModuleType | None:
    """The client as it was before issue 14 (``BEFORE``), as ``etagkit_before.client``; None
    without git or that commit (the rows comparing with it are then left out)."""
    try:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", BEFORE, "etagkit"], capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    (Path(into) / "etagkit").rename(Path(into) / "etagkit_before")
    sys.path.insert(0, into)
    try:
        return importlib.import_module("etagkit_before.client")
    finally:
        sys.path.remove(into)


def _driver(loop: asyncio.AbstractEventLoop, call: Callable[[], Awaitable[object]]) -> Loop:
    async def many(n: int) -> None:
        for _ in range(n):
            await call()

    return lambda n: loop.run_until_complete(many(n))


def _sync(call: Callable[[], object]) -> Loop:
    def many(n: int) -> None:
        for _ in range(n):
            call()

    return many


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


async def _first_chunk(client: httpx.AsyncClient, url: str) -> None:
    async with client.stream("GET", url) as response:
        async for chunk in response.aiter_raw():
            assert chunk
            break


def run(quick: bool) -> list[dict[str, Any]]:
    import hishel
    from hishel.httpx import AsyncCacheClient

    loop = asyncio.new_event_loop()
    with origin() as base, tempfile.TemporaryDirectory() as tmp:
        old = before_client(tmp)
        fresh, nocache, listing, stream = (
            f"{base}/{name}" for name in ("fresh", "nocache", "list", "stream")
        )
        inner = httpx.AsyncHTTPTransport()
        transport = ETagTransport(inner)
        client = ETagClient()
        sync_client = ETagSyncClient()
        before = old.ETagClient() if old is not None else None
        plain = httpx.AsyncClient()
        sync_plain = httpx.Client()
        storage = hishel.AsyncSqliteStorage(database_path=str(Path(tmp) / "hishel.db"))
        peer = AsyncCacheClient(storage=storage, rfc=hishel.CacheOptions(shared=False))
        request = httpx.Request("GET", fresh)
        conditional = {"If-None-Match": ETAG}

        async def warm() -> None:
            first = await transport.handle_async_request(request)
            assert first.extensions["etagkit"] is Source.NETWORK
            await first.aread()  # stored once its body is complete
            assert (await transport.handle_async_request(request)).extensions["etagkit"] is Source.CACHE
            for url in (fresh, nocache, listing):
                await client.get(url)
                await peer.get(url)
                sync_client.get(url)
                if before is not None:
                    await before.get(url)
            assert (await client.get(nocache)).extensions["etagkit"] is Source.REVALIDATED
            assert (await client.get(fresh)).extensions["etagkit"] is Source.CACHE
            assert sync_client.get(nocache).extensions["etagkit"] is Source.REVALIDATED
            assert sync_client.get(fresh).extensions["etagkit"] is Source.CACHE
            assert (await plain.get(nocache, headers=conditional)).status_code == 304

        async def raw_round_trip() -> None:
            response = await inner.handle_async_request(httpx.Request("GET", fresh))
            await response.aread()
            await response.aclose()

        timings: dict[str, dict[str, Timing]] = {}
        try:
            loop.run_until_complete(warm())
            timings["hit"] = measure_loops(
                {
                    "transport": _driver(loop, lambda: transport.handle_async_request(request)),
                    "raw": _driver(loop, raw_round_trip),
                },
                quick,
                clock="wall",  # every call is an HTTP round trip to the origin process
            )
            hits: dict[str, Loop] = {
                "etagkit": _driver(loop, lambda: client.get(fresh)),
                "sync": _sync(lambda: sync_client.get(fresh)),
                "hishel": _driver(loop, lambda: peer.get(fresh)),
            }
            if before is not None:
                hits["before"] = _driver(loop, lambda: before.get(fresh))
            # wall: hishel's storage runs SQLite in a worker thread, the thread's CPU time would miss it
            timings["client_hit"] = measure_loops(hits, quick, clock="wall")
            revalidations: dict[str, Loop] = {
                "etagkit": _driver(loop, lambda: client.get(nocache)),
                "plain_inm": _driver(loop, lambda: plain.get(nocache, headers=conditional)),
                "sync": _sync(lambda: sync_client.get(nocache)),
                "sync_plain_inm": _sync(lambda: sync_plain.get(nocache, headers=conditional)),
                "plain": _driver(loop, lambda: plain.get(nocache)),
                "hishel": _driver(loop, lambda: peer.get(nocache)),
            }
            if before is not None:
                revalidations["before"] = _driver(loop, lambda: before.get(nocache))
            timings["revalidation"] = measure_loops(revalidations, quick, clock="wall")
            timings["big"] = measure_loops(
                {
                    "etagkit": _driver(loop, lambda: client.get(listing)),
                    "plain": _driver(loop, lambda: plain.get(listing)),
                },
                quick,
                clock="wall",  # every call is an HTTP round trip to the origin process
            )
            timings["stream"] = measure_loops(
                {
                    "etagkit": _driver(loop, lambda: _first_chunk(client, stream)),
                    "plain": _driver(loop, lambda: _first_chunk(plain, stream)),
                },
                quick,
                clock="wall",  # every call is an HTTP round trip to the origin process
            )
        finally:
            for closing in (transport, client, plain, peer, *((before,) if before is not None else ())):
                loop.run_until_complete(closing.aclose())
            sync_client.close()
            sync_plain.close()
            loop.close()
    return _rows(timings)


def _rows(t: dict[str, dict[str, Timing]]) -> list[dict[str, Any]]:
    hit, client_hit, reval = t["hit"], t["client_hit"], t["revalidation"]
    before_name = f"the client before issue 14 ({BEFORE}), ETagClient.get"
    rows = [
        row(
            "fresh hit, ETagTransport.handle_async_request",
            hit["transport"],
            "httpx transport round trip (200, same origin)",
            hit["raw"],
            target="<= 20us",
        ),
    ]
    if "before" in client_hit:
        rows += [
            row(
                "fresh hit, ETagClient.get",
                client_hit["etagkit"],
                before_name,
                client_hit["before"],
                target="<= 0.5x",
            ),
            row(
                "fresh hit, ETagSyncClient.get",
                client_hit["sync"],
                before_name,
                client_hit["before"],
                target="<= 0.5x",
            ),
        ]
    rows += [
        row(
            "fresh hit, ETagClient.get",
            client_hit["etagkit"],
            "hishel 2 AsyncCacheClient.get",
            client_hit["hishel"],
        ),
        row(
            "304 path (no-cache), ETagClient.get",
            reval["etagkit"],
            "plain httpx.AsyncClient.get with the same If-None-Match (304)",
            reval["plain_inm"],
            target="<= 1.1x",
            note="the same 304 on the wire: the difference is the cache's own work",
        ),
        row(
            "304 path (no-cache), ETagSyncClient.get",
            reval["sync"],
            "plain httpx.Client.get with the same If-None-Match (304)",
            reval["sync_plain_inm"],
            target="<= 1.1x",
            note="the same 304 on the wire: the difference is the cache's own work",
        ),
    ]
    if "before" in reval:
        rows.append(
            row("304 path (no-cache), ETagClient.get", reval["etagkit"], before_name, reval["before"])
        )
    rows += [
        row(
            "304 path (no-cache), ETagClient.get",
            reval["etagkit"],
            "plain httpx.AsyncClient.get (200 + 4 KiB body)",
            reval["plain"],
            target="<= 1.2x",
        ),
        row(
            "304 path (no-cache, ~120 KiB list), ETagClient.get",
            t["big"]["etagkit"],
            "plain httpx.AsyncClient.get (200 + the list)",
            t["big"]["plain"],
            target="<= 1.2x",
            note="a body the size of the bookstore's GET /books",
        ),
        row(
            "304 path (no-cache), ETagClient.get",
            reval["etagkit"],
            "hishel 2 AsyncCacheClient.get (304 path)",
            reval["hishel"],
        ),
        row(
            "first chunk of a streamed response, ETagClient.stream",
            t["stream"]["etagkit"],
            "plain httpx.AsyncClient.stream",
            t["stream"]["plain"],
            target="<= 1.1x",
            note=f"1 KiB, then the rest {STREAM_DELAY} s later; each call reads a chunk, closes",
        ),
    ]
    return rows


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        serve(int(sys.argv[2]))
        return
    for result in run("--quick" in sys.argv[1:]):
        target = result["target"] or "-"
        print(
            f"{result['scenario']:<54} {result['etagkit_s'] * 1e6:8.1f} us  vs {result['baseline']:<62}"
            f" {result['baseline_s'] * 1e6:8.1f} us  ratio {result['ratio']:5.2f}  target {target}"
        )


if __name__ == "__main__":
    main()

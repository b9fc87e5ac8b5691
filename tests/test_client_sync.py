"""The sync face (``ETagSyncClient``, an ``httpx.Client``) against the same real aiohttp origin, which
runs on its own event loop in a background thread. The rules are the async face's (one cache); these
tests check what the sync face does itself: threads sharing one request, latest wins, streaming,
proxies, and a CLI keeping its cache in SQLite across runs."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_client import Clock, Gate, Origin, Resource, origin_running, source

from etagkit.client import ETagSyncClient, ETagSyncTransport, Source, SQLiteResponseStore


class Served:
    """The origin on a background loop, and the helpers a sync test needs to drive its gates."""

    def __init__(self, origin: Origin, clock: Clock, loop: asyncio.AbstractEventLoop) -> None:
        self.origin, self.clock, self.loop = origin, clock, loop

    def arrived(self, gate: Gate) -> None:
        asyncio.run_coroutine_threadsafe(gate.arrived.wait(), self.loop).result(30)

    def release(self, gate: Gate) -> None:
        self.loop.call_soon_threadsafe(gate.release.set)


@contextmanager
def serving() -> Iterator[Served]:
    clock = Clock()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    held: dict[str, Any] = {}

    async def main() -> None:
        held["stop"] = asyncio.Event()
        async with origin_running(clock) as origin:
            held["origin"] = origin
            ready.set()
            await held["stop"].wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(30)
    try:
        yield Served(held["origin"], clock, loop)
    finally:
        loop.call_soon_threadsafe(held["stop"].set)
        thread.join(30)
        loop.close()


def eventually(condition: Callable[[], bool]) -> None:
    for _ in range(4000):
        if condition():
            return
        threading.Event().wait(0.005)
    raise AssertionError("condition never became true")


def test_fresh_hits_then_a_304_revalidation() -> None:
    with serving() as s, ETagSyncClient(now=s.clock) as client:
        s.origin.resources["/r"] = Resource(cache_control="max-age=10")
        url = s.origin.url("/r")
        assert source(client.get(url)) is Source.NETWORK
        hit = client.get(url)
        assert (hit.content, source(hit)) == (b"one", Source.CACHE)
        s.clock.advance(11)
        again = client.get(url)
        assert (again.content, source(again)) == (b"one", Source.REVALIDATED)
        assert s.origin.requests("/r")[1].headers["if-none-match"] == '"v1"'
        head = client.head(url)
        assert (head.content, source(head)) == (b"", Source.CACHE)
        stats = client.stats()
        counted = (stats.requests_sent, stats.responses_200, stats.responses_304, stats.fresh_hits)
        assert counted == (2, 1, 1, 2)


def test_threads_share_one_request() -> None:
    with serving() as s, ETagSyncClient(now=s.clock) as client:
        s.origin.resources["/r"] = Resource(cache_control="no-cache")
        url = s.origin.url("/r")
        gate = s.origin.hold("/r")
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(client.get, url) for _ in range(8)]
            s.arrived(gate)
            eventually(lambda: client.etag_transport.waiting == 7)  # every other thread waits for it
            s.release(gate)
            responses = [future.result(30) for future in futures]
        assert {(r.content, source(r)) for r in responses} == {(b"one", Source.NETWORK)}
        assert len(s.origin.requests("/r")) == 1
        assert client.etag_transport.inflight == 0


def test_an_error_reaches_every_waiting_thread() -> None:
    with serving() as s, ETagSyncClient(now=s.clock) as client:
        s.origin.resources["/r"] = Resource()
        url = s.origin.url("/r")
        gate = s.origin.hold("/r", abort=True)
        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(client.get, url) for _ in range(4)]
            s.arrived(gate)
            eventually(lambda: client.etag_transport.waiting == 3)
            s.release(gate)
            errors = [future.exception(30) for future in futures]
        assert all(isinstance(error, httpx.TransportError) for error in errors), errors
        assert client.etag_transport.inflight == 0
        assert client.get(url).content == b"one"


def test_a_slow_old_response_cannot_overwrite_a_newer_one() -> None:
    with serving() as s, ETagSyncClient(now=s.clock) as client:
        url = s.origin.url("/r")
        s.origin.resources["/r"] = Resource(body=b"old", etag='"old"', cache_control="max-age=60")
        gate = s.origin.hold("/r")
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(client.get, url)
            s.arrived(gate)  # the old request has seen "old" and is held
            s.origin.resources["/r"] = Resource(body=b"new", etag='"new"', cache_control="max-age=60")
            newer = client.refresh(url)  # its own request, newer
            assert (newer.content, source(newer)) == (b"new", Source.NETWORK)
            s.release(gate)
            assert slow.result(30).content == b"old"
        hit = client.get(url)
        assert (hit.content, source(hit)) == (b"new", Source.CACHE)


def test_a_streamed_body_passes_its_first_bytes_before_the_body_completes() -> None:
    body = bytes(range(256)) * 64
    with serving() as s, ETagSyncClient(now=s.clock) as client:
        s.origin.resources["/big"] = Resource(body=body, declare_length=False)
        gate = s.origin.hold_body("/big")
        with client.stream("GET", s.origin.url("/big")) as response:
            chunks = response.iter_raw()
            first = next(chunks)  # before the gate is released: the rest of the body is not sent yet
            assert first and body.startswith(first) and len(first) <= len(body) // 2
            s.arrived(gate)
            s.release(gate)
            assert first + b"".join(chunks) == body
        assert source(client.get(s.origin.url("/big"))) is Source.CACHE


def test_a_proxy_does_not_bypass_the_cache() -> None:
    with serving() as s, ETagSyncClient(now=s.clock, proxy=s.origin.base) as client:
        s.origin.resources["/r"] = Resource()
        first = client.get("http://origin.invalid/r")
        second = client.get("http://origin.invalid/r")
        assert (source(first), source(second)) == (Source.NETWORK, Source.CACHE)
        assert len(s.origin.requests("/r")) == 1


def test_a_cli_keeps_its_cache_across_runs(tmp_path: Path) -> None:
    path = tmp_path / "cli.db"
    with serving() as s:
        s.origin.resources["/r"] = Resource(cache_control="max-age=60")
        for run in range(3):
            store = SQLiteResponseStore(path)
            with ETagSyncClient(now=s.clock, store=store) as client:
                response = client.get(s.origin.url("/r"))
                assert source(response) is (Source.NETWORK if run == 0 else Source.CACHE)
            store.close()
        assert len(s.origin.requests("/r")) == 1


def test_the_transport_under_an_existing_client_and_bad_configuration() -> None:
    from etagkit import ConfigurationError

    with serving() as s:
        s.origin.resources["/r"] = Resource()
        transport = ETagSyncTransport(now=s.clock)
        with httpx.Client(transport=transport, base_url=s.origin.base) as client:
            assert source(client.get("/r")) is Source.NETWORK
            assert source(client.get("/r")) is Source.CACHE
    with pytest.raises(ConfigurationError, match="max_entries"):
        ETagSyncTransport(max_entries=0)
    with pytest.raises(ConfigurationError, match="heuristic"):
        ETagSyncClient(heuristic=1.5)
    with pytest.raises(ConfigurationError, match="store"):
        ETagSyncClient(store="cache.db")  # type: ignore[arg-type]

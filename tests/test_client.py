"""The async revalidating client against a real origin on loopback (aiohttp, same event loop).

The origin counts requests and can hold any request at a gate (asyncio events), so orderings such as
"the old response arrives after the new one" are arranged deterministically, never with sleeps.
Freshness runs on a fake clock that the origin's ``Date`` header follows too.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import subprocess
import sys
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from aiohttp import web
from docblocks import python_blocks
from multidict import CIMultiDict
from support import free_port

from etagkit.client import ETagClient, ETagTransport, MemoryResponseStore, Source
from etagkit.core.dates import format_http_date

# ---- the origin ---------------------------------------------------------------------------------


START = 1_767_225_600.0  # 2026-01-01T00:00:00Z: the fake clock's start, a whole second


class Clock:
    """A fake wall clock (POSIX seconds) that tests move by hand; it starts at a fixed instant, so no
    test depends on the real time (Date headers and Age arithmetic stay whole seconds)."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Resource:
    """What the origin serves at one path; a request answers with the state it found on arrival."""

    body: bytes = b"one"
    etag: str | None = '"v1"'
    cache_control: str | None = "max-age=60"
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 200
    by_language: dict[str, bytes] | None = None  # Vary: Accept-Language bodies
    bare_304: bool = False  # answer any condition with a 304 that carries no validator
    lines: list[tuple[str, str]] = field(default_factory=list)  # more fields, repeated names allowed
    declare_length: bool = True  # False: a streamed body goes out chunked, of unknown length


@dataclass
class Gate:
    """Holds one request: ``arrived`` is set when it reaches the origin; it answers on ``release``."""

    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    abort: bool = False  # drop the connection instead of answering


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]


class Origin:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.base = ""
        self.resources: dict[str, Resource] = {}
        self.unsafe: dict[str, tuple[int, dict[str, str]]] = {}  # path -> status, headers
        self.seen: list[Seen] = []
        self.gates: dict[str, deque[Gate]] = {}
        self.bare_304_headers: dict[str, dict[str, str]] = {}  # extra fields of a bare 304, per path
        self.body_gates: dict[str, deque[Gate]] = {}  # stop halfway through the body, per path
        self.every_gate: list[Gate] = []  # released at shutdown, so no handler is left waiting

    def url(self, path: str) -> str:
        return self.base + path

    def hold(self, path: str, *, abort: bool = False) -> Gate:
        """Make the next request to ``path`` wait at a gate."""
        gate = Gate(abort=abort)
        self.gates.setdefault(path, deque()).append(gate)
        self.every_gate.append(gate)
        return gate

    def hold_body(self, path: str) -> Gate:
        """Make the next response from ``path`` send the first half of its body, then wait at a gate."""
        gate = Gate()
        self.body_gates.setdefault(path, deque()).append(gate)
        self.every_gate.append(gate)
        return gate

    def requests(self, path: str, method: str = "GET") -> list[Seen]:
        return [s for s in self.seen if s.path == path and s.method == method]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.seen.append(Seen(request.method, path, {k.lower(): v for k, v in request.headers.items()}))
        if request.method not in ("GET", "HEAD"):
            status, headers = self.unsafe.get(path, (204, {}))
            if request.method == "PUT" and path in self.resources:
                body = await request.read()
                self.resources[path] = dataclasses.replace(
                    self.resources[path], body=body, etag=f'"{body.decode()}"'
                )
            return web.Response(status=status, headers=headers)
        state = dataclasses.replace(self.resources[path])  # what this request sees on arrival
        date = format_http_date(self.clock())
        gates = self.gates.get(path)
        if gates:
            gate = gates.popleft()
            gate.arrived.set()
            await gate.release.wait()
            if gate.abort:
                assert request.transport is not None
                request.transport.abort()
                raise ConnectionResetError("origin dropped the connection")
        headers = {"Date": date, **state.headers}
        if state.etag is not None:
            headers["ETag"] = state.etag
        if state.cache_control is not None:
            headers["Cache-Control"] = state.cache_control
        body = state.body
        if state.by_language is not None:
            headers["Vary"] = "Accept-Language"
            body = state.by_language[request.headers.get("Accept-Language", "en")]
        conditional = "If-Modified-Since" in request.headers or "If-None-Match" in request.headers
        if state.bare_304 and conditional:
            return web.Response(status=304, headers={"Date": date, **self.bare_304_headers.get(path, {})})
        if state.etag is not None and request.headers.get("If-None-Match") == state.etag:
            headers.pop("Content-Type", None)
            return web.Response(status=304, headers=headers)
        fields = CIMultiDict(headers)
        for name, value in state.lines:
            fields.add(name, value)
        body_gates = self.body_gates.get(path)
        if not body_gates and state.declare_length:
            return web.Response(status=state.status, body=body, headers=fields)
        streamed = web.StreamResponse(status=state.status, headers=fields)
        if state.declare_length:
            streamed.content_length = len(body)
        await streamed.prepare(request)
        await streamed.write(body[: len(body) // 2])
        if body_gates:
            gate = body_gates.popleft()
            gate.arrived.set()
            await gate.release.wait()
        await streamed.write(body[len(body) // 2 :])
        await streamed.write_eof()
        return streamed


@contextlib.asynccontextmanager
async def origin_running(clock: Clock) -> AsyncIterator[Origin]:
    origin = Origin(clock)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", origin.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    origin.base = f"http://127.0.0.1:{port}"
    try:
        yield origin
    finally:
        for gate in origin.every_gate:
            gate.release.set()
        await runner.cleanup()


Scenario = Callable[[Origin, ETagClient, Clock], Awaitable[None]]


def run(scenario: Scenario, **client_options: Any) -> None:
    """Run a scenario against a fresh origin and client; afterwards nothing may be left in flight."""

    async def main() -> None:
        clock = Clock()
        async with origin_running(clock) as origin, ETagClient(now=clock, **client_options) as client:
            await scenario(origin, client, clock)
            await eventually(lambda: client.etag_transport.inflight == 0)

    asyncio.run(main())


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait for a condition that background work makes true (bounded; never a timing assertion)."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition never became true")


async def arrived(gate: Gate) -> None:
    await asyncio.wait_for(gate.arrived.wait(), 10)


def source(response: httpx.Response) -> Source:
    value = response.extensions["etagkit"]
    assert isinstance(value, Source)
    return value


# ---- freshness ----------------------------------------------------------------------------------


def test_fresh_hits_send_nothing_then_stale_revalidates_with_304() -> None:
    async def scenario(origin: Origin, client: ETagClient, clock: Clock) -> None:
        origin.resources["/r"] = Resource(body=b"x" * 1000, cache_control="max-age=60")
        first = await client.get(origin.url("/r"))
        assert (first.status_code, source(first), first.content) == (200, Source.NETWORK, b"x" * 1000)
        for _ in range(5):
            clock.advance(10)
            hit = await client.get(origin.url("/r"))
            assert (hit.status_code, source(hit), hit.content) == (200, Source.CACHE, b"x" * 1000)
            assert hit.headers["Age"] == str(int(clock() - START))
        assert len(origin.requests("/r")) == 1
        clock.advance(11)  # age 61 > max-age 60
        again = await client.get(origin.url("/r"))
        assert (again.status_code, source(again), again.content) == (200, Source.REVALIDATED, b"x" * 1000)
        revalidation = origin.requests("/r")[1]
        assert revalidation.headers["if-none-match"] == '"v1"'
        stats = client.stats()
        assert (stats.requests_sent, stats.responses_200, stats.responses_304, stats.fresh_hits) == (
            2,
            1,
            1,
            5,
        )
        assert stats.bytes_not_downloaded == 6000
        assert stats.ratio_304_to_200 == 1.0
        # the 304 freshened the stored response: fresh again, nothing sent
        assert source(await client.get(origin.url("/r"))) is Source.CACHE
        assert len(origin.requests("/r")) == 2

    run(scenario)


def test_the_age_header_counts() -> None:
    async def scenario(origin: Origin, client: ETagClient, clock: Clock) -> None:
        origin.resources["/r"] = Resource(cache_control="max-age=60", headers={"Age": "50"})
        await client.get(origin.url("/r"))
        clock.advance(9)
        assert source(await client.get(origin.url("/r"))) is Source.CACHE
        clock.advance(2)  # 50 + 11 > 60
        assert source(await client.get(origin.url("/r"))) is Source.REVALIDATED
        assert len(origin.requests("/r")) == 2

    run(scenario)


def test_no_store_is_not_stored() -> None:
    async def scenario(origin: Origin, client: ETagClient, clock: Clock) -> None:
        origin.resources["/r"] = Resource(cache_control="no-store")
        for _ in range(3):
            response = await client.get(origin.url("/r"))
            assert (response.content, source(response)) == (b"one", Source.NETWORK)
        assert [s.headers.get("if-none-match") for s in origin.requests("/r")] == [None] * 3
        assert client.stats().entries == 0

    run(scenario)


def test_no_cache_revalidates_every_use_with_both_validators() -> None:
    last_modified = "Mon, 01 Jan 2024 00:00:00 GMT"

    async def scenario(origin: Origin, client: ETagClient, clock: Clock) -> None:
        origin.resources["/r"] = Resource(
            cache_control="no-cache", headers={"Last-Modified": last_modified, "Content-Type": "text/plain"}
        )
        await client.get(origin.url("/r"))
        for _ in range(3):
            response = await client.get(origin.url("/r"))
            assert (response.status_code, source(response), response.text) == (200, Source.REVALIDATED, "one")
            assert response.headers["Content-Type"] == "text/plain"
            assert "if-none-match" not in response.request.headers  # added for the exchange only
        for seen in origin.requests("/r")[1:]:
            assert seen.headers["if-none-match"] == '"v1"'
            assert seen.headers["if-modified-since"] == last_modified
        # a 304 that brings a new Cache-Control freshens the stored headers (RFC 9111 §4.3.4)
        origin.resources["/r"].cache_control = "max-age=60"
        assert source(await client.get(origin.url("/r"))) is Source.REVALIDATED
        assert source(await client.get(origin.url("/r"))) is Source.CACHE
        assert len(origin.requests("/r")) == 5

    run(scenario)


@pytest.mark.parametrize(
    ("etag", "headers"),
    [('"v1"', {}), (None, {"Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT"})],
    ids=["etag", "last-modified"],
)
def test_a_304_without_validators_freshens_the_response_the_condition_came_from(
    etag: str | None, headers: dict[str, str]
) -> None:
    # Issue 14 item 2 (cache-tests cc-resp-must-revalidate-stale, conditional-etag-vary-headers): the
    # condition was sent from one stored response, so a validator-less 304 is about that one. Before,
    # the client asked again unconditionally and downloaded the whole body: two more round trips.
    async def scenario(origin: Origin, client: ETagClient, clock: Clock) -> None:
        origin.resources["/r"] = Resource(etag=etag, cache_control="no-cache", headers=headers, bare_304=True)
        await client.get(origin.url("/r"))
        origin.resources["/r"].cache_control = "max-age=60"  # the bare 304 does not carry it
        again = await client.get(origin.url("/r"))
        assert (again.status_code, source(again), again.content) == (200, Source.REVALIDATED, b"one")
        assert len(origin.requests("/r")) == 2
        conditional = origin.requests("/r")[1].headers
        assert ("if-none-match" in conditional) == (etag is not None)
        assert source(await client.get(origin.url("/r"))) is Source.REVALIDATED  # still no-cache stored

    run(scenario)


def test_a_304_naming_another_validator_is_not_applied_to_the_stored_response() -> None:
    # The 304 names a Last-Modified the stored response does not have: it is about another response,
    # so the client asks again without a condition.
    async def scenario(origin: Origin, client: ETagClient, clock: Clock) -> None:
        origin.resources["/r"] = Resource(
            etag=None, cache_control="no-cache", headers={"Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT"}
        )
        await client.get(origin.url("/r"))
        origin.resources["/r"].headers = {"Last-Modified": "Tue, 02 Jan 2024 00:00:00 GMT"}
        origin.resources["/r"].body = b"two"
        origin.resources["/r"].bare_304 = True
        origin.bare_304_headers["/r"] = {"Last-Modified": "Tue, 02 Jan 2024 00:00:00 GMT"}
        again = await client.get(origin.url("/r"))
        assert (again.status_code, source(again), again.content) == (200, Source.NETWORK, b"two")
        conditional, unconditional = origin.requests("/r")[1:]
        assert "if-modified-since" in conditional.headers
        assert "if-modified-since" not in unconditional.headers

    run(scenario)


def test_a_changed_resource_replaces_the_stored_body() -> None:
    async def scenario(origin: Origin, client: ETagClient, clock: Clock) -> None:
        origin.resources["/r"] = Resource(cache_control="no-cache")
        await client.get(origin.url("/r"))
        origin.resources["/r"] = Resource(body=b"two", etag='"v2"', cache_control="no-cache")
        changed = await client.get(origin.url("/r"))
        assert (changed.content, source(changed)) == (b"two", Source.NETWORK)
        assert origin.requests("/r")[-1].headers["if-none-match"] == '"v1"'
        again = await client.get(origin.url("/r"))
        assert (again.content, source(again)) == (b"two", Source.REVALIDATED)
        assert origin.requests("/r")[-1].headers["if-none-match"] == '"v2"'

    run(scenario)


# ---- single-flight ------------------------------------------------------------------------------


def test_twenty_concurrent_gets_make_one_request_also_for_revalidations() -> None:
    async def scenario(origin: Origin, client: ETagClient, clock: Clock) -> None:
        origin.resources["/r"] = Resource(cache_control="max-age=60")
        url = origin.url("/r")
        gate = origin.hold("/r")
        tasks = [asyncio.create_task(client.get(url)) for _ in range(20)]
        await arrived(gate)
        assert client.etag_transport.inflight == 1
        gate.release.set()
        cold = await asyncio.gather(*tasks)
        assert {(r.status_code, r.content, source(r)) for r in cold} == {(200, b"one", Source.NETWORK)}
        assert len(origin.requests("/r")) == 1

        clock.advance(61)  # now stale: 20 concurrent revalidations become one conditional request
        gate = origin.hold("/r")
        tasks = [asyncio.create_task(client.get(url)) for _ in range(20)]
        await arrived(gate)
        gate.release.set()
        warm = await asyncio.gather(*tasks)
        assert {(r.status_code, r.content, source(r)) for r in warm} == {(200, b"one", Source.REVALIDATED)}
        assert len(origin.requests("/r")) == 2
        assert origin.requests("/r")[1].headers["if-none-match"] == '"v1"'

    run(scenario)


def test_an_error_reaches_every_waiter_and_the_table_is_empty_after() -> None:
    async def scenario(origin: Origin, client: ETagClient, clock: Clock) -> None:
        origin.resources["/r"] = Resource()
        gate = origin.hold("/r", abort=True)
        tasks = [asyncio.create_task(client.get(origin.url("/r"))) for _ in range(20)]
        await arrived(gate)
        gate.release.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, httpx.TransportError) for r in results), results
        assert len(origin.requests("/r")) == 1
        assert client.etag_transport.inflight == 0
        # the next request goes out again (errors are not cached)
        assert (await client.get(origin.url("/r"))).content == b"one"

    run(scenario)


def test_cancelled_callers_leave_nothing_in_flight() -> None:
    async def scenario(origin: Origin, client: ETagClient, clock: Clock) -> None:
        origin.resources["/r"] = Resource()
        first = origin.hold("/r")
        tasks = [asyncio.create_task(client.get(origin.url("/r"))) for _ in range(5)]
        await arrived(first)  # tasks[0] leads the request; the others follow it
        tasks[1].cancel()  # a follower gives up: the request goes on for the others
        await asyncio.gather(tasks[1], return_exceptions=True)
        assert client.etag_transport.inflight == 1
        retry = origin.hold("/r")
        tasks[0].cancel()  # the leader gives up: one of the followers asks again
        await asyncio.gather(tasks[0], return_exceptions=True)
        await arrived(retry)
        assert client.etag_transport.inflight == 1
        for task in tasks[2:]:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results)
        assert client.etag_transport.inflight == 0
        first.release.set()
        retry.release.set()
        response = await client.get(origin.url("/r"))
        assert (response.content, source(response)) == (b"one", Source.NETWORK)

    run(scenario)


def test_one_cancelled_waiter_does_not_cancel_the_others() -> None:
    async def scenario(origin: Origin, client: ETagClient, clock: Clock) -> None:
        origin.resources["/r"] = Resource()
        gate = origin.hold("/r")
        tasks = [asyncio.create_task(client.get(origin.url("/r"))) for _ in range(3)]
        await arrived(gate)
        tasks[1].cancel()
        gate.release.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(results[1], asyncio.CancelledError)
        assert [r.content for r in (results[0], results[2]) if isinstance(r, httpx.Response)] == [b"one"] * 2
        assert len(origin.requests("/r")) == 1

    run(scenario)


def test_different_vary_selections_do_not_share_a_request() -> None:
    async def scenario(origin: Origin, client: ETagClient, clock: Clock) -> None:
        origin.resources["/r"] = Resource(by_language={"en": b"hello", "fr": b"bonjour"})
        url = origin.url("/r")
        en, fr = await asyncio.gather(
            client.get(url, headers={"Accept-Language": "en"}),
            client.get(url, headers={"Accept-Language": "fr"}),
        )
        assert (en.content, fr.content) == (b"hello", b"bonjour")
        assert len(origin.requests("/r")) == 2

    run(scenario)


# ---- latest wins --------------------------------------------------------------------------------


def test_a_slow_old_response_cannot_overwrite_a_newer_one() -> None:
    async def scenario(origin: Origin, client: ETagClient, clock: Clock) -> None:
        url = origin.url("/r")
        origin.resources["/r"] = Resource(body=b"old", etag='"old"', cache_control="max-age=60")
        gate = origin.hold("/r")
        slow = asyncio.create_task(client.get(url))
        await arrived(gate)  # the old request has seen "old" and is held
        origin.resources["/r"] = Resource(body=b"new", etag='"new"', cache_control="max-age=60")
        newer = await client.refresh(url)  # does not join the old request: its own, newer one
        assert (newer.content, source(newer)) == (b"new", Source.NETWORK)
        gate.release.set()
        old = await slow
        assert old.content == b"old"  # the old request's own answer ...
        hit = await client.get(url)  # ... but it did not replace the newer stored response
        assert (hit.content, source(hit)) == (b"new", Source.CACHE)
        assert len(origin.requests("/r")) == 2

    run(scenario)


def test_a_superseded_request_can_be_cancelled_and_its_waiters_get_the_newer_answer() -> None:
    async def scenario(origin: Origin, client: ETagClient, clock: Clock) -> None:
        url = origin.url("/r")
        origin.resources["/r"] = Resource(body=b"old", etag='"old"')
        gate = origin.hold("/r")
        waiters = [asyncio.create_task(client.get(url)) for _ in range(3)]
        await arrived(gate)
        origin.resources["/r"] = Resource(body=b"new", etag='"new"')
        newer = await client.refresh(url, cancel_older=True)
        assert newer.content == b"new"
        results = await asyncio.gather(*waiters)
        assert {r.content for r in results} == {b"new"}
        assert source(await client.get(url)) is Source.CACHE

    run(scenario)


def test_a_get_in_flight_during_an_unsafe_request_does_not_store_its_older_answer() -> None:
    async def scenario(origin: Origin, client: ETagClient, clock: Clock) -> None:
        url = origin.url("/r")
        origin.resources["/r"] = Resource(body=b"v1", etag='"v1"')
        gate = origin.hold("/r")
        reading = asyncio.create_task(client.get(url))
        await arrived(gate)  # it saw v1
        put = await client.put(url, content=b"v2")
        assert put.status_code == 204
        gate.release.set()
        assert (await reading).content == b"v1"
        after = await client.get(url)
        assert (after.content, source(after)) == (b"v2", Source.NETWORK)

    run(scenario)


# ---- the record: validator and body together ----------------------------------------------------


def test_a_304_for_an_entry_evicted_during_revalidation_answers_from_the_body_it_was_sent_for() -> None:
    # The exchange holds the record its condition came from: eviction meanwhile costs no second request.
    async def scenario(origin: Origin, client: ETagClient, clock: Clock) -> None:
        origin.resources["/a"] = Resource(body=b"A", cache_control="no-cache")
        origin.resources["/b"] = Resource(body=b"B", cache_control="no-cache")
        await client.get(origin.url("/a"))
        gate = origin.hold("/a")
        revalidating = asyncio.create_task(client.get(origin.url("/a")))
        await arrived(gate)
        await client.get(origin.url("/b"))  # max_entries=1: /a is evicted while its 304 is on the way
        gate.release.set()
        response = await revalidating
        assert (response.status_code, response.content, source(response)) == (200, b"A", Source.REVALIDATED)
        conditions = [s.headers.get("if-none-match") for s in origin.requests("/a")]
        assert conditions == [None, '"v1"']

    run(scenario, max_entries=1)


def test_set_cookie_is_never_replayed_from_the_cache() -> None:
    async def scenario(origin: Origin, client: ETagClient, clock: Clock) -> None:
        origin.resources["/r"] = Resource(cache_control="max-age=10", headers={"Set-Cookie": "session=abc"})
        first = await client.get(origin.url("/r"))
        assert first.headers["Set-Cookie"] == "session=abc"  # from the network: the caller sees it
        hit = await client.get(origin.url("/r"))
        assert source(hit) is Source.CACHE
        assert "set-cookie" not in hit.headers
        clock.advance(11)
        origin.resources["/r"].headers = {}
        revalidated = await client.get(origin.url("/r"))
        assert source(revalidated) is Source.REVALIDATED
        assert "set-cookie" not in revalidated.headers

    run(scenario)


def test_memory_is_bounded_by_entries_and_bytes_lru() -> None:
    async def scenario(origin: Origin, client: ETagClient, clock: Clock) -> None:
        for i in range(10):
            origin.resources[f"/r{i}"] = Resource(body=bytes(1000))
        await client.get(origin.url("/r0"))
        for i in range(1, 10):
            await client.get(origin.url(f"/r{i}"))
            await client.get(origin.url("/r0"))  # used often: stays
            stats = client.stats()
            assert stats.entries <= 3
            assert stats.stored_bytes <= 3000
        assert source(await client.get(origin.url("/r0"))) is Source.CACHE
        assert source(await client.get(origin.url("/r9"))) is Source.CACHE
        assert source(await client.get(origin.url("/r1"))) is Source.NETWORK

    run(scenario, max_entries=5, max_bytes=3000)


def test_a_body_larger_than_the_store_is_not_stored() -> None:
    async def scenario(origin: Origin, client: ETagClient, clock: Clock) -> None:
        origin.resources["/big"] = Resource(body=bytes(5000))
        await client.get(origin.url("/big"))
        assert client.stats().entries == 0
        assert len((await client.get(origin.url("/big"))).content) == 5000
        assert len(origin.requests("/big")) == 2

    run(scenario, max_bytes=3000)


# ---- Vary, invalidation -------------------------------------------------------------------------


def test_vary_keeps_one_variant_per_selection() -> None:
    async def scenario(origin: Origin, client: ETagClient, clock: Clock) -> None:
        origin.resources["/r"] = Resource(by_language={"en": b"hello", "fr": b"bonjour"})
        url = origin.url("/r")
        for _ in range(2):
            en = await client.get(url, headers={"Accept-Language": "en"})
            fr = await client.get(url, headers={"Accept-Language": "fr"})
            assert (en.content, fr.content) == (b"hello", b"bonjour")
        assert (source(en), source(fr)) == (Source.CACHE, Source.CACHE)
        assert len(origin.requests("/r")) == 2
        assert client.stats().entries == 2

    run(scenario)


def test_unsafe_methods_invalidate_the_target_and_same_origin_locations() -> None:
    async def scenario(origin: Origin, client: ETagClient, clock: Clock) -> None:
        for path in ("/books", "/books/7", "/other"):
            origin.resources[path] = Resource()
            await client.get(origin.url(path))
        origin.unsafe["/books"] = (201, {"Location": "/books/7", "Content-Location": "http://example.com/x"})
        created = await client.post(origin.url("/books"), content=b"{}")
        assert created.status_code == 201
        assert source(await client.get(origin.url("/books"))) is Source.NETWORK
        assert source(await client.get(origin.url("/books/7"))) is Source.NETWORK
        assert source(await client.get(origin.url("/other"))) is Source.CACHE
        origin.unsafe["/other"] = (500, {})
        await client.delete(origin.url("/other"))  # an error does not invalidate
        assert source(await client.get(origin.url("/other"))) is Source.CACHE

    run(scenario)


# ---- stale-while-revalidate, stale-if-error -----------------------------------------------------


def test_stale_while_revalidate_serves_stale_and_revalidates_once_in_the_background() -> None:
    async def scenario(origin: Origin, client: ETagClient, clock: Clock) -> None:
        origin.resources["/r"] = Resource(cache_control="max-age=10, stale-while-revalidate=60")
        url = origin.url("/r")
        await client.get(url)
        clock.advance(20)
        gate = origin.hold("/r")
        stale = await asyncio.gather(*(client.get(url) for _ in range(20)))
        assert {(r.content, source(r)) for r in stale} == {(b"one", Source.STALE)}
        await arrived(gate)  # one background revalidation is at the origin
        gate.release.set()
        await eventually(lambda: client.etag_transport.inflight == 0)
        assert len(origin.requests("/r")) == 2
        assert origin.requests("/r")[1].headers["if-none-match"] == '"v1"'
        assert source(await client.get(url)) is Source.CACHE  # freshened by the background 304

    run(scenario)


def test_stale_if_error_on_5xx_and_on_a_dead_origin() -> None:
    async def scenario(origin: Origin, client: ETagClient, clock: Clock) -> None:
        origin.resources["/r"] = Resource(cache_control="max-age=10, stale-if-error=60")
        url = origin.url("/r")
        await client.get(url)
        clock.advance(30)
        origin.resources["/r"] = Resource(status=503, etag=None, cache_control=None, body=b"down")
        served = await client.get(url)
        assert (served.status_code, served.content, source(served)) == (200, b"one", Source.STALE)
        gate = origin.hold("/r", abort=True)
        failing = asyncio.create_task(client.get(url))
        await arrived(gate)
        gate.release.set()
        served = await failing
        assert (served.content, source(served)) == (b"one", Source.STALE)
        clock.advance(60)  # beyond the window: the error reaches the caller
        error = await client.get(url)
        assert (error.status_code, source(error)) == (503, Source.NETWORK)

    run(scenario)


def test_only_if_cached_without_an_entry_is_504() -> None:
    async def scenario(origin: Origin, client: ETagClient, clock: Clock) -> None:
        origin.resources["/r"] = Resource()
        response = await client.get(origin.url("/r"), headers={"Cache-Control": "only-if-cached"})
        assert response.status_code == 504
        assert origin.requests("/r") == []

    run(scenario)


def test_the_callers_own_if_none_match_is_answered_from_a_fresh_stored_response() -> None:
    # Issue 14 item 3 (RFC 9111 §4.3.2; cache-tests conditional-etag-strong-respond, conditional-304-etag):
    # before, every caller condition went to the origin even with the response fresh in the store.
    async def scenario(origin: Origin, client: ETagClient, clock: Clock) -> None:
        origin.resources["/r"] = Resource(headers={"Content-Type": "text/plain"})
        await client.get(origin.url("/r"))
        matching = await client.get(origin.url("/r"), headers={"If-None-Match": 'W/"x", "v1"'})
        assert (matching.status_code, source(matching), matching.content) == (304, Source.CACHE, b"")
        assert matching.headers["ETag"] == '"v1"'
        assert "content-type" not in matching.headers
        other = await client.get(origin.url("/r"), headers={"If-None-Match": '"v0"'})
        assert (other.status_code, source(other), other.content) == (200, Source.CACHE, b"one")
        assert len(origin.requests("/r")) == 1
        ranged = await client.get(origin.url("/r"), headers={"If-Match": '"v1"'})  # not answerable here
        assert source(ranged) is Source.NETWORK
        clock.advance(61)  # stale: the caller's condition goes to the origin untouched
        response = await client.get(origin.url("/r"), headers={"If-None-Match": '"v1"'})
        assert (response.status_code, source(response)) == (304, Source.NETWORK)
        assert origin.requests("/r")[-1].headers["if-none-match"] == '"v1"'

    run(scenario)


def test_credentials_are_never_shared() -> None:
    async def scenario(origin: Origin, client: ETagClient, clock: Clock) -> None:
        origin.resources["/r"] = Resource(cache_control="private, max-age=60")
        await client.get(origin.url("/r"), headers={"Authorization": "Bearer alice"})
        bob = await client.get(origin.url("/r"), headers={"Authorization": "Bearer bob"})
        alice = await client.get(origin.url("/r"), headers={"Authorization": "Bearer alice"})
        assert (source(bob), source(alice)) == (Source.NETWORK, Source.CACHE)

    run(scenario)


# ---- as a transport; configuration --------------------------------------------------------------


def test_an_existing_async_client_gains_the_behaviour_through_the_transport() -> None:
    async def main() -> None:
        clock = Clock()
        async with origin_running(clock) as origin:
            origin.resources["/r"] = Resource()
            transport = ETagTransport(httpx.AsyncHTTPTransport(), now=clock)
            async with httpx.AsyncClient(transport=transport, base_url=origin.base) as client:
                assert source(await client.get("/r")) is Source.NETWORK
                assert source(await client.get("/r")) is Source.CACHE
            assert transport.stats().fresh_hits == 1

    asyncio.run(main())


@pytest.mark.parametrize(
    "options", [{"max_entries": 0}, {"max_bytes": -1}, {"heuristic": 2.0}, {"max_entries": True}]
)
def test_bad_configuration_raises_at_construction(options: dict[str, Any]) -> None:
    from etagkit import ConfigurationError

    with pytest.raises(ConfigurationError):
        ETagTransport(httpx.AsyncHTTPTransport(), **options)


# ---- the README example, against a bookstore-like origin ----------------------------------------

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_example() -> str:
    """The README's client example (tests/test_docs.py runs it against the real bookstore; this test
    checks, against an origin it controls, that it does what its comments say)."""
    return next(b.code for b in python_blocks(README) if b.section == "The client")


def cli_example() -> str:
    """docs/client.md's command-line example (the sync client over an SQLite store, two runs)."""
    page = README.parent / "docs" / "client.md"
    return next(b.code for b in python_blocks(page) if "SQLiteResponseStore" in b.code)


class _Books(BaseHTTPRequestHandler):
    """GET /books as the bookstore serves it: JSON, a strong ETag, max-age=5, must-revalidate."""

    body = json.dumps([{"id": 1, "title": "Dune"}]).encode()
    seen: ClassVar[list[str | None]] = []
    requests: ClassVar[list[tuple[str, str, str | None]]] = []  # method, path, If-None-Match

    def do_HEAD(self) -> None:
        self.do_GET(head=True)

    def do_GET(self, head: bool = False) -> None:
        type(self).seen.append(self.headers.get("If-None-Match"))
        type(self).requests.append((self.command, self.path, self.headers.get("If-None-Match")))
        headers = {"ETag": '"books-1"', "Cache-Control": "max-age=5, must-revalidate"}
        if self.headers.get("If-None-Match") == '"books-1"':
            self.send_response(304)
        else:
            self.send_response(200)
            headers |= {"Content-Type": "application/json", "Content-Length": str(len(self.body))}
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if headers.get("Content-Type") and not head:
            self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _run_against_books(code: str) -> subprocess.CompletedProcess[str]:
    assert 'base_url="http://127.0.0.1:8000"' in code
    _Books.seen.clear()
    _Books.requests.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Books)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        code = code.replace("http://127.0.0.1:8000", f"http://127.0.0.1:{port}")
        return subprocess.run(
            [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_the_readme_example_runs_against_a_bookstore_like_origin() -> None:
    done = _run_against_books(readme_example())
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "Source.REVALIDATED"
    assert "responses_200=1" in lines[1]
    seen = _Books.seen
    assert seen[0] is None
    assert seen[-4:] == ['"books-1"'] * 4  # the no-cache GET and three refreshes: all conditional


def test_the_docs_cli_example_keeps_its_cache_across_runs() -> None:
    done = _run_against_books(cli_example())
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()
    assert first == "0 Source.NETWORK"
    assert second in ("1 Source.CACHE", "1 Source.REVALIDATED")  # REVALIDATED if 5 s went by
    # Only run 0 downloaded /books: run 1 started with the stored response (used, or revalidated).
    assert [r for r in _Books.requests if r[:2] == ("GET", "/books") and r[2] is None] == [
        ("GET", "/books", None)
    ]
    assert [r[2] for r in _Books.requests if r[1] == "/books?page=2"] == [None, None]  # never stored


def test_without_httpx_the_import_error_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['httpx'] = None\n"
        "try:\n    import etagkit.client\nexcept ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert "etagkit[client]" in out


def test_when_the_leader_is_cancelled_a_follower_takes_over() -> None:
    async def scenario(origin: Origin, client: ETagClient, clock: Clock) -> None:
        origin.resources["/r"] = Resource()
        first = origin.hold("/r")
        tasks = [asyncio.create_task(client.get(origin.url("/r"))) for _ in range(4)]
        await arrived(first)
        tasks[0].cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(results[0], asyncio.CancelledError)
        assert [r.content for r in results[1:] if isinstance(r, httpx.Response)] == [b"one"] * 3
        assert len(origin.requests("/r")) == 2  # the cancelled request, and the follower's one

    run(scenario)


def test_any_async_transport_can_be_the_inner_one() -> None:
    # MockTransport answers with bodies already read: the raw bytes are still what gets stored.
    seen: list[str | None] = []

    def origin(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("If-None-Match"))
        if request.headers.get("If-None-Match") == '"m"':
            return httpx.Response(304, headers={"ETag": '"m"'})
        return httpx.Response(200, headers={"ETag": '"m"', "Cache-Control": "no-cache"}, content=b"mock")

    async def main() -> None:
        async with ETagClient(transport=httpx.MockTransport(origin)) as client:
            assert (await client.get("http://origin.test/m")).content == b"mock"
            again = await client.get("http://origin.test/m")
            assert (again.content, source(again)) == (b"mock", Source.REVALIDATED)
        assert seen == [None, '"m"']

    asyncio.run(main())


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_random_mix_of_requests_leaves_a_consistent_store_and_nothing_in_flight(seed: int) -> None:
    import random

    rng = random.Random(seed)

    async def scenario(origin: Origin, client: ETagClient, clock: Clock) -> None:
        paths = [f"/r{i}" for i in range(6)]
        for i, path in enumerate(paths):
            policy = ("max-age=5", "no-cache", "max-age=5, stale-while-revalidate=30", "no-store")[i % 4]
            origin.resources[path] = Resource(body=path.encode() * 50, cache_control=policy)

        async def one(step: int) -> None:
            path = rng.choice(paths)
            roll = rng.random()
            if roll < 0.1:
                await client.put(origin.url(path), content=f"v{step}".encode())
            elif roll < 0.2:
                await client.refresh(origin.url(path), cancel_older=rng.random() < 0.5)
            else:
                response = await client.get(origin.url(path))
                assert response.status_code == 200

        for _ in range(10):
            await asyncio.gather(*(one(step) for step in range(40)))
            clock.advance(rng.choice([0, 1, 3, 7]))
        await eventually(lambda: client.etag_transport.inflight == 0)
        store = client.etag_transport.store
        assert isinstance(store, MemoryResponseStore)
        assert store.consistent()
        assert client.stats().entries <= 3

    run(scenario, max_entries=3)

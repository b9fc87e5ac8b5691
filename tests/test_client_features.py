"""Issue 14 through a real loopback origin (the aiohttp origin of test_client.py): list-valued Age,
5xx storing, Set-Cookie, streaming, proxies, HEAD from a stored GET, max-stale, clear / invalidate,
per-request options and the persistent SQLite store. Each test failed before issue 14's change."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import httpx
import pytest
from test_client import START, Clock, Origin, Resource, arrived, origin_running, run, source

from etagkit.client import NO_STORE, REVALIDATE, ETagClient, Source, SQLiteResponseStore

# ---- 1. list-valued Age (RFC 9111 §5.1) ---------------------------------------------------------


@pytest.mark.parametrize(
    "resource",
    [
        Resource(cache_control="max-age=3600", headers={"Age": "7200, 0"}),
        Resource(cache_control="max-age=3600", lines=[("Age", "7200"), ("Age", "0")]),
    ],
    ids=["one-line", "two-lines"],
)
def test_a_list_valued_age_counts_by_its_first_member(resource: Resource) -> None:
    async def scenario(origin: Origin, client: ETagClient, clock: Clock) -> None:
        origin.resources["/r"] = resource
        await client.get(origin.url("/r"))
        again = await client.get(origin.url("/r"))  # 2 hours old with max-age=1h: stale, so validated
        assert source(again) is Source.REVALIDATED
        assert len(origin.requests("/r")) == 2

    run(scenario)


# ---- 3. decided against the RFC: 5xx, Set-Cookie ------------------------------------------------


def test_a_5xx_with_an_explicit_lifetime_is_stored_and_one_without_is_not() -> None:
    async def scenario(origin: Origin, client: ETagClient, clock: Clock) -> None:
        origin.resources["/busy"] = Resource(status=503, etag=None, cache_control="max-age=30", body=b"later")
        origin.resources["/down"] = Resource(status=503, etag=None, cache_control=None, body=b"down")
        for _ in range(2):
            busy = await client.get(origin.url("/busy"))
            down = await client.get(origin.url("/down"))
        assert (busy.status_code, busy.content, source(busy)) == (503, b"later", Source.CACHE)
        assert (down.status_code, source(down)) == (503, Source.NETWORK)
        assert (len(origin.requests("/busy")), len(origin.requests("/down"))) == (1, 2)

    run(scenario)


def test_a_5xx_without_a_lifetime_keeps_the_stored_response_for_stale_if_error() -> None:
    async def scenario(origin: Origin, client: ETagClient, clock: Clock) -> None:
        origin.resources["/r"] = Resource(cache_control="max-age=10, stale-if-error=60")
        await client.get(origin.url("/r"))
        clock.advance(20)
        origin.resources["/r"] = Resource(status=500, etag=None, cache_control=None, body=b"oops")
        for _ in range(2):
            served = await client.get(origin.url("/r"))
            assert (served.status_code, served.content, source(served)) == (200, b"one", Source.STALE)

    run(scenario)


def test_a_cached_set_cookie_is_never_put_back_into_the_cookie_jar() -> None:
    async def scenario(origin: Origin, client: ETagClient, clock: Clock) -> None:
        origin.resources["/r"] = Resource(cache_control="max-age=60", headers={"Set-Cookie": "session=abc"})
        await client.get(origin.url("/r"))
        assert client.cookies.get("session") == "abc"
        client.cookies.clear()  # e.g. a logout
        hit = await client.get(origin.url("/r"))
        assert source(hit) is Source.CACHE
        assert "set-cookie" not in hit.headers
        assert client.cookies.get("session") is None

    run(scenario)


# ---- 4. streaming -------------------------------------------------------------------------------

BODY = bytes(range(256)) * 64  # 16 KiB


async def _first_chunk(client: ETagClient, url: str, chunks: list[bytes]) -> None:
    async with client.stream("GET", url) as response:
        async for chunk in response.aiter_raw():
            chunks.append(chunk)
            return


@pytest.mark.parametrize("declare_length", [True, False], ids=["content-length", "chunked"])
def test_a_streamed_body_passes_its_first_bytes_before_the_body_completes(declare_length: bool) -> None:
    async def scenario(origin: Origin, client: ETagClient, clock: Clock) -> None:
        origin.resources["/big"] = Resource(body=BODY, declare_length=declare_length)
        url = origin.url("/big")
        gate = origin.hold_body("/big")  # the origin sends half the body, then waits
        async with client.stream("GET", url) as response:
            chunks = response.aiter_raw()
            reading = asyncio.ensure_future(anext(chunks))
            await arrived(gate)
            done, _ = await asyncio.wait({reading}, timeout=30)  # generous: only a deadlock fails it
            assert done, "the first bytes waited for the whole body"
            first = reading.result()
            assert first and BODY.startswith(first)
            assert len(first) <= len(BODY) // 2
            gate.release.set()
            rest = b"".join([chunk async for chunk in chunks])
        assert first + rest == BODY
        hit = await client.get(url)  # stored once complete
        assert (hit.content, source(hit)) == (BODY, Source.CACHE)

    run(scenario)


def test_a_stream_closed_early_stores_nothing() -> None:
    async def scenario(origin: Origin, client: ETagClient, clock: Clock) -> None:
        origin.resources["/big"] = Resource(body=BODY, declare_length=False)
        chunks: list[bytes] = []
        await _first_chunk(client, origin.url("/big"), chunks)
        assert chunks
        assert client.stats().entries == 0
        again = await client.get(origin.url("/big"))
        assert (again.content, source(again)) == (BODY, Source.NETWORK)
        assert client.etag_transport.inflight == 0

    run(scenario)


@pytest.mark.parametrize(
    "resource",
    [
        Resource(body=BODY, cache_control="no-store"),
        Resource(body=BODY),  # declared 16 KiB > max_bytes
        Resource(body=BODY, declare_length=False),  # grows past max_bytes while streaming
    ],
    ids=["no-store", "declared-too-large", "grows-too-large"],
)
def test_bodies_that_will_not_be_stored_are_not_kept_and_nobody_waits_for_them(resource: Resource) -> None:
    # A follower only waits for a body that will be stored; here the leader's body is held at the
    # origin, and the follower still gets its own answer: nothing waits for (or keeps) that body.
    async def scenario(origin: Origin, client: ETagClient, clock: Clock) -> None:
        origin.resources["/r"] = resource
        gate = origin.hold_body("/r")
        async with client.stream("GET", origin.url("/r")) as leader:
            chunks = leader.aiter_raw()
            first = await anext(chunks)
            await arrived(gate)
            follower = await asyncio.wait_for(client.get(origin.url("/r")), 30)
            assert (follower.content, source(follower)) == (BODY, Source.NETWORK)
            gate.release.set()
            rest = b"".join([chunk async for chunk in chunks])
        assert first + rest == BODY
        assert client.stats().entries == 0
        assert len(origin.requests("/r")) == 2

    run(scenario, max_bytes=4096)


# ---- 5. proxies ---------------------------------------------------------------------------------


def _via_proxy(make: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    async def main() -> None:
        clock = Clock()
        async with origin_running(clock) as origin:  # it answers absolute-form requests as a proxy
            origin.resources["/r"] = Resource()
            options = {"proxy": origin.base} if make["how"] == "argument" else {}
            if make["how"] == "environment":
                monkeypatch.setenv("HTTP_PROXY", origin.base)
                monkeypatch.delenv("NO_PROXY", raising=False)
                monkeypatch.delenv("no_proxy", raising=False)
            async with ETagClient(now=clock, **options) as client:  # type: ignore[arg-type]
                first = await client.get("http://origin.invalid/r")  # resolvable only by the proxy
                second = await client.get("http://origin.invalid/r")
                assert (source(first), source(second)) == (Source.NETWORK, Source.CACHE)
                assert len(origin.requests("/r")) == 1

    asyncio.run(main())


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_a_proxy_does_not_bypass_the_cache(how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _via_proxy({"how": how}, monkeypatch)


# ---- 6. HEAD, max-stale, clear / invalidate, per-request options, SQLite ------------------------


def test_head_is_answered_from_a_stored_get() -> None:
    async def scenario(origin: Origin, client: ETagClient, clock: Clock) -> None:
        origin.resources["/r"] = Resource(body=b"x" * 100)
        head_first = await client.head(origin.url("/r"))  # nothing stored yet: the origin answers
        assert source(head_first) is Source.NETWORK
        got = await client.get(origin.url("/r"))
        head = await client.head(origin.url("/r"))
        assert (head.status_code, head.content, source(head)) == (200, b"", Source.CACHE)
        assert head.headers["Content-Length"] == got.headers["Content-Length"] == "100"
        assert head.headers["ETag"] == '"v1"'
        assert len(origin.requests("/r", "HEAD")) == 1
        assert source(await client.get(origin.url("/r"))) is Source.CACHE  # HEAD did not disturb it

    run(scenario)


def test_request_max_stale_serves_a_stale_response_without_asking() -> None:
    async def scenario(origin: Origin, client: ETagClient, clock: Clock) -> None:
        origin.resources["/r"] = Resource(cache_control="max-age=10")
        origin.resources["/strict"] = Resource(cache_control="max-age=10, must-revalidate")
        await client.get(origin.url("/r"))
        await client.get(origin.url("/strict"))
        clock.advance(15)
        stale = await client.get(origin.url("/r"), headers={"Cache-Control": "max-stale=10"})
        assert (stale.content, source(stale), stale.headers["Age"]) == (b"one", Source.STALE, "15")
        any_age = await client.get(origin.url("/r"), headers={"Cache-Control": "max-stale"})
        assert source(any_age) is Source.STALE
        too_old = await client.get(origin.url("/r"), headers={"Cache-Control": "max-stale=2"})
        assert source(too_old) is Source.REVALIDATED
        strict = await client.get(origin.url("/strict"), headers={"Cache-Control": "max-stale"})
        assert source(strict) is Source.REVALIDATED
        assert (len(origin.requests("/r")), client.stats().stale_hits) == (2, 2)

    run(scenario)


def test_invalidate_one_url_and_clear_everything() -> None:
    async def scenario(origin: Origin, client: ETagClient, clock: Clock) -> None:
        for path in ("/a", "/b"):
            origin.resources[path] = Resource()
            await client.get(origin.url(path))
        client.invalidate(origin.url("/a"))
        assert source(await client.get(origin.url("/a"))) is Source.NETWORK
        assert source(await client.get(origin.url("/b"))) is Source.CACHE
        client.clear()
        assert client.stats().entries == 0
        assert source(await client.get(origin.url("/a"))) is Source.NETWORK
        assert source(await client.get(origin.url("/b"))) is Source.NETWORK

    run(scenario)


def test_a_get_in_flight_during_clear_does_not_store_its_older_answer() -> None:
    async def scenario(origin: Origin, client: ETagClient, clock: Clock) -> None:
        origin.resources["/r"] = Resource()
        gate = origin.hold("/r")
        reading = asyncio.create_task(client.get(origin.url("/r")))
        await arrived(gate)
        client.clear()
        gate.release.set()
        assert (await reading).content == b"one"
        assert client.stats().entries == 0

    run(scenario)


def test_per_request_options_do_not_store_and_force_revalidation() -> None:
    async def scenario(origin: Origin, client: ETagClient, clock: Clock) -> None:
        origin.resources["/r"] = Resource()
        first = await client.get(origin.url("/r"), extensions={NO_STORE: True})
        assert (source(first), client.stats().entries) == (Source.NETWORK, 0)
        await client.get(origin.url("/r"))
        assert client.stats().entries == 1
        await client.get(origin.url("/r"), extensions={NO_STORE: True})  # fresh hit: still served
        checked = await client.get(origin.url("/r"), extensions={REVALIDATE: True})
        assert source(checked) is Source.REVALIDATED
        sent = origin.requests("/r")[-1].headers
        assert (sent["if-none-match"], "cache-control" in sent) == ('"v1"', False)
        assert source(await client.get(origin.url("/r"))) is Source.CACHE

    run(scenario)


def test_the_sqlite_store_keeps_responses_across_clients_and_bounds_them(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"

    async def main() -> None:
        clock = Clock()
        async with origin_running(clock) as origin:
            for name in ("a", "b", "c"):
                origin.resources[f"/{name}"] = Resource(body=name.encode() * 100)
            store = SQLiteResponseStore(path, max_entries=2)
            async with ETagClient(now=clock, store=store) as client:
                for name in ("a", "b", "c"):
                    await client.get(origin.url(f"/{name}"))
                assert client.stats().entries == 2  # /a, least recently used, was evicted
            store.close()
            clock.advance(30)
            store = SQLiteResponseStore(path, max_entries=2)  # "the next run of the CLI"
            async with ETagClient(now=clock, store=store) as client:
                hit = await client.get(origin.url("/c"))
                assert (hit.content, source(hit), hit.headers["Age"]) == (b"c" * 100, Source.CACHE, "30")
                assert source(await client.get(origin.url("/a"))) is Source.NETWORK
            store.close()
            with sqlite3.connect(path) as db:  # damage every row: each is a miss, never an error
                db.execute("UPDATE responses SET meta = 'not json'")
            store = SQLiteResponseStore(path, max_entries=2)
            async with ETagClient(now=clock, store=store) as client:
                again = await client.get(origin.url("/c"))
                assert (again.content, source(again)) == (b"c" * 100, Source.NETWORK)
                assert source(await client.get(origin.url("/c"))) is Source.CACHE
            store.close()
        assert clock() == START + 30

    asyncio.run(main())


def test_sqlite_store_bounded_in_bytes(tmp_path: Path) -> None:
    store = SQLiteResponseStore(tmp_path / "b.db", max_bytes=3000)

    def origin(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Cache-Control": "max-age=60"}, content=bytes(1000))

    async def main() -> None:
        async with ETagClient(transport=httpx.MockTransport(origin), store=store) as client:
            for i in range(5):
                await client.get(f"http://origin.test/{i}")
                entries, size = store.usage()
                assert size <= 3000
            assert entries == 2

    asyncio.run(main())
    store.close()


@pytest.mark.parametrize("persistent", [False, True], ids=["memory", "sqlite"])
def test_header_values_outside_ascii_are_stored_and_replayed(persistent: bool, tmp_path: Path) -> None:
    # Found by the cache-tests suite: a stored response with a Latin-1 byte in a field raised
    # UnicodeEncodeError when it was stored. It is kept, and the caller reads back the same text.
    def origin(request: httpx.Request) -> httpx.Response:
        fields = [(b"Cache-Control", b"max-age=60"), (b"ETag", b'"v1"'), (b"X-Name", b"M\xfcller")]
        if request.headers.get("if-none-match") == '"v1"':
            return httpx.Response(304, headers=[*fields, (b"Set-Cookie", b"n=1")])
        return httpx.Response(200, headers=fields, content=b"body")

    async def main() -> None:
        store = SQLiteResponseStore(tmp_path / "c.db") if persistent else None
        async with ETagClient(transport=httpx.MockTransport(origin), store=store) as client:
            first = await client.get("http://origin.test/r")
            hit = await client.get("http://origin.test/r")
            assert (source(hit), hit.headers["X-Name"]) == (Source.CACHE, first.headers["X-Name"])
            checked = await client.get("http://origin.test/r", extensions={REVALIDATE: True})
            assert (source(checked), checked.headers["X-Name"]) == (Source.REVALIDATED, "Müller")
            assert "set-cookie" in checked.headers
            mine = await client.get("http://origin.test/r", headers={"If-None-Match": '"v1"'})
            assert (mine.status_code, source(mine)) == (304, Source.CACHE)
        if store is not None:
            store.close()

    asyncio.run(main())

"""The async face: ``ETagTransport`` (an httpx async transport) and ``ETagClient``.

It only performs I/O and single-flight waiting on asyncio; every caching decision comes from the
shared :class:`~etagkit.client._cache.Cache` (the same one the sync face uses).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from ._cache import Ask, Plan, Step
from ._faces import UrlMemo, fast_answer, make_cache, wrap_client_transports
from ._model import EXTENSION, PASS, REFRESH, Answer, ClientStats, Pairs, Source, _Pass, response_of
from ._store import ResponseStore
from ._streams import AsyncTee

__all__ = ["ETagClient", "ETagTransport"]

_SUPERSEDED = "etagkit: superseded by a newer request"  # the cancel message of a superseded leader
Result = Answer | _Pass


@dataclass(slots=True)
class _Flight:
    """One network request in progress for a key.

    Its leader (the caller that started it, or a background task) sends the request in its own task
    and publishes the answer in ``result`` for the followers, or PASS when the body streamed past
    without being kept. ``successor`` is set when a newer request superseded and cancelled this one,
    which is only done while the leader still waits for the response head (``streaming`` False).
    """

    result: asyncio.Future[Result]
    leader: asyncio.Task[Any] | None
    successor: _Flight | None = None
    streaming: bool = False


class _Flights:
    """The async single-flight table (shared by the transports of one client) and its background
    revalidations."""

    def __init__(self) -> None:
        self.table: dict[Any, _Flight] = {}
        self.background: set[asyncio.Task[None]] = set()


async def _send(inner: httpx.AsyncBaseTransport, request: httpx.Request, conditions: Pairs) -> httpx.Response:
    """Send ``request`` with ``conditions`` added for this exchange only (the caller never sees them)."""
    if not conditions:
        return await inner.handle_async_request(request)
    plain = request.headers
    request.headers = plain.copy()
    for name, value in conditions:
        request.headers[name] = value
    try:
        return await inner.handle_async_request(request)
    finally:
        request.headers = plain


async def _finish(response: httpx.Response, method: str) -> None:
    """Close a network response the caller will not see; a bodiless one (a 304, an answer to HEAD)
    is read to its end first, so that its connection goes back to the pool instead of closing."""
    try:
        if response.status_code == 304 or method == "HEAD":
            async for _ in response.stream:  # type: ignore[union-attr]
                pass
    finally:
        await response.aclose()


class ETagTransport(httpx.AsyncBaseTransport):
    """An httpx async transport that caches and revalidates (RFC 9111, private cache).

    ``inner`` reaches the network (default ``httpx.AsyncHTTPTransport()``). ``store`` is where
    responses live (default: a :class:`MemoryResponseStore` bounded by ``max_entries`` and
    ``max_bytes``; or a :class:`SQLiteResponseStore` to keep them across runs); ``heuristic`` (e.g.
    0.1) enables heuristic freshness from Last-Modified (RFC 9111 §4.2.2), off by default; ``now`` is
    the clock (POSIX seconds) for all freshness arithmetic. One instance belongs to one event loop.
    """

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport | None = None,
        *,
        store: ResponseStore | None = None,
        max_entries: int = 1024,
        max_bytes: int = 64 * 1024 * 1024,
        heuristic: float | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._inner = inner if inner is not None else httpx.AsyncHTTPTransport()
        self._cache = make_cache(store, max_entries, max_bytes, heuristic, now)
        self._flights = _Flights()

    @classmethod
    def _sharing(cls, inner: httpx.AsyncBaseTransport, other: ETagTransport) -> ETagTransport:
        """A transport over ``inner`` sharing ``other``'s cache and flights (one client's mounts)."""
        self = cls.__new__(cls)
        self._inner, self._cache, self._flights = inner, other._cache, other._flights
        return self

    # ---- public ---------------------------------------------------------------------------------

    def stats(self) -> ClientStats:
        """Requests sent, network 200s and 304s, cache hits, bytes a 304 or a hit did not download."""
        return self._cache.stats()

    @property
    def store(self) -> ResponseStore:
        """Where the responses are kept."""
        return self._cache.store

    @property
    def inflight(self) -> int:
        """Network requests currently shared by waiters (0 when idle: the table never leaks)."""
        return len(self._flights.table)

    def clear(self) -> None:
        """Forget every stored response (responses in flight will not store theirs)."""
        self._cache.clear()

    def invalidate(self, url: httpx.URL | str) -> None:
        """Forget every stored response for ``url`` (each Vary variant and credential)."""
        self._cache.invalidate(str(url))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Answer from the cache when RFC 9111 allows, else from one (shared) network request."""
        plan = self._cache.plan(request)
        if plan.step is Step.ANSWER:
            assert plan.answer is not None
            return self.serve(plan)
        if plan.step is Step.UNSAFE:
            response = await self._inner.handle_async_request(request)
            self._cache.on_unsafe(request, response.status_code, response.headers)
            response.extensions = {**response.extensions, EXTENSION: Source.NETWORK}
            return response
        if plan.step is Step.PASS:  # the caller validates by itself: pass through, store nothing
            response = await self._inner.handle_async_request(request)
            self._cache.sent()
            response.extensions = {**response.extensions, EXTENSION: Source.NETWORK}
            return response
        return await self._fetch(plan)

    def serve(self, plan: Plan, request: httpx.Request | None = None) -> httpx.Response:
        """A planned answer from the store (starting its background revalidation, if any)."""
        assert plan.answer is not None
        self._cache.served(plan.answer)
        if plan.background and plan.key not in self._flights.table:
            self._revalidate_in_background(plan)
        return response_of(plan.answer, request)

    async def aclose(self) -> None:
        """Cancel background revalidations, then close the inner transport."""
        tasks = list(self._flights.background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._inner.aclose()

    # ---- single-flight --------------------------------------------------------------------------

    async def _fetch(self, plan: Plan) -> httpx.Response:
        key, ask = plan.key, plan.ask
        assert ask is not None
        table = self._flights.table
        own = plan.own
        while True:
            flight = table.get(key)
            if flight is not None and flight.leader is asyncio.current_task():
                own = True  # this task holds that flight's unread body: waiting for it would deadlock
            if flight is None or own:
                newer = self._register(key, asyncio.current_task())
                if flight is not None and ask.refresh == "cancel":
                    self._supersede(flight, newer)
                return await self._lead(key, newer, ask, None if flight is not None else plan)
            followed = await self._follow(flight)
            if isinstance(followed, Answer):
                return response_of(followed)
            if followed is PASS:  # the leader's body streamed past: ask on our own, unshared
                loop = asyncio.get_running_loop()
                return await self._lead(None, _Flight(loop.create_future(), None), ask)
            # the leader went away (cancelled): start over, perhaps as the new leader

    def _register(self, key: Any, leader: asyncio.Task[Any] | None) -> _Flight:
        flight = _Flight(asyncio.get_running_loop().create_future(), leader)
        self._flights.table[key] = flight
        return flight

    def _supersede(self, older: _Flight, newer: _Flight) -> None:
        """Cancel an older request still waiting for its head; its waiters take the newer answer."""
        older.successor = newer
        if older.leader is not None and not older.result.done() and not older.streaming:
            older.leader.cancel(_SUPERSEDED)

    def _publish(self, key: Any, flight: _Flight, result: Result) -> None:
        if not flight.result.done():
            flight.result.set_result(result)
        if key is not None and self._flights.table.get(key) is flight:
            del self._flights.table[key]

    async def _lead(self, key: Any, flight: _Flight, ask: Ask, planned: Plan | None = None) -> httpx.Response:
        """Run one exchange in the calling task and hand its outcome to the flight's followers."""
        try:
            return await self._exchange(key, flight, ask, planned)
        except asyncio.CancelledError as exc:
            flight.result.cancel()  # followers: follow the successor, or start over
            me = asyncio.current_task()
            if flight.successor is None or exc.args != (_SUPERSEDED,) or me is None or me.uncancel():
                raise
            if key is not None and self._flights.table.get(key) is flight:
                del self._flights.table[key]
            followed = await self._follow(flight.successor)
            if isinstance(followed, Answer):
                return response_of(followed)
            # the newer request's body streamed past (or it went away): ask on our own, unshared
            alone = _Flight(asyncio.get_running_loop().create_future(), me)
            return await self._lead(None, alone, ask)
        except BaseException as exc:
            if not flight.result.done():
                flight.result.set_exception(exc)
                flight.result.exception()  # retrieved here: with no follower it must not be logged
            raise
        finally:
            if not flight.streaming and key is not None and self._flights.table.get(key) is flight:
                del self._flights.table[key]

    async def _follow(self, flight: _Flight) -> Result | None:
        """Await another caller's exchange; None if its leader went away without an answer.

        ``shield``: a follower that is cancelled leaves without cancelling the exchange for the others.
        """
        while True:
            try:
                return await asyncio.shield(flight.result)
            except asyncio.CancelledError:
                me = asyncio.current_task()
                if me is not None and me.cancelling():  # this follower itself was cancelled
                    raise
                if flight.successor is None:
                    return None
                flight = flight.successor  # superseded: follow the newer request

    def _revalidate_in_background(self, plan: Plan) -> None:
        """One background revalidation (stale-while-revalidate); its errors only reach followers.

        It sends a copy of the request: the caller already holds its (stale) response.
        """
        assert plan.ask is not None
        flight = self._register(plan.key, None)
        original = plan.ask.request
        copy = httpx.Request(original.method, original.url, headers=original.headers)
        ask = Ask.of(copy, plan.ask.headers)

        async def lead() -> None:
            with contextlib.suppress(Exception):
                response = await self._lead(plan.key, flight, ask)
                await response.aread()
                await _finish(response, ask.method)

        task = asyncio.get_running_loop().create_task(lead())
        flight.leader = task
        self._flights.background.add(task)
        task.add_done_callback(self._flights.background.discard)

    # ---- network --------------------------------------------------------------------------------

    async def _exchange(
        self, key: Any, flight: _Flight, ask: Ask, planned: Plan | None = None
    ) -> httpx.Response:
        """Validate what is stored (or fetch), falling back to stale on errors; stream the body."""
        cache = self._cache
        exchange = cache.prepare(ask, planned=planned)
        try:
            response = await _send(self._inner, ask.request, exchange.conditions)
            outcome = cache.on_response(exchange, response.status_code, response.headers)
            if outcome.retry:  # a 304 for a body no longer held: ask again, unconditionally
                await _finish(response, ask.method)
                exchange = cache.prepare(ask, conditional=False)
                response = await _send(self._inner, ask.request, ())
                outcome = cache.on_response(exchange, response.status_code, response.headers)
        except httpx.TransportError:
            stale = cache.on_error(exchange)
            if stale is None:
                raise
            self._publish(key, flight, stale)
            return response_of(stale)
        if outcome.answer is not None:
            await _finish(response, ask.method)
            self._publish(key, flight, outcome.answer)
            return response_of(outcome.answer)
        response.extensions = {**response.extensions, EXTENSION: Source.NETWORK}
        if outcome.sink is None:
            self._publish(key, flight, PASS)
            return response
        stream = response.stream
        if isinstance(stream, httpx.ByteStream):  # a body already in memory (e.g. MockTransport)
            answer = outcome.sink.complete(b"".join(stream))
            self._publish(key, flight, answer)
            return response
        if not isinstance(stream, httpx.AsyncByteStream):
            raise TypeError("the inner transport returned a response without an async stream")
        flight.streaming = True

        def done(answer: Answer | None) -> None:
            self._publish(key, flight, PASS if answer is None else answer)

        response.stream = AsyncTee(stream, outcome.sink, done)
        return response


class ETagClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` whose every transport goes through one cache.

    The client is built exactly as ``httpx.AsyncClient(**kwargs)`` would be (``transport=``,
    ``mounts=``, ``proxy=``, ``HTTP_PROXY`` / ``HTTPS_PROXY`` with ``trust_env``, ``verify``, ``http2``,
    ``limits``...), and then each transport it would use is wrapped in an :class:`ETagTransport`
    sharing one store: a proxy never bypasses the cache. ``store``, ``max_entries``, ``max_bytes``,
    ``heuristic`` and ``now`` configure the cache (see :class:`ETagTransport`).
    """

    def __init__(
        self,
        *,
        store: ResponseStore | None = None,
        max_entries: int = 1024,
        max_bytes: int = 64 * 1024 * 1024,
        heuristic: float | None = None,
        now: Callable[[], float] = time.time,
        **kwargs: Any,
    ) -> None:
        cache = make_cache(store, max_entries, max_bytes, heuristic, now)  # checks before httpx builds
        self._urls = UrlMemo()
        super().__init__(**kwargs)
        first = ETagTransport.__new__(ETagTransport)
        first._cache, first._flights = cache, _Flights()
        self._etag = wrap_client_transports(self, lambda inner: ETagTransport._sharing(inner, first))

    def stats(self) -> ClientStats:
        """The cache's counters (see :class:`ClientStats`)."""
        return self._etag.stats()

    @property
    def etag_transport(self) -> ETagTransport:
        """The caching transport of the default route (for ``inflight``, ``store`` and ``stats()``)."""
        return self._etag

    def _merge_url(self, url: httpx.URL | str) -> httpx.URL:
        """httpx's URL merging, remembered per string (see ``_faces.UrlMemo``)."""
        return self._urls.merge(url, self._base_url, super()._merge_url)

    def clear(self) -> None:
        """Forget every stored response."""
        self._etag.clear()

    def invalidate(self, url: httpx.URL | str) -> None:
        """Forget every stored response for ``url`` (relative URLs join ``base_url``)."""
        self._etag.invalidate(self._merge_url(url))

    async def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        """httpx's ``send``, with a fast path: an answer from the store skips auth, redirect and hook
        machinery that only matters for a request that goes out (see ``_faces.fast_answer``)."""
        found = fast_answer(self, request, kwargs)
        if found is None:
            sent: httpx.Response = await super().send(request, **kwargs)
            return sent
        transport, plan = found
        response: httpx.Response = transport.serve(plan, request)
        response.default_encoding = self._default_encoding
        if not kwargs.get("stream", False):
            await response.aread()
        return response

    async def refresh(
        self, url: httpx.URL | str, *, cancel_older: bool = False, **kwargs: Any
    ) -> httpx.Response:
        """GET ``url`` from the origin now (revalidating what is stored), not joining an older
        request in flight; ``cancel_older`` cancels that older request (if it still waits for its
        response head) and hands its waiters this one."""
        extensions = dict(kwargs.pop("extensions", None) or {})
        extensions[REFRESH] = "cancel" if cancel_older else "new"
        return await self.get(url, extensions=extensions, **kwargs)

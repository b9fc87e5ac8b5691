"""An async revalidating HTTP client: a private RFC 9111 cache as an httpx transport.

``ETagTransport(inner)`` wraps any ``httpx.AsyncBaseTransport``; ``ETagClient`` is an
``httpx.AsyncClient`` that uses it. Decisions (freshness, what to store, which validators to send,
what a 304 freshens) come from the pure :mod:`etagkit.core.freshness`; this module only does I/O and
book-keeping: the LRU store, single-flight, generations (latest wins) and statistics.

Every response says where it came from in ``response.extensions["etagkit"]`` (a :class:`Source`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import itertools
import time
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

try:
    import httpx
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "etagkit.client needs httpx, which comes with the 'client' extra: pip install 'etagkit[client]'"
    ) from exc

from cachetools import LRUCache

from ._errors import ConfigurationError
from .core.freshness import (
    STALE_IF_ERROR_STATUSES,
    Freshness,
    RequestDirectives,
    Use,
    Validators,
    age_value,
    conditional_headers,
    decide,
    describe,
    freshen_headers,
    headers_to_store,
    invalidation_targets,
    is_storable,
    select_for_304,
    usable_on_error,
    vary_selection,
)
from .core.policy import vary_names

__all__ = ["ClientStats", "ETagClient", "ETagTransport", "Source"]

EXTENSION = "etagkit"  # response.extensions key holding the Source
REFRESH = "etagkit.refresh"  # request extension: "new" (own request) or "cancel" (also cancel older)
_CALLER_CONDITIONS = frozenset(
    {"if-none-match", "if-modified-since", "if-match", "if-unmodified-since", "if-range", "range"}
)
_SUPERSEDED = "etagkit: superseded by a newer request"  # the cancel message of a superseded leader
_ENTRY_OVERHEAD = 256  # bytes charged per entry on top of its body and headers

Pairs = tuple[tuple[str, str], ...]
StoreKey = tuple[str, str, tuple[tuple[str, str | None], ...]]  # url, auth scope, Vary selection
FlightKey = tuple[str, str, str, Hashable]  # method, url, auth scope, Vary selection or all headers


class Source(enum.Enum):
    """Where a response came from."""

    NETWORK = "network"  # a full response from the origin
    REVALIDATED = "revalidated"  # the stored body, confirmed by a 304 from the origin
    CACHE = "cache"  # fresh from the cache; nothing was sent
    STALE = "stale"  # stale from the cache (stale-while-revalidate or stale-if-error)


@dataclass(frozen=True, slots=True)
class ClientStats:
    """Counters since the transport was made (``ratio_304_to_200`` is 304s per network 200)."""

    requests_sent: int
    responses_200: int
    responses_304: int
    fresh_hits: int
    stale_hits: int
    bytes_not_downloaded: int
    entries: int
    stored_bytes: int
    ratio_304_to_200: float


Identity = tuple[str, str, int, tuple[str, ...], tuple[tuple[str, str | None], ...]]


@dataclass(frozen=True, slots=True)
class _Stored:
    """One stored response: its validators and its body are one record, stored and evicted together.

    ``wire`` is ``headers`` without ``Age``, already in httpx's form, so that a hit only copies it.
    """

    url: str
    scope: str
    status: int
    headers: Pairs
    body: bytes
    vary: tuple[str, ...]
    selection: tuple[tuple[str, str | None], ...]
    freshness: Freshness
    size: int = field(compare=False)
    validators: Validators = field(compare=False)
    wire: httpx.Headers = field(compare=False, repr=False)

    @classmethod
    def make(
        cls,
        identity: Identity,
        headers: Pairs,
        body: bytes,
        times: tuple[float, float],
        heuristic: float | None,
    ) -> _Stored:
        """A record from its identity (url, scope, status, vary, selection), its stored headers and
        body, and the (request, response) times of the exchange that brought them."""
        url, scope, status, vary, selection = identity
        freshness, validators = describe(status, headers, *times, heuristic=heuristic)
        size = len(body) + sum(len(n) + len(v) for n, v in headers) + _ENTRY_OVERHEAD
        wire = httpx.Headers([(n, v) for n, v in headers if n.lower() != "age"])
        return cls(url, scope, status, headers, body, vary, selection, freshness, size, validators, wire)

    @property
    def identity(self) -> Identity:
        return self.url, self.scope, self.status, self.vary, self.selection

    @property
    def key(self) -> StoreKey:
        return self.url, self.scope, self.selection

    def answer(self, source: Source, now: float) -> _Answer:
        """This record as a response from the cache, with its current ``Age`` (RFC 9111 §5.1)."""
        headers = httpx.Headers(self.wire)
        headers["Age"] = age_value(self.freshness.current_age(now))
        return _Answer(self.status, headers, self.body, source)


@dataclass(frozen=True, slots=True)
class _Answer:
    """What one network exchange (or the cache) produced; shared by every waiter of a flight."""

    status: int
    headers: httpx.Headers  # never mutated: each waiter's response copies it
    body: bytes
    source: Source

    def response(self) -> httpx.Response:
        return httpx.Response(
            self.status, headers=self.headers, stream=_Body(self.body), extensions={EXTENSION: self.source}
        )


class _Body(httpx.AsyncByteStream):
    """A stored body as a response stream (read lazily, unlike ``content=``, which decodes at once)."""

    __slots__ = ("_body",)

    def __init__(self, body: bytes) -> None:
        self._body = body

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._body


@dataclass(frozen=True, slots=True)
class _Ask:
    """A GET or HEAD as the cache sees it: the request and the plain values read from it once."""

    request: httpx.Request
    url: str
    scope: str  # the Authorization value: responses are never shared across credentials
    headers: Pairs
    directives: RequestDirectives

    @classmethod
    def of(cls, request: httpx.Request, headers: Pairs) -> _Ask:
        """Read a request once; ``headers`` are its fields with lower-case names."""
        scope = next((value for name, value in headers if name == "authorization"), "")
        return cls(request, str(request.url), scope, headers, RequestDirectives.parse(headers))


@dataclass(frozen=True, slots=True)
class _Received:
    """A response read off the network, with the generation and times of its exchange."""

    status: int
    headers: Pairs
    body: bytes
    generation: int
    request_time: float
    response_time: float
    wire: httpx.Headers  # the same fields as httpx received them


@dataclass(slots=True)
class _Flight:
    """One network request in progress for a key.

    Its leader (the caller that started it, or a background task) runs the exchange in its own
    task, with no task in between, and publishes the answer (or the error) in ``result`` for the
    followers. ``successor`` is set when a newer request superseded and cancelled this one.
    """

    result: asyncio.Future[_Answer]
    leader: asyncio.Task[Any] | None
    successor: _Flight | None = None


@dataclass(slots=True)
class _Counters:
    sent: int = 0
    ok: int = 0
    not_modified: int = 0
    fresh: int = 0
    stale: int = 0
    saved: int = 0


class _LRU(LRUCache[Hashable, Any]):
    """cachetools' LRU that reports each eviction, so the owner can keep its indexes in step."""

    def __init__(self, maxsize: int, on_evict: Callable[[Hashable, Any], None], **kwargs: Any) -> None:
        super().__init__(maxsize, **kwargs)
        self._on_evict = on_evict

    def popitem(self) -> tuple[Hashable, Any]:
        key, value = super().popitem()
        self._on_evict(key, value)
        return key, value


class ETagTransport(httpx.AsyncBaseTransport):
    """An httpx async transport that caches and revalidates (RFC 9111, private cache).

    ``max_entries`` and ``max_bytes`` bound the store (LRU); ``heuristic`` (e.g. 0.1) enables
    heuristic freshness from Last-Modified (RFC 9111 §4.2.2), off by default; ``now`` is the clock
    (POSIX seconds) used for all freshness arithmetic. One instance belongs to one event loop.
    """

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport | None = None,
        *,
        max_entries: int = 1024,
        max_bytes: int = 64 * 1024 * 1024,
        heuristic: float | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ConfigurationError(f"max_entries must be an int >= 1, not {max_entries!r}")
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise ConfigurationError(f"max_bytes must be an int >= 1, not {max_bytes!r}")
        if heuristic is not None and not 0 < heuristic <= 1:
            raise ConfigurationError(f"heuristic must be a fraction in (0, 1], not {heuristic!r}")
        self._inner = inner if inner is not None else httpx.AsyncHTTPTransport()
        self._max_entries = max_entries
        self._heuristic = heuristic
        self._now = now
        self._entries = _LRU(max_bytes, self._evicted, getsizeof=lambda stored: stored.size)
        self._by_url: dict[str, dict[StoreKey, None]] = {}
        # Latest wins: every network request takes a generation; a mark records, per store key, the
        # newest generation that completed and, per URL, the generation of its last invalidation. A
        # response may update the store only if it is newer than both. Marks are bounded too: an
        # evicted mark raises ``_floor``, and a missing mark counts as ``_floor`` (never unsafe).
        self._generation = itertools.count(1)
        self._marks = _LRU(max(4096, 4 * max_entries), self._mark_evicted)
        self._floor = 0
        self._inflight: dict[FlightKey, _Flight] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._counters = _Counters()

    # ---- public ---------------------------------------------------------------------------------

    def stats(self) -> ClientStats:
        """Requests sent, network 200s and 304s, cache hits, bytes a 304 or a hit did not download."""
        c = self._counters
        return ClientStats(
            requests_sent=c.sent,
            responses_200=c.ok,
            responses_304=c.not_modified,
            fresh_hits=c.fresh,
            stale_hits=c.stale,
            bytes_not_downloaded=c.saved,
            entries=len(self._entries),
            stored_bytes=int(self._entries.currsize),
            ratio_304_to_200=c.not_modified / c.ok if c.ok else 0.0,
        )

    @property
    def inflight(self) -> int:
        """Network requests currently shared by waiters (0 when idle: the table never leaks)."""
        return len(self._inflight)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Answer from the cache when RFC 9111 allows, else from one (shared) network request."""
        method = request.method
        if method not in ("GET", "HEAD"):
            return await self._unsafe(request)
        headers = tuple(request.headers.multi_items())  # names come lower-cased
        if any(name in _CALLER_CONDITIONS for name, _ in headers):
            # The caller validates by itself: pass through, store nothing.
            response = await self._inner.handle_async_request(request)
            self._counters.sent += 1
            response.extensions = {**response.extensions, EXTENSION: Source.NETWORK}
            return response
        ask = _Ask.of(request, headers)
        directives = ask.directives
        stored = self._lookup(ask) if method == "GET" else None
        key: FlightKey = (method, ask.url, ask.scope, self._selection_for_key(stored, ask.headers))
        refresh = request.extensions.get(REFRESH)
        if stored is not None and not refresh:
            now = self._now()
            use = decide(stored.freshness, directives, now)
            if use is Use.FRESH:
                self._counters.fresh += 1
                self._counters.saved += len(stored.body)
                return stored.answer(Source.CACHE, now).response()
            if use is Use.STALE_WHILE_REVALIDATE:
                self._counters.stale += 1
                self._counters.saved += len(stored.body)
                if key not in self._inflight:
                    self._revalidate_in_background(key, ask)
                return stored.answer(Source.STALE, now).response()
        if directives.only_if_cached:  # RFC 9111 §5.2.1.7
            return httpx.Response(504, extensions={EXTENSION: Source.CACHE})
        # A request that must see the origin now does not join an older request in flight.
        own = directives.no_cache or bool(refresh)
        while True:
            flight = self._inflight.get(key)
            if flight is None or own:
                newer = self._register(key, asyncio.current_task())
                if flight is not None and refresh == "cancel":
                    self._supersede(flight, newer)
                answer = await self._lead(key, newer, ask)
                return answer.response()
            followed = await self._follow(flight)
            if followed is not None:
                return followed.response()
            # the leader went away (cancelled): start over, perhaps as the new leader

    async def aclose(self) -> None:
        """Cancel background revalidations, then close the inner transport."""
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._inner.aclose()

    # ---- the store ------------------------------------------------------------------------------

    def _lookup(self, ask: _Ask) -> _Stored | None:
        """The stored response whose Vary selection matches the request (the newest if several)."""
        best: _Stored | None = None
        for key in list(self._by_url.get(ask.url, ())):
            stored: _Stored | None = self._entries.get(key)
            if (
                stored is not None
                and stored.scope == ask.scope
                and vary_selection(stored.vary, ask.headers) == stored.selection
                and (best is None or stored.freshness.response_time > best.freshness.response_time)
            ):
                best = stored
        return best

    def _candidates(self, url: str, scope: str) -> list[_Stored]:
        found = (self._entries.get(key) for key in list(self._by_url.get(url, ())))
        return [stored for stored in found if stored is not None and stored.scope == scope]

    def _selection_for_key(self, stored: _Stored | None, headers: Pairs) -> Hashable:
        if stored is not None:
            return stored.selection
        # Vary unknown: only requests with identical headers may share a network request.
        return tuple(sorted((name.lower(), value) for name, value in headers))

    def _put(self, stored: _Stored) -> None:
        if stored.size > self._entries.maxsize:
            self._drop(stored.key)
            return
        self._entries[stored.key] = stored
        self._by_url.setdefault(stored.url, {})[stored.key] = None
        while len(self._entries) > self._max_entries:
            self._entries.popitem()

    def _drop(self, key: StoreKey) -> None:
        self._entries.pop(key, None)
        self._unindex(key)

    def _evicted(self, key: Hashable, value: Any) -> None:
        if isinstance(value, _Stored):
            self._unindex(value.key)

    def _unindex(self, key: StoreKey) -> None:
        keys = self._by_url.get(key[0])
        if keys is not None:
            keys.pop(key, None)
            if not keys:
                del self._by_url[key[0]]

    # ---- generations (latest wins) --------------------------------------------------------------

    def _mark_evicted(self, key: Hashable, value: Any) -> None:
        self._floor = max(self._floor, int(value))

    def _mark(self, key: Hashable) -> int:
        value: int = self._marks.get(key, self._floor)
        return value

    def _may_update(self, key: StoreKey, generation: int) -> bool:
        """Only if no newer request for this key completed and the URL was not invalidated since."""
        return generation > self._mark(("done", key)) and generation > self._mark(("invalidated", key[0]))

    def _completed(self, key: StoreKey, generation: int) -> None:
        self._marks[("done", key)] = max(generation, self._mark(("done", key)))

    def _invalidate(self, urls: tuple[str, ...]) -> None:
        for raw in urls:
            try:
                url = str(httpx.URL(raw))
            except (httpx.InvalidURL, ValueError, TypeError):
                continue
            for key in list(self._by_url.get(url, ())):
                self._drop(key)
            self._marks[("invalidated", url)] = next(self._generation)

    # ---- single-flight --------------------------------------------------------------------------

    def _register(self, key: FlightKey, leader: asyncio.Task[Any] | None) -> _Flight:
        flight = _Flight(asyncio.get_running_loop().create_future(), leader)
        self._inflight[key] = flight
        return flight

    def _supersede(self, older: _Flight, newer: _Flight) -> None:
        """Cancel an older request in flight; its leader and followers take the newer answer."""
        older.successor = newer
        if older.leader is not None and not older.result.done():
            older.leader.cancel(_SUPERSEDED)

    async def _lead(self, key: FlightKey, flight: _Flight, ask: _Ask) -> _Answer:
        """Run one exchange in the calling task and hand its outcome to the flight's followers."""
        try:
            answer = await self._fetch(ask)
        except asyncio.CancelledError as exc:
            flight.result.cancel()  # followers: follow the successor, or start over
            me = asyncio.current_task()
            if flight.successor is None or exc.args != (_SUPERSEDED,) or me is None or me.uncancel():
                raise
            if self._inflight.get(key) is flight:
                del self._inflight[key]
            followed = await self._follow(flight.successor)
            if followed is None:
                raise
            return followed
        except BaseException as exc:
            flight.result.set_exception(exc)
            flight.result.exception()  # retrieved here: with no follower it must not be logged
            raise
        else:
            flight.result.set_result(answer)
            return answer
        finally:
            if self._inflight.get(key) is flight:
                del self._inflight[key]

    async def _follow(self, flight: _Flight) -> _Answer | None:
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

    def _revalidate_in_background(self, key: FlightKey, ask: _Ask) -> None:
        """One background revalidation (stale-while-revalidate); its errors only reach followers.

        It sends a copy of the request: the caller already holds its (stale) response.
        """
        flight = self._register(key, None)
        original = ask.request
        ask = dataclasses.replace(
            ask,
            request=httpx.Request(
                original.method, original.url, headers=original.headers, extensions=original.extensions
            ),
        )

        async def lead() -> None:
            with contextlib.suppress(Exception):
                await self._lead(key, flight, ask)

        task = asyncio.get_running_loop().create_task(lead())
        flight.leader = task
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ---- network --------------------------------------------------------------------------------

    async def _fetch(self, ask: _Ask) -> _Answer:
        """One flight: revalidate what is stored (or fetch), falling back to stale on errors."""
        stored = self._lookup(ask) if ask.request.method == "GET" else None
        conditions = conditional_headers(stored.validators) if stored is not None else ()
        try:
            answer = await self._exchange(ask, conditions)
            if answer is None and conditions:  # a 304 for a body no longer held: ask again, unconditionally
                answer = await self._exchange(ask, ())
        except httpx.TransportError:
            now = self._now()
            if stored is not None and usable_on_error(stored.freshness, ask.directives, now):
                self._counters.stale += 1
                return stored.answer(Source.STALE, now)
            raise
        if answer is None:  # only a conditional request can be answered by a stored body
            raise httpx.RemoteProtocolError(
                "304 Not Modified to an unconditional request", request=ask.request
            )
        if answer.status in STALE_IF_ERROR_STATUSES and stored is not None:
            now = self._now()
            if usable_on_error(stored.freshness, ask.directives, now):
                self._counters.stale += 1
                return stored.answer(Source.STALE, now)
        return answer

    async def _exchange(self, ask: _Ask, conditions: Pairs) -> _Answer | None:
        """Send the request (with ``conditions`` added), read the whole body, update the store."""
        generation = next(self._generation)
        request = ask.request  # the flight's own: its caller is suspended until this returns
        plain = request.headers
        if conditions:  # added for this exchange only (the caller never sees them)
            request.headers = plain.copy()
            for name, value in conditions:
                request.headers[name] = value
        request_time = self._now()
        try:
            response = await self._inner.handle_async_request(request)
        finally:
            request.headers = plain
        try:
            stream = response.stream  # the raw (still content-coded) body, even if already read
            if not isinstance(stream, httpx.AsyncByteStream):
                raise TypeError("the inner transport returned a response without an async stream")
            body = b"".join([chunk async for chunk in stream])
        finally:
            await response.aclose()
        received = _Received(
            response.status_code,
            tuple(response.headers.multi_items()),
            body,
            generation,
            request_time,
            self._now(),
            response.headers,
        )
        self._counters.sent += 1
        if received.status == 304:
            self._counters.not_modified += 1
            return self._not_modified(ask, received) if conditions else None
        if received.status == 200:
            self._counters.ok += 1
        if ask.request.method == "GET":
            self._maybe_store(ask, received)
        return _Answer(received.status, received.wire, body, Source.NETWORK)

    def _maybe_store(self, ask: _Ask, received: _Received) -> None:
        """Store a full response (RFC 9111 §3) unless a newer one for its key completed first."""
        names = vary_names(received.wire.get("vary"))
        key: StoreKey = (ask.url, ask.scope, vary_selection(names or (), ask.headers))
        if not self._may_update(key, received.generation):
            return  # a newer response for this key already completed, or the URL was invalidated
        self._completed(key, received.generation)
        if received.status in STALE_IF_ERROR_STATUSES or names is None:
            return  # an error never replaces a stored response; Vary: * is never reusable
        if not is_storable("GET", received.status, received.headers, ask.directives):
            self._drop(key)  # e.g. now no-store: the old body must not be served again
            return
        identity = (ask.url, ask.scope, received.status, names, key[2])
        times = (received.request_time, received.response_time)
        kept = headers_to_store(received.headers)
        self._put(_Stored.make(identity, kept, received.body, times, self._heuristic))

    def _not_modified(self, ask: _Ask, received: _Received) -> _Answer | None:
        """Freshen the stored responses a 304 selects (RFC 9111 §4.3.4); None if none is held."""
        candidates = self._candidates(ask.url, ask.scope)
        chosen = select_for_304(
            [(stored.validators, stored.freshness.response_time) for stored in candidates],
            Validators.of(received.headers),
        )
        if not chosen:
            return None
        answer: _Stored | None = None
        for index in chosen:
            stored = candidates[index]
            if self._may_update(stored.key, received.generation):
                self._completed(stored.key, received.generation)
                headers = freshen_headers(stored.headers, received.headers)
                times = (received.request_time, received.response_time)
                stored = _Stored.make(stored.identity, headers, stored.body, times, self._heuristic)
                self._put(stored)
            answer = answer or stored
        assert answer is not None
        self._counters.saved += len(answer.body)
        # The caller gets the stored body with the freshened headers, plus this 304's own cookies
        # (they come from the network, not from the cache).
        served = answer.answer(Source.REVALIDATED, received.response_time)
        cookies = [(n, v) for n, v in received.headers if n.lower() == "set-cookie"]
        if not cookies:
            return served
        return dataclasses.replace(served, headers=httpx.Headers([*served.headers.multi_items(), *cookies]))

    async def _unsafe(self, request: httpx.Request) -> httpx.Response:
        """Pass an unsafe (or unknown) method through; a success invalidates its targets (§4.4)."""
        response = await self._inner.handle_async_request(request)
        self._counters.sent += 1
        targets = invalidation_targets(
            request.method, response.status_code, str(request.url), tuple(response.headers.multi_items())
        )
        if targets:
            self._invalidate(targets)
        response.extensions = {**response.extensions, EXTENSION: Source.NETWORK}
        return response


class ETagClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` whose transport is an :class:`ETagTransport`.

    ``transport`` (optional) is the inner transport that reaches the network (by default an
    ``httpx.AsyncHTTPTransport`` built with the ``verify``, ``cert``, ``http1``, ``http2`` and
    ``limits`` given here; pass your own for proxies); the other keyword arguments of
    :class:`ETagTransport` configure the cache, the rest go to ``httpx.AsyncClient``.
    """

    def __init__(
        self,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        max_entries: int = 1024,
        max_bytes: int = 64 * 1024 * 1024,
        heuristic: float | None = None,
        now: Callable[[], float] = time.time,
        **kwargs: Any,
    ) -> None:
        if transport is None:
            options = {k: kwargs[k] for k in ("verify", "cert", "http1", "http2", "limits") if k in kwargs}
            transport = httpx.AsyncHTTPTransport(**options)
        self._etag = ETagTransport(
            transport, max_entries=max_entries, max_bytes=max_bytes, heuristic=heuristic, now=now
        )
        super().__init__(transport=self._etag, **kwargs)

    def stats(self) -> ClientStats:
        """The cache's counters (see :class:`ClientStats`)."""
        return self._etag.stats()

    @property
    def etag_transport(self) -> ETagTransport:
        """The caching transport (for its ``inflight`` count and ``stats()``)."""
        return self._etag

    async def refresh(
        self, url: httpx.URL | str, *, cancel_older: bool = False, **kwargs: Any
    ) -> httpx.Response:
        """GET ``url`` from the origin now (revalidating what is stored), not joining an older
        request in flight; ``cancel_older`` cancels that older request and hands its waiters this one."""
        extensions = dict(kwargs.pop("extensions", None) or {})
        extensions[REFRESH] = "cancel" if cancel_older else "new"
        return await self.get(url, extensions=extensions, **kwargs)

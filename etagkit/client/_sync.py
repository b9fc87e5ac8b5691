"""The sync face: ``ETagSyncTransport`` (an httpx transport) and ``ETagSyncClient``.

The same cache as the async face (:class:`~etagkit.client._cache.Cache`, every RFC 9111 decision);
here single-flight waits on threads: concurrent requests for one key from several threads make one
network request, run by the first caller in its own thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from ._cache import Ask, Plan, Step
from ._faces import UrlMemo, fast_answer, make_cache, wrap_client_transports
from ._model import EXTENSION, PASS, REFRESH, Answer, ClientStats, Pairs, Source, _Pass, response_of
from ._store import ResponseStore
from ._streams import SyncTee

__all__ = ["ETagSyncClient", "ETagSyncTransport"]

Result = Answer | _Pass


class _Flight:
    """One network request in progress for a key: followers wait on ``done``, then read ``result``
    (an answer, or PASS when the body streamed past unkept) or ``error``."""

    __slots__ = ("done", "error", "leader", "result", "waiters")

    def __init__(self) -> None:
        self.waiters = 0
        self.leader = threading.get_ident()
        self.done = threading.Event()
        self.result: Result | None = None
        self.error: BaseException | None = None


class _Flights:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.table: dict[Any, _Flight] = {}
        self.background: set[threading.Thread] = set()


def _send(inner: httpx.BaseTransport, request: httpx.Request, conditions: Pairs) -> httpx.Response:
    """Send ``request`` with ``conditions`` added for this exchange only."""
    if not conditions:
        return inner.handle_request(request)
    plain = request.headers
    request.headers = plain.copy()
    for name, value in conditions:
        request.headers[name] = value
    try:
        return inner.handle_request(request)
    finally:
        request.headers = plain


def _finish(response: httpx.Response, method: str) -> None:
    """Close a network response the caller will not see; a bodiless one (a 304, an answer to HEAD)
    is read to its end first, so that its connection goes back to the pool instead of closing."""
    try:
        if response.status_code == 304 or method == "HEAD":
            for _ in response.stream:  # type: ignore[union-attr]
                pass
    finally:
        response.close()


class ETagSyncTransport(httpx.BaseTransport):
    """An httpx transport that caches and revalidates (RFC 9111, private cache), for ``httpx.Client``.

    The options are those of :class:`~etagkit.client.ETagTransport`; ``inner`` defaults to
    ``httpx.HTTPTransport()``. Thread-safe.
    """

    def __init__(
        self,
        inner: httpx.BaseTransport | None = None,
        *,
        store: ResponseStore | None = None,
        max_entries: int = 1024,
        max_bytes: int = 64 * 1024 * 1024,
        heuristic: float | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._inner = inner if inner is not None else httpx.HTTPTransport()
        self._cache = make_cache(store, max_entries, max_bytes, heuristic, now)
        self._flights = _Flights()

    @classmethod
    def _sharing(cls, inner: httpx.BaseTransport, other: ETagSyncTransport) -> ETagSyncTransport:
        self = cls.__new__(cls)
        self._inner, self._cache, self._flights = inner, other._cache, other._flights
        return self

    def stats(self) -> ClientStats:
        """The cache's counters (see :class:`ClientStats`)."""
        return self._cache.stats()

    @property
    def store(self) -> ResponseStore:
        return self._cache.store

    @property
    def inflight(self) -> int:
        """Network requests currently shared by waiters."""
        with self._flights.lock:
            return len(self._flights.table)

    @property
    def waiting(self) -> int:
        """Callers waiting for a network request another caller leads."""
        with self._flights.lock:
            return sum(flight.waiters for flight in self._flights.table.values())

    def clear(self) -> None:
        """Forget every stored response (responses in flight will not store theirs)."""
        self._cache.clear()

    def invalidate(self, url: httpx.URL | str) -> None:
        """Forget every stored response for ``url``."""
        self._cache.invalidate(str(url))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Answer from the cache when RFC 9111 allows, else from one (shared) network request."""
        plan = self._cache.plan(request)
        if plan.step is Step.ANSWER:
            return self.serve(plan)
        response = None
        if plan.step in (Step.UNSAFE, Step.PASS):
            response = self._inner.handle_request(request)
            if plan.step is Step.UNSAFE:
                self._cache.on_unsafe(request, response.status_code, response.headers)
            else:
                self._cache.sent()
            response.extensions = {**response.extensions, EXTENSION: Source.NETWORK}
            return response
        return self._fetch(plan)

    def serve(self, plan: Plan, request: httpx.Request | None = None) -> httpx.Response:
        """A planned answer from the store (starting its background revalidation, if any)."""
        assert plan.answer is not None
        self._cache.served(plan.answer)
        if plan.background:
            self._revalidate_in_background(plan)
        return response_of(plan.answer, request)

    def close(self) -> None:
        """Wait for background revalidations, then close the inner transport."""
        for thread in list(self._flights.background):
            thread.join()
        self._inner.close()

    # ---- single-flight --------------------------------------------------------------------------

    def _fetch(self, plan: Plan) -> httpx.Response:
        key, ask = plan.key, plan.ask
        assert ask is not None
        flights = self._flights
        with flights.lock:
            flight = flights.table.get(key)
            # a thread never waits for a flight it leads itself (it holds that flight's unread body)
            lead = flight is None or plan.own or flight.leader == threading.get_ident()
            if lead:
                flight = flights.table[key] = _Flight()
            else:
                assert flight is not None
                flight.waiters += 1
        assert flight is not None
        if lead:
            return self._lead(key, flight, ask, plan)
        flight.done.wait()
        if flight.error is not None:
            raise flight.error
        if isinstance(flight.result, Answer):
            return response_of(flight.result)
        return self._lead(None, _Flight(), ask)  # the body streamed past: ask on our own, unshared

    def _publish(self, key: Any, flight: _Flight, result: Result | None, error: BaseException | None) -> None:
        with self._flights.lock:
            if flight.done.is_set():
                return
            flight.result, flight.error = result, error
            if key is not None and self._flights.table.get(key) is flight:
                del self._flights.table[key]
        flight.done.set()

    def _lead(self, key: Any, flight: _Flight, ask: Ask, planned: Plan | None = None) -> httpx.Response:
        try:
            return self._exchange(key, flight, ask, planned)
        except BaseException as exc:
            self._publish(key, flight, None, exc)
            raise

    def _revalidate_in_background(self, plan: Plan) -> None:
        """One background revalidation thread (stale-while-revalidate) unless one is in flight."""
        assert plan.ask is not None
        flights = self._flights
        with flights.lock:
            if plan.key in flights.table:
                return
            flight = flights.table[plan.key] = _Flight()
        original = plan.ask.request
        copy = httpx.Request(original.method, original.url, headers=original.headers)
        ask = Ask.of(copy, plan.ask.headers)

        def lead() -> None:
            flight.leader = threading.get_ident()
            try:
                response = self._lead(plan.key, flight, ask)
                response.read()
                _finish(response, ask.method)
            except Exception:  # its errors only reach its followers
                pass
            finally:
                flights.background.discard(threading.current_thread())

        thread = threading.Thread(target=lead, name="etagkit-revalidate", daemon=True)
        flights.background.add(thread)
        thread.start()

    # ---- network --------------------------------------------------------------------------------

    def _exchange(self, key: Any, flight: _Flight, ask: Ask, planned: Plan | None = None) -> httpx.Response:
        """Validate what is stored (or fetch), falling back to stale on errors; stream the body."""
        cache = self._cache
        exchange = cache.prepare(ask, planned=planned)
        try:
            response = _send(self._inner, ask.request, exchange.conditions)
            outcome = cache.on_response(exchange, response.status_code, response.headers)
            if outcome.retry:  # a 304 for a body no longer held: ask again, unconditionally
                _finish(response, ask.method)
                exchange = cache.prepare(ask, conditional=False)
                response = _send(self._inner, ask.request, ())
                outcome = cache.on_response(exchange, response.status_code, response.headers)
        except httpx.TransportError:
            stale = cache.on_error(exchange)
            if stale is None:
                raise
            self._publish(key, flight, stale, None)
            return response_of(stale)
        if outcome.answer is not None:
            _finish(response, ask.method)
            self._publish(key, flight, outcome.answer, None)
            return response_of(outcome.answer)
        response.extensions = {**response.extensions, EXTENSION: Source.NETWORK}
        if outcome.sink is None:
            self._publish(key, flight, PASS, None)
            return response
        stream = response.stream
        if isinstance(stream, httpx.ByteStream):  # a body already in memory (e.g. MockTransport)
            self._publish(key, flight, outcome.sink.complete(b"".join(stream)), None)
            return response
        if not isinstance(stream, httpx.SyncByteStream):
            raise TypeError("the inner transport returned a response without a sync stream")

        def done(answer: Answer | None) -> None:
            self._publish(key, flight, PASS if answer is None else answer, None)

        response.stream = SyncTee(stream, outcome.sink, done)
        return response


class ETagSyncClient(httpx.Client):
    """An ``httpx.Client`` whose every transport (default, mounts, proxies) goes through one cache.

    Built exactly as ``httpx.Client(**kwargs)`` would be, then each transport is wrapped in an
    :class:`ETagSyncTransport` sharing one store; ``store``, ``max_entries``, ``max_bytes``,
    ``heuristic`` and ``now`` configure the cache. The sync twin of :class:`~etagkit.client.ETagClient`.
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
        cache = make_cache(store, max_entries, max_bytes, heuristic, now)
        self._urls = UrlMemo()
        super().__init__(**kwargs)
        first = ETagSyncTransport.__new__(ETagSyncTransport)
        first._cache, first._flights = cache, _Flights()
        self._etag = wrap_client_transports(self, lambda inner: ETagSyncTransport._sharing(inner, first))

    def stats(self) -> ClientStats:
        """The cache's counters (see :class:`ClientStats`)."""
        return self._etag.stats()

    @property
    def etag_transport(self) -> ETagSyncTransport:
        """The caching transport of the default route."""
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

    def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        """httpx's ``send``, with the same fast path for answers from the store as ``ETagClient``."""
        found = fast_answer(self, request, kwargs)
        if found is None:
            sent: httpx.Response = super().send(request, **kwargs)
            return sent
        transport, plan = found
        response: httpx.Response = transport.serve(plan, request)
        response.default_encoding = self._default_encoding
        if not kwargs.get("stream", False):
            response.read()
        return response

    def refresh(self, url: httpx.URL | str, **kwargs: Any) -> httpx.Response:
        """GET ``url`` from the origin now (revalidating what is stored), not joining an older request."""
        extensions = dict(kwargs.pop("extensions", None) or {})
        extensions[REFRESH] = "new"
        return self.get(url, extensions=extensions, **kwargs)

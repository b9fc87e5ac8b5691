"""The client's cache: RFC 9111 (private cache) applied to httpx requests, for both faces.

:class:`Cache` holds the store, the generations (latest wins) and the counters, and turns each step of
an exchange into a decision: :meth:`Cache.plan` (answer from the store, pass through, or go to the
network), :meth:`Cache.prepare` (which stored response to validate, with which conditions),
:meth:`Cache.on_response` (freshen, serve stale, or pass the body through and store it once it is
complete). The rules themselves are the pure functions of :mod:`etagkit.core.freshness`; the sync and
async transports only perform the I/O and the single-flight waiting. Every method is thread-safe.
"""

from __future__ import annotations

import enum
import itertools
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import httpx

from ..core.freshness import (
    STALE_IF_ERROR_STATUSES,
    Freshness,
    RequestDirectives,
    Use,
    Validators,
    answers_condition,
    conditional_headers,
    decide,
    describe,
    freshen_headers,
    freshens,
    freshness_of,
    headers_to_store,
    invalidation_targets,
    is_storable,
    usable_on_error,
    vary_selection,
)
from ..core.policy import vary_names
from ..core.preconditions import not_modified_headers
from ._generations import Marks
from ._model import (
    NO_STORE,
    REFRESH,
    REVALIDATE,
    Answer,
    ClientStats,
    Pairs,
    Source,
    Stored,
    StoreKey,
    wire_headers,
)
from ._store import ResponseStore

__all__ = ["PLAN", "Ask", "Cache", "Exchange", "Outcome", "Plan", "Sink", "Step"]

PLAN = "etagkit.plan"  # request extension: the plan the client's fast path already made
FlightKey = tuple[str, str, str, Hashable]  # method, url, auth scope, Vary selection or all headers
# The caller validates by itself with these: never answered from the store except INM / IMS (§4.3.2).
_CALLER_CONDITIONS = frozenset(
    {"if-none-match", "if-modified-since", "if-match", "if-unmodified-since", "if-range", "range"}
)
_ANSWERABLE_CONDITIONS = frozenset({"if-none-match", "if-modified-since"})


@dataclass(slots=True)
class Ask:
    """A GET or HEAD as the cache sees it: the request and the plain values read from it once."""

    request: httpx.Request
    method: str
    url: str
    scope: str  # the Authorization value: responses are never shared across credentials
    headers: Pairs  # lower-case names
    directives: RequestDirectives
    refresh: str | None  # "new" / "cancel": an own request (REFRESH extension)
    no_store: bool  # NO_STORE extension

    @classmethod
    def of(cls, request: httpx.Request, headers: Pairs) -> Ask:
        scope = next((value for name, value in headers if name == "authorization"), "")
        directives = RequestDirectives.parse(headers)
        extensions = request.extensions
        refresh = extensions.get(REFRESH)
        if extensions.get(REVALIDATE) and not directives.no_cache:
            directives = RequestDirectives(
                no_cache=True, no_store=directives.no_store, stale_if_error=directives.stale_if_error
            )
        return cls(
            request,
            request.method,
            str(request.url),
            scope,
            headers,
            directives,
            None if refresh is None else str(refresh),
            bool(extensions.get(NO_STORE)),
        )


class Step(enum.Enum):
    ANSWER = "answer"  # answer from the store (``Plan.answer``), nothing sent
    PASS = "pass"  # send the request as it is; store nothing
    FETCH = "fetch"  # one (shared) network request for ``Plan.key``
    UNSAFE = "unsafe"  # send it; a success invalidates (§4.4)


@dataclass(slots=True)
class Plan:
    step: Step
    ask: Ask | None = None
    answer: Answer | None = None
    key: FlightKey | None = None
    own: bool = False  # do not join a request already in flight
    background: bool = False  # stale-while-revalidate: revalidate ``key`` in the background
    stored: Stored | None = None  # what the store held when planning (a leader validates it)


@dataclass(slots=True)
class Exchange:
    """One network request of a flight: what it validates, its conditions, generation and start."""

    ask: Ask
    stored: Stored | None
    conditions: Pairs
    generation: int
    request_time: float


@dataclass(slots=True)
class Outcome:
    """What to do with a network response: answer with ``answer`` (and close the network response),
    ``retry`` without conditions, or pass its body through, into ``sink`` when it may be stored."""

    answer: Answer | None = None
    retry: bool = False
    sink: Sink | None = None


@dataclass(slots=True)
class _Counters:
    sent: int = 0
    ok: int = 0
    not_modified: int = 0
    fresh: int = 0
    stale: int = 0
    saved: int = 0


class Cache:
    """The shared state and decisions of one client cache (see the module docstring)."""

    def __init__(self, store: ResponseStore, *, heuristic: float | None, now: Callable[[], float]) -> None:
        self.store = store
        self.now = now
        self._heuristic = heuristic
        self._lock = threading.RLock()
        # Latest wins: every network request takes a generation; per store key the newest generation
        # that completed, per URL the generation of its last invalidation. A response may update the
        # store only if it is newer than both (and than the floor that clear() raises).
        self._generation = itertools.count(1)
        self._marks = Marks(4 * 4096)
        self._counters = _Counters()

    # ---- reading the store ----------------------------------------------------------------------

    def _lookup(self, ask: Ask) -> Stored | None:
        """The stored GET response whose Vary selection matches the request (the newest if several)."""
        best: Stored | None = None
        for stored in self.store.variants(ask.url):
            if (
                stored.scope == ask.scope
                and (not stored.vary or vary_selection(stored.vary, ask.headers) == stored.selection)
                and (best is None or stored.freshness.response_time > best.freshness.response_time)
            ):
                best = stored
        return best

    def plan(self, request: httpx.Request) -> Plan:
        """What to do with a request (RFC 9111 §4): every decision made before anything is sent."""
        planned = request.extensions.pop(PLAN, None)
        if isinstance(planned, Plan) and planned.ask is not None and planned.ask.request is request:
            return planned
        method = request.method
        if method not in ("GET", "HEAD"):
            return Plan(Step.UNSAFE)
        headers = tuple(request.headers.multi_items())  # names come lower-cased
        ask = Ask.of(request, headers)
        names = {name for name, _ in headers if name in _CALLER_CONDITIONS}
        with self._lock:
            stored = self._lookup(ask)
            if names:
                return self._caller_conditions(ask, stored, names)
            if stored is None:
                selection: Hashable = tuple(sorted(headers))  # Vary unknown: identical headers only
            else:
                selection = stored.selection
            key: FlightKey = (method, ask.url, ask.scope, selection)
            if stored is not None and not ask.refresh:
                now = self.now()
                use = decide(stored.freshness, ask.directives, now)
                head = method == "HEAD"
                if use is Use.FRESH:
                    return Plan(Step.ANSWER, ask, stored.answer(Source.CACHE, now, head=head))
                if use is Use.STALE:
                    return Plan(Step.ANSWER, ask, stored.answer(Source.STALE, now, head=head))
                if use is Use.STALE_WHILE_REVALIDATE:
                    answer = stored.answer(Source.STALE, now, head=head)
                    return Plan(Step.ANSWER, ask, answer, key=key, background=not head)
        if ask.directives.only_if_cached:  # RFC 9111 §5.2.1.7
            return Plan(Step.ANSWER, ask, Answer(504, httpx.Headers(), b"", Source.CACHE))
        own = ask.directives.no_cache or bool(ask.refresh)
        return Plan(Step.FETCH, ask, key=key, own=own, stored=stored if method == "GET" else None)

    def _caller_conditions(self, ask: Ask, stored: Stored | None, names: set[str]) -> Plan:
        """A request that carries its own conditions (§4.3.2): If-None-Match / If-Modified-Since are
        answered from a stored response the cache may use without validation (a 304, or the whole
        stored response when the condition is true); anything else goes to the origin untouched."""
        if stored is None or not names <= _ANSWERABLE_CONDITIONS:
            return Plan(Step.PASS, ask)
        now = self.now()
        if decide(stored.freshness, ask.directives, now) not in (Use.FRESH, Use.STALE):
            return Plan(Step.PASS, ask)
        head = ask.method == "HEAD"
        answer = stored.answer(Source.CACHE, now, head=head)
        if not answers_condition(stored.validators, ask.headers):
            return Plan(Step.ANSWER, ask, answer)
        kept = not_modified_headers(answer.headers.multi_items())
        return Plan(Step.ANSWER, ask, Answer(304, wire_headers(kept), b"", Source.CACHE))

    def served(self, answer: Answer) -> None:
        """Count an answer given from the store without sending anything."""
        with self._lock:
            c = self._counters
            if answer.source is Source.CACHE:
                c.fresh += 1
            elif answer.source is Source.STALE:
                c.stale += 1
            c.saved += len(answer.body)

    # ---- one network exchange -------------------------------------------------------------------

    def prepare(self, ask: Ask, *, conditional: bool = True, planned: Plan | None = None) -> Exchange:
        """The exchange a flight's leader is about to send: the stored response it validates (the
        one ``planned`` found, when the leader sends right after planning, else looked up now) and
        the conditions from its validators (§4.3.1)."""
        with self._lock:
            if planned is not None and planned.stored is not None:
                stored: Stored | None = planned.stored
            else:
                stored = self._lookup(ask) if conditional and ask.method == "GET" else None
            generation = next(self._generation)
        conditions = conditional_headers(stored.validators) if stored is not None else ()
        return Exchange(ask, stored, conditions, generation, self.now())

    def on_error(self, exchange: Exchange) -> Answer | None:
        """The stale response that may stand in for a network error (RFC 5861 §4), if any."""
        stored = exchange.stored
        now = self.now()
        if stored is not None and usable_on_error(stored.freshness, exchange.ask.directives, now):
            with self._lock:
                self._counters.stale += 1
            return stored.answer(Source.STALE, now)
        return None

    def on_response(self, exchange: Exchange, status: int, wire: httpx.Headers) -> Outcome:
        """Decide what a network response's head means for the caller and the store."""
        response_time = self.now()
        ask, stored = exchange.ask, exchange.stored
        with self._lock:
            c = self._counters
            c.sent += 1
            if status == 304:
                c.not_modified += 1
                if not exchange.conditions:
                    return Outcome()  # not ours to interpret: pass it through
                validators = Validators.of_values(wire.get("etag"), wire.get("last-modified"))
                if stored is not None and freshens(stored.validators, validators):
                    headers = tuple(wire.multi_items())
                    old = stored.validators  # the stored ones stay unless the 304 brings others
                    same = validators.etag in (None, old.etag) and validators.last_modified in (
                        None,
                        old.last_modified,
                    )
                    return Outcome(answer=self._freshen(exchange, headers, response_time, same))
                return Outcome(retry=True)  # the 304 is about a response not held: ask again
            if status == 200:
                c.ok += 1
            if (
                stored is not None
                and status in STALE_IF_ERROR_STATUSES
                and usable_on_error(stored.freshness, ask.directives, response_time)
            ):
                c.stale += 1
                return Outcome(answer=stored.answer(Source.STALE, response_time))
            if ask.method != "GET":
                return Outcome()
            headers = tuple(wire.multi_items())
            names = vary_names(wire.get("vary"))
            key: StoreKey = (ask.url, ask.scope, vary_selection(names or (), ask.headers))
            if not self._may_update(key, exchange.generation):
                return Outcome()  # a newer response for this key completed, or the URL was invalidated
            storable = (
                names is not None
                and not ask.no_store
                and is_storable("GET", status, headers, ask.directives)
                and _declared_length(wire) <= self.store.max_bytes
            )
            if not storable:
                self._completed(key, exchange.generation)
                if status not in STALE_IF_ERROR_STATUSES and not ask.no_store and not ask.directives.no_store:
                    self.store.drop(key)  # e.g. now no-store: the old body must not be served again
                return Outcome()
        freshness, validators = describe(
            status, headers, exchange.request_time, response_time, heuristic=self._heuristic
        )
        record = (key, status, names or (), headers_to_store(headers), freshness, validators)
        return Outcome(sink=Sink(self, exchange.generation, record, wire))

    def _freshen(self, exchange: Exchange, headers: Pairs, response_time: float, same: bool) -> Answer:
        """Freshen the stored response the condition was sent from (RFC 9111 §4.3.4, §3.2);
        ``same``: the 304 brings no other validator, so the stored ones stay."""
        stored = exchange.stored
        assert stored is not None
        kept = freshen_headers(stored.headers, headers)
        times = (exchange.request_time, response_time)
        if same:
            validators = stored.validators
            freshness = freshness_of(stored.status, kept, *times, heuristic=self._heuristic)
        else:
            freshness, validators = describe(stored.status, kept, *times, heuristic=self._heuristic)
        fresh = Stored.make(
            stored.key,
            stored.status,
            stored.vary,
            kept,
            stored.body,
            freshness,
            validators,
            _patched(stored, kept),
        )
        if self._may_update(stored.key, exchange.generation):
            self._completed(stored.key, exchange.generation)
            self.store.put(fresh)
        self._counters.saved += len(stored.body)
        answer = fresh.answer(Source.REVALIDATED, response_time)
        # The caller also gets this 304's own cookies (they come from the network, not the cache).
        cookies = [(n, v) for n, v in headers if n == "set-cookie"]
        if not cookies:
            return answer
        with_cookies = wire_headers([*answer.headers.multi_items(), *cookies])
        return Answer(answer.status, with_cookies, answer.body, answer.source)

    def stored_body(self, sink: Sink, body: bytes) -> Answer:
        """A streamed body completed: store it if still allowed (latest wins); the answer for the
        flight's followers."""
        key, status, vary, headers, freshness, validators = sink.record
        with self._lock:
            if self._may_update(key, sink.generation):
                self._completed(key, sink.generation)
                self.store.put(Stored.make(key, status, vary, headers, body, freshness, validators))
        return Answer(status, sink.wire, body, Source.NETWORK)

    def on_unsafe(self, request: httpx.Request, status: int, wire: httpx.Headers) -> None:
        """An unsafe method's response: a success invalidates its target and same-origin
        Location / Content-Location (RFC 9111 §4.4)."""
        with self._lock:
            self._counters.sent += 1
        targets = invalidation_targets(request.method, status, str(request.url), tuple(wire.multi_items()))
        if targets:
            self.invalidate(*targets)

    def sent(self) -> None:
        """Count a request passed through untouched."""
        with self._lock:
            self._counters.sent += 1

    # ---- invalidation, generations --------------------------------------------------------------

    def invalidate(self, *urls: str) -> None:
        """Forget every stored response for these URLs; responses in flight will not store theirs."""
        with self._lock:
            for raw in urls:
                try:
                    url = str(httpx.URL(raw))
                except (httpx.InvalidURL, ValueError, TypeError):
                    continue
                self.store.drop_url(url)
                self._marks[("invalidated", url)] = next(self._generation)

    def clear(self) -> None:
        """Forget everything stored; no response already in flight may store itself afterwards."""
        with self._lock:
            self.store.clear()
            self._marks.clear()
            self._marks.floor = next(self._generation)

    def _may_update(self, key: StoreKey, generation: int) -> bool:
        marks = self._marks
        return generation > marks.mark(("done", key)) and generation > marks.mark(("invalidated", key[0]))

    def _completed(self, key: StoreKey, generation: int) -> None:
        self._marks[("done", key)] = max(generation, self._marks.mark(("done", key)))

    def stats(self) -> ClientStats:
        with self._lock:
            c = self._counters
            entries, size = self.store.usage()
        return ClientStats(
            requests_sent=c.sent,
            responses_200=c.ok,
            responses_304=c.not_modified,
            fresh_hits=c.fresh,
            stale_hits=c.stale,
            bytes_not_downloaded=c.saved,
            entries=entries,
            stored_bytes=size,
            ratio_304_to_200=c.not_modified / c.ok if c.ok else 0.0,
        )


def _patched(stored: Stored, kept: Pairs) -> httpx.Headers | None:
    """``kept`` in httpx's form, made by patching the stored record's (cheaper than building it
    anew), or None when a field occurs more than once."""
    old = {name.lower(): value for name, value in stored.headers}
    new: dict[str, str] = {}
    for name, value in kept:
        lname = name.lower()
        if lname in new:
            return None
        new[lname] = value
    if len(old) != len(stored.headers) or old.keys() != new.keys():
        return None
    wire = stored.wire.copy()
    try:
        for name, value in new.items():
            if name != "age" and old[name] != value:
                wire[name] = value
    except UnicodeEncodeError:
        return None  # built anew by wire_headers
    return wire


def _declared_length(wire: httpx.Headers) -> int:
    value = wire.get("content-length")
    if value is None:
        return 0
    try:
        return int(value.split(",", 1)[0])
    except ValueError:
        return 0


Record = tuple[StoreKey, int, tuple[str, ...], Pairs, Freshness, Validators]


class Sink:
    """Where a streamed body goes while it passes through: kept up to the store's byte bound, stored
    only when it completed (:meth:`complete`), dropped when it did not or grew too large."""

    __slots__ = ("cache", "generation", "limit", "record", "wire")

    def __init__(self, cache: Cache, generation: int, record: Record, wire: httpx.Headers) -> None:
        self.cache = cache
        self.generation = generation
        self.record = record
        self.wire = wire
        self.limit = cache.store.max_bytes

    def complete(self, body: bytes) -> Answer:
        return self.cache.stored_body(self, body)

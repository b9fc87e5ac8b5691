"""TagCache: cache-aside with tags, race-safe O(1) invalidation, single-flight and freshness windows.

An entry moves through windows measured from its write: fresh (``ttl``), then stale-while-revalidate
(``stale_ttl``: served stale while one background refresh runs), then stale-if-error (``error_ttl``:
refreshed in the foreground, the stale value served only if the refresh raises), then gone.
A fresh entry may be refreshed early by the XFetch rule: with probability ``exp(-Δt/(β·δ))``, Δt the
time left, δ the measured compute time. Soft invalidation makes an entry stale at once (served
while exactly one refresh runs); hard invalidation makes it unreadable everywhere at once.

``aget_or_set`` (and ``@cached`` on an ``async def``) is the async face of the same rules: computes
are awaited, store calls run in a worker thread so the event loop never waits on the network.

Reads and writes never fail because of the store: when it is unreachable
(``StoreUnavailableError``) reads are misses and writes are skipped, each counted in
``stats()["store_errors"]`` and logged at most once a minute. Invalidations are different: after
``invalidate_tags`` returns, no process sharing the store serves an entry it invalidated; when that
cannot be made sure, it raises ``StoreUnavailableError`` (so a caller can refuse the write, e.g.
503 + Retry-After) and the store pays a global invalidation as soon as it answers again. A value a
remote store cannot encode (``SerializationError``: msgpack/JSON without a ``pickle_key``) is
returned uncached, logged once per key and type, and counted in ``stats()["serialization_errors"]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ParamSpec, Protocol, TypeVar

from .._config import number
from .._errors import SerializationError, StoreUnavailableError
from ._cached import CachedFunction
from ._keys import KeySpec, TagSpec, normalize_tags
from ._lease import Leases
from ._singleflight import SingleFlight
from ._store import Entry, Hit, SetResult, Store
from ._tagcache_async import AsyncFace
from ._windows import Plan as _Plan
from ._windows import Windows as _Windows
from .memory import MemoryStore

__all__ = ["CachedFunction", "TagCache", "Ticket"]

log = logging.getLogger("etagkit.cache")

T = TypeVar("T")
P = ParamSpec("P")
R = TypeVar("R")

_SHARED_ATTEMPTS = 3  # flights joined before a waiter computes on its own (see _load)
_ERROR_LOG_INTERVAL = 60.0  # seconds between two store-error log lines
_COUNTERS = (
    "hits",
    "misses",
    "stale_served",
    "refreshes",
    "refresh_errors",
    "invalidations",
    "store_errors",
    "serialization_errors",
)
_LOGGED_UNSERIALIZABLE = 1024  # (key, type) pairs remembered so each is logged once; bounded memory
_EVENTS = {"hits": "cache_hit", "misses": "cache_miss", "stale_served": "stale_serve", "refreshes": "refresh"}


class EventSink(Protocol):
    """What ``metrics=`` must offer (``etagkit.metrics.Metrics`` does)."""

    def event(self, name: str, route: str | None = None) -> None: ...


@dataclass(frozen=True, slots=True)
class Ticket:
    """Taken by :meth:`TagCache.begin` before a compute: the store's clock then, and the timer then.

    ``started`` is None when the store could not be reached; a write with that ticket is skipped.
    """

    started: int | None
    at: float
    tags: tuple[str, ...] = ()


def _spawn_thread(job: Callable[[], None]) -> None:
    threading.Thread(target=job, name="etagkit-refresh", daemon=True).start()


class TagCache(AsyncFace):
    """The cache-aside front over a :class:`~etagkit.cache._store.Store` (a MemoryStore by default).

    ``timer`` is the wall clock (``time.time``) by default, not a monotonic clock: entries' windows
    are absolute times shared through the store by several processes (Redis), and monotonic clocks
    are per process. Tests inject a fake timer. ``random`` drives XFetch early refresh and
    ``spawn`` starts background refreshes (a daemon thread by default); both are injectable so
    tests are deterministic. ``beta`` > 1 refreshes earlier, 0 disables early refresh.
    """

    def __init__(
        self,
        store: Store | None = None,
        *,
        default_ttl: float = 300.0,
        timer: Callable[[], float] = time.time,
        beta: float = 1.0,
        metrics: EventSink | None = None,
        random: Callable[[], float] = random.random,
        spawn: Callable[[Callable[[], None]], object] = _spawn_thread,
        lease: float | None = 10.0,
    ) -> None:
        self.default_ttl = number("default_ttl", default_ttl)
        self._beta = number("beta", beta)
        self.store: Store = store if store is not None else MemoryStore(timer=timer)
        self._timer = timer
        self._metrics = metrics
        self._random = random
        self._spawn = spawn
        self._flights = SingleFlight()
        self._aflights: dict[tuple[asyncio.AbstractEventLoop, str], asyncio.Future[Any]] = {}
        self._tasks: set[asyncio.Task[None]] = set()  # background refreshes of the async face
        self._store_inline = type(self.store) is MemoryStore  # never waits on I/O (a subclass might)
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(_COUNTERS, 0)
        self._unserializable: set[tuple[str, str]] = set()  # (key, type name) already logged
        # distributed single-flight (``_lease.py``): on when the store offers leases (RedisStore)
        lease = None if lease is None else number("lease", lease, positive=True)
        self._lease = Leases(self.store, lease) if lease and Leases.offered_by(self.store) else None
        self._errors_logged_at: float | None = None  # rate-limited store-error logging
        self._errors_unlogged = 0

    # -- cache-aside ------------------------------------------------------------------------------

    def get_or_set(
        self,
        key: str,
        compute: Callable[[], T],
        *,
        ttl: float | None = None,
        tags: Iterable[str] | str = (),
        stale_ttl: float = 0.0,
        error_ttl: float = 0.0,
    ) -> T:
        """The cached value of ``key``, or ``compute()`` stored under ``tags`` (one compute per process).

        ``None`` and falsy values are cached like any other. An exception from ``compute`` reaches
        every caller waiting for it and is not cached.
        """
        now = self._timer()
        try:
            hit = self.store.get(key, now)
        except StoreUnavailableError:
            self._store_error("get")
            hit = None
        if hit is None:
            self._count("misses")
            return self._load(key, compute, tags, self._windows(ttl, stale_ttl, error_ttl))
        plan = self._plan(hit, now)
        if plan is _Plan.FRESH:
            return hit.entry.value  # type: ignore[no-any-return]
        windows = self._windows(ttl, stale_ttl, error_ttl)
        if plan is not _Plan.REFRESH:  # fresh but refreshed early, or stale-while-revalidate
            self._refresh_later(key, compute, tags, windows)
            return hit.entry.value  # type: ignore[no-any-return]
        try:
            return self._load(key, compute, tags, windows)
        except Exception:
            return self._serve_stale_after_error(key, hit)  # type: ignore[no-any-return]

    def _plan(self, hit: Hit, now: float) -> _Plan:
        """Which window a found entry is in (and count it): serve, serve and refresh, or refresh."""
        entry = hit.entry
        if now < entry.fresh_until and not hit.soft_invalidated:
            with self._lock:  # inlined _count: this is the hot path
                self._counts["hits"] += 1
            if self._metrics is not None:
                self._metrics.event("cache_hit")
            remaining, scale = entry.fresh_until - now, self._beta * entry.delta
            if remaining < 40 * scale and self._refresh_early(remaining, scale):  # exp(-40): never
                return _Plan.EARLY
            return _Plan.FRESH
        if now < entry.stale_until:  # stale-while-revalidate (or soft-invalidated)
            self._count("stale_served")
            return _Plan.STALE
        self._count("refreshes")  # stale-if-error window: refresh now, fall back on the stale value
        return _Plan.REFRESH

    def _serve_stale_after_error(self, key: str, hit: Hit) -> Any:
        log.warning("refresh of %r failed; serving the stale value", key, exc_info=True)
        self._count("refresh_errors")
        self._count("stale_served")
        return hit.entry.value

    def cached(
        self,
        ttl: float | None = None,
        *,
        tags: TagSpec = (),
        key: KeySpec = None,
        stale_ttl: float = 0.0,
        error_ttl: float = 0.0,
        ignore: Iterable[str] = (),
    ) -> Callable[[Callable[P, R]], CachedFunction[P, R]]:
        """Decorator: cache a function's result per call arguments.

        ``tags``: strings, format templates over the call's arguments (``"book:{book_id}"``,
        ``"author:{book.author_id}"``), or a callable taking the call's arguments. ``key``: a
        template, a callable, or None for ``<module>.<qualname>:<hash of the arguments>``, stable
        across processes. ``ignore`` leaves arguments out of the default key (e.g. ``"self"`` when
        the result does not depend on the instance; otherwise give the class ``__cache_key__``).
        """
        windows = self._windows(ttl, stale_ttl, error_ttl)  # validate now, at decoration time

        def decorate(fn: Callable[P, R]) -> CachedFunction[P, R]:
            return CachedFunction(self, fn, windows=windows, tags=tags, key=key, ignore=ignore)

        return decorate

    # -- lower level: stored validators -----------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        """The value if present, valid and fresh (not soft-invalidated), else ``default``. One read."""
        now = self._timer()
        try:  # _read, inlined: this is the hot path
            hit = self.store.get(key, now)
        except StoreUnavailableError:
            self._store_error("get")
            hit = None
        if hit is None or hit.soft_invalidated or not now < hit.entry.fresh_until:
            self._count("misses")
            return default
        with self._lock:  # inlined _count: this is the hot path
            self._counts["hits"] += 1
        if self._metrics is not None:
            self._metrics.event("cache_hit")
        return hit.entry.value

    def begin(self, tags: Iterable[str] | str = ()) -> Ticket:
        """Call before a compute whose result :meth:`set` will store; ``tags`` known up front."""
        tags = normalize_tags(tags)
        at = self._timer()
        try:
            started: int | None = self.store.begin(tags)
        except StoreUnavailableError:
            self._store_error("begin")
            started = None
        return Ticket(started, at, tags)

    def set(
        self,
        key: str,
        value: Any,
        *,
        ticket: Ticket | None = None,
        tags: Iterable[str] | str = (),
        ttl: float | None = None,
        stale_ttl: float = 0.0,
        error_ttl: float = 0.0,
    ) -> bool:
        """Store ``value`` unless one of its tags (``ticket``'s plus ``tags``, which may be learned
        after the compute) was invalidated since ``ticket`` was taken; False when refused or skipped.
        Without a ticket the compute is taken to begin now."""
        windows = self._windows(ttl, stale_ttl, error_ttl)
        if ticket is None:
            ticket = self.begin(tags)
        return self._write(key, value, ticket, normalize_tags(tags), windows) is SetResult.STORED

    # -- invalidation and housekeeping ------------------------------------------------------------

    def invalidate_tags(self, *tags: str, soft: bool = False) -> None:
        """Hard: every entry carrying a tag is gone for every later read, in every process sharing
        the store. Soft: such entries are served stale while exactly one refresh runs. O(1) per tag.

        Guarantee: when this returns, the invalidation is recorded in the store, and every
        two-level reader of the namespace has applied it or stopped using its local layer. When it
        raises ``StoreUnavailableError``, that could not be made sure (it may still land): do not
        acknowledge a write whose invalidation raised. The store then owes a global invalidation,
        paid in the background as soon as it answers (``healthy`` is False until then)."""
        names = normalize_tags(tags)
        if not names:
            return
        with self._lock:
            self._counts["invalidations"] += len(names)
        try:
            self.store.invalidate(names, soft=soft)
        except StoreUnavailableError:
            self._store_error("invalidate")
            raise

    @property
    def healthy(self) -> bool:
        """False while the store's breaker is open or a global invalidation is owed: an
        invalidation would probably raise now (a quick check before a write; it may still raise)."""
        return bool(getattr(self.store, "healthy", True))

    def delete(self, key: str) -> None:
        """Remove one entry (a compute already running for it may still store its result).
        Raises ``StoreUnavailableError`` if the store could not be reached."""
        try:
            self.store.delete(key)
        except StoreUnavailableError:
            self._store_error("delete")
            raise

    def clear(self) -> None:
        """Invalidate every entry of the store; raises as :meth:`invalidate_tags` does."""
        try:
            self.store.clear()
        except StoreUnavailableError:
            self._store_error("clear")
            raise

    def stats(self) -> dict[str, Any]:
        """Counters: hits, misses, stale_served, refreshes, refresh_errors, invalidations,
        store_errors, serialization_errors, plus what the store reports (evictions; the breaker state
        of a Redis store)."""
        with self._lock:
            counts: dict[str, Any] = dict(self._counts)
        counts.setdefault("evictions", 0)
        store_stats = getattr(self.store, "stats", None)
        if callable(store_stats):
            with contextlib.suppress(StoreUnavailableError):
                counts.update(store_stats())
        return counts

    # -- internals --------------------------------------------------------------------------------

    def _windows(self, ttl: float | None, stale_ttl: float, error_ttl: float) -> _Windows:
        return _Windows(
            self.default_ttl if ttl is None else number("ttl", ttl),
            number("stale_ttl", stale_ttl),
            number("error_ttl", error_ttl),
        )

    def _vouched(self, key: str, hit: Hit) -> tuple[Any, bool]:
        """Another process's value, read while this flight was open: callers that joined after that
        read must not take it on its word (an invalidation may have come in between). Read again
        now that the flight is closed: still valid, it vouches for every waiter (as the leader's
        compare-and-set write does); otherwise the waiters compute anew ("refused")."""
        again = self._read_now(key)
        if again is not None and not again.soft_invalidated and self._timer() < again.entry.fresh_until:
            return again.entry.value, False
        return hit.entry.value, True

    def _read_now(self, key: str) -> Hit | None:
        return self._read(key, self._timer())

    def _read(self, key: str, now: float) -> Hit | None:
        try:
            return self.store.get(key, now)
        except StoreUnavailableError:
            self._store_error("get")
            return None

    def _write(
        self, key: str, value: Any, ticket: Ticket, tags: tuple[str, ...], w: _Windows
    ) -> SetResult | None:
        """The store's answer (REFUSED: a tag was invalidated during the compute); None: not attempted
        or failed (no ticket, nothing to keep, store unreachable, value not encodable)."""
        if ticket.started is None:
            return None
        now = self._timer()
        fresh_until = now + w.ttl
        stale_until = fresh_until + w.stale_ttl
        error_until = stale_until + w.error_ttl
        if not now < error_until:
            return None  # nothing to keep (ttl=0 and no windows)
        all_tags = ticket.tags + tuple(t for t in tags if t not in ticket.tags)
        entry = Entry(
            value, all_tags, ticket.started, fresh_until, stale_until, error_until, max(now - ticket.at, 0.0)
        )
        try:
            return self.store.set(key, entry, now)
        except StoreUnavailableError:
            self._store_error("set")
        except SerializationError as exc:
            self._serialization_error(key, value, exc)
        return None

    def _compute_and_store(
        self,
        key: str,
        compute: Callable[[], Any],
        tags: Iterable[str] | str,
        w: _Windows,
        close: Callable[[], None] = lambda: None,
    ) -> tuple[Any, bool]:
        """Begin, compute, close the flight, CAS-write: the value, and whether the store refused it.

        ``close()`` runs before the write: callers arriving after it start a new flight, because
        the write's compare-and-set vouches only for the callers that were already waiting.
        With leases, another process's compute of ``key`` is waited for first (``_lease.py``).
        """
        lease = self._lease
        token = None
        if lease is not None:
            hit, token = lease.lead_or_wait(key, functools.partial(self._read_now, key), self._timer)
            if hit is not None:
                close()
                return self._vouched(key, hit)
        try:
            ticket = self.begin(tags)
            value = compute()
            close()
            return value, self._write(key, value, ticket, (), w) is SetResult.REFUSED
        finally:
            if token is not None and lease is not None:
                lease.release(key, token)

    def _load(self, key: str, compute: Callable[[], T], tags: Iterable[str] | str, w: _Windows) -> T:
        """Compute through single-flight.

        A waiter may have arrived after an invalidation that the leader's compute predates. It
        joined before the leader's write (the flight closes before it), so that write is refused
        (CAS), and the waiter must not take the value: it joins a new flight (whose compute begins
        after it arrived), and after a few refused flights computes on its own. The leader itself
        may return its value: its call overlapped the invalidation.
        """
        for _ in range(_SHARED_ATTEMPTS):
            (value, refused), leader = self._flights.do(
                key, lambda close: self._compute_and_store(key, compute, tags, w, close)
            )
            if leader or not refused:
                return value  # type: ignore[no-any-return]
        return self._compute_and_store(key, compute, tags, w)[0]  # type: ignore[no-any-return]

    def _refresh_early(self, remaining: float, scale: float) -> bool:
        """XFetch: refresh with probability exp(-remaining / scale), scale = beta * delta."""
        return self._random() < math.exp(-remaining / scale)

    def _refresh_later(
        self, key: str, compute: Callable[[], Any], tags: Iterable[str] | str, w: _Windows
    ) -> None:
        """Start one background refresh of ``key`` unless one (or a load) is already in flight."""
        call = self._flights.claim(key)
        if call is None:
            return
        self._count("refreshes")

        def job() -> None:
            try:
                self._flights.run(
                    key, call, lambda close: self._compute_and_store(key, compute, tags, w, close)
                )
            except Exception:
                self._count("refresh_errors")
                log.warning("background refresh of %r failed; the stale value stays", key, exc_info=True)

        try:
            self._spawn(job)
        except Exception:  # could not start a thread: refresh now rather than leave waiters hanging
            job()

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1
        if self._metrics is not None and name in _EVENTS:
            self._metrics.event(_EVENTS[name])

    def _serialization_error(self, key: str, value: Any, exc: SerializationError) -> None:
        """Count it; log it once per (key, type): the same call would otherwise log at every miss."""
        seen = (key, type(value).__qualname__)
        with self._lock:
            self._counts["serialization_errors"] += 1
            first = seen not in self._unserializable
            if first:
                if len(self._unserializable) >= _LOGGED_UNSERIALIZABLE:
                    self._unserializable.clear()  # bounded: a pair may then be logged once more
                self._unserializable.add(seen)
        if first:
            log.warning(
                "cache key %r: the store cannot encode a %s (%s): returned uncached", key, seen[1], exc
            )

    def _store_error(self, operation: str) -> None:
        """Count it; log the first one, then at most one summary line a minute (issue 13: not a line
        per call while the breaker is open; the breaker logs its own state changes)."""
        self._count("store_errors")
        if self._metrics is not None:
            self._metrics.event("store_error")
        now = self._timer()
        with self._lock:
            last = self._errors_logged_at
            if last is not None and now - last < _ERROR_LOG_INTERVAL:
                self._errors_unlogged += 1
                return
            self._errors_logged_at, unlogged, self._errors_unlogged = now, self._errors_unlogged, 0
        if last is None:
            log.warning("cache store unavailable during %s; carrying on without it", operation)
        else:
            log.warning(
                "cache store unavailable during %s; %d more store errors since the last such line",
                operation,
                unlogged,
            )

"""Stored validators over a cache: the one piece of the request flow that performs cache I/O, and only
through the ``TagCache`` it is given; it never raises because of that cache."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from ._badrecord import report_bad_record
from ._config import number
from ._errors import ConfigurationError, StoreUnavailableError
from .core.headers import HeaderSource
from .core.keys import variant_key
from .core.memo import MEMO_MAX_CHARS
from .core.records import StoredValidator

__all__ = ["CacheLike", "MetricsSink", "ValidatorStore", "check_cache"]


# -- the cache glue: calls only the cache object it is given -----------------------------------------


class CacheLike(Protocol):
    """The part of ``etagkit.cache.TagCache`` the adapters use."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def begin(self, tags: Iterable[str] = ()) -> Any: ...

    def set(
        self, key: str, value: Any, *, ticket: Any = None, tags: Iterable[str] = (), ttl: Any = None
    ) -> bool: ...

    def invalidate_tags(self, *tags: str, soft: bool = False) -> None: ...


def check_cache(cache: object) -> None:
    """ConfigurationError unless ``cache`` is None or offers what the adapters call (a ``TagCache``)."""
    if cache is not None and not all(
        callable(getattr(cache, m, None)) for m in ("get", "set", "begin", "invalidate_tags")
    ):
        raise ConfigurationError(f"cache must be an etagkit.cache.TagCache, not {cache!r}")


class MetricsSink(Protocol):
    """The part of ``etagkit.metrics.Metrics`` the adapters call."""

    def response(self, route: str, status: int, *, bytes_saved: int = 0, stored: bool = False) -> None: ...

    def event(self, name: str, route: str | None = None) -> None: ...


_MISSING = object()


class ValidatorStore:
    """Stored ETags over a ``TagCache``: look a representation's validator up, store it, drop it.

    Never raises because of the cache: a failing lookup is a miss and a failing write is skipped,
    each counted as a ``store_error`` / ``stateless_fallback`` event in ``metrics`` (the adapter then
    works statelessly: it runs the handler and hashes the body).

    Every 200 stores its validator, and most of those writes repeat the last one. A write is skipped
    when this object's last successful write for the key had the same value and tags, the store's
    logical clock has not moved since (no invalidation anywhere: the entry is still valid) and less
    than half its TTL has passed. A lookup that misses that entry (evicted, deleted) or finds another
    value forgets the skip, so the next write goes to the store again.
    """

    _MAX_WRITTEN = 4096  # keys remembered for skipping repeated writes (cleared when full)

    def __init__(
        self, cache: CacheLike, *, ttl: float | None = None, metrics: MetricsSink | None = None
    ) -> None:
        check_cache(cache)
        self.cache = cache
        self.ttl = None if ttl is None else number("ttl", ttl, positive=True)
        self.metrics = metrics
        # base key -> (key written, value, tags, clock, time) of the last successful write
        self._written: dict[str, tuple[str, Any, tuple[str, ...], Any, float]] = {}

    def _fault(self, route: str | None) -> None:
        if self.metrics is not None:
            self.metrics.event("store_error", route)
            self.metrics.event("stateless_fallback", route)

    def _get(self, key: str, route: str | None) -> Any:
        try:
            return self.cache.get(key, _MISSING)
        except Exception:  # a store that raises anyway must not break the request
            self._fault(route)
            return _MISSING

    def lookup_value(self, base_key: str, request_headers: HeaderSource, route: str | None = None) -> Any:
        """The stored value of the variant this request selects, or None. When the stored response
        varies, the base key holds an index ``{"vary-index": [field names]}`` (one more read)."""
        try:  # _get, inlined: the stored-304 hot path
            value = self.cache.get(base_key, _MISSING)
        except Exception:  # a store that raises anyway must not break the request
            self._fault(route)
            value = _MISSING
        if value.__class__ is not str and isinstance(value, Mapping) and "vary-index" in value:
            names = value["vary-index"]
            if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
                self._written.pop(base_key, None)  # a bad index: the next store rewrites it
                report_bad_record("vary-index", base_key)
                return None
            value = self._get(variant_key(base_key, request_headers, names), route)
        written = self._written.get(base_key)
        if written is not None and written[1] != value:  # not what we wrote: write it next time
            self._written.pop(base_key, None)
        return None if value is _MISSING else value

    def lookup(
        self, base_key: str, request_headers: HeaderSource, route: str | None = None
    ) -> StoredValidator | None:
        """The valid stored validator of the variant this request selects, or None (a record that
        does not decode is a miss, logged once a minute at most, and overwritten by the next store)."""
        value = self.lookup_value(base_key, request_headers, route)
        record = StoredValidator.from_value(value)
        if record is None and value is not None:
            report_bad_record("validator", base_key)
        return record

    def begin(self, tags: Iterable[str], route: str | None = None) -> Any:
        """A ticket read BEFORE the handler runs, so an invalidation during it wins (race safety)."""
        try:
            ticket = self.cache.begin(tags=tuple(tags))
        except Exception:
            self._fault(route)
            return None
        if getattr(ticket, "started", 0) is None:  # the store is unreachable: this request is stateless
            if self.metrics is not None:
                self.metrics.event("stateless_fallback", route)
            return None
        return ticket

    def store_value(
        self,
        base_key: str,
        request_headers: HeaderSource,
        value: Any,
        *,
        vary: Sequence[str],
        ticket: Any,
        tags: Iterable[str],
        ttl: float | None = None,
        route: str | None = None,
    ) -> bool:
        """Store ``value`` (and the Vary index when it varies) under ``ticket``; False if refused."""
        if ticket is None:
            return False
        tags = tuple(tags)
        ttl = self.ttl if ttl is None else ttl
        key = variant_key(base_key, request_headers, vary) if vary else base_key
        clock, at = getattr(ticket, "started", None), getattr(ticket, "at", None)
        lifetime = ttl if ttl is not None else getattr(self.cache, "default_ttl", None)
        written = self._written.get(base_key)
        if (
            written is not None
            and written[:4] == (key, value, tags, clock)
            and isinstance(at, float | int)
            and isinstance(lifetime, float | int)
            and 0 <= at - written[4] < lifetime / 2
        ):
            return True  # the same entry is in the store and still valid: nothing to write
        try:
            if vary:
                index = {"vary-index": list(vary)}
                self.cache.set(base_key, index, ticket=ticket, tags=tags, ttl=ttl)
            stored = bool(self.cache.set(key, value, ticket=ticket, tags=tags, ttl=ttl))
        except Exception:
            self._fault(route)
            return False
        small = not isinstance(value, str) or len(value) <= MEMO_MAX_CHARS  # remembered in bytes, bounded
        if stored and small and clock is not None and isinstance(at, float | int):
            if len(self._written) >= self._MAX_WRITTEN:
                self._written.clear()
            self._written[base_key] = (key, value, tags, clock, at)
        return stored

    def store(
        self,
        base_key: str,
        request_headers: HeaderSource,
        record: StoredValidator,
        *,
        ticket: Any,
        tags: Iterable[str],
        route: str | None = None,
    ) -> bool:
        """Store a validator record under ``ticket`` (taken before the handler ran)."""
        return self.store_value(
            base_key,
            request_headers,
            record.to_value(),
            vary=record.vary,
            ticket=ticket,
            tags=tags,
            route=route,
        )

    def invalidate(self, *tags: str, route: str | None = None, strict: bool = False) -> None:
        """Invalidate tags now (in every process sharing the store). A failure is counted and, with
        ``strict``, raised as StoreUnavailableError (the store pays what it owes in the background);
        otherwise swallowed (an invalidation after a write: the debt is paid all the same)."""
        if not tags:
            return
        try:
            self.cache.invalidate_tags(*tags)
        except Exception as exc:
            self._fault(route)
            if strict:
                raise StoreUnavailableError(f"invalidation not recorded: {exc}") from exc

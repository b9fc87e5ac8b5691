"""The one driver of every face: performs the operations an exchange's steps ask for.

An :class:`~etagkit.core.exchange.Exchange` decides; this reads the stored record it names, takes the
ticket, stores the record (and a cached response) under it, invalidates tags and counts the answer in
the metrics. Faces (WSGI, Flask, custom servers) only translate their request and response.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._badrecord import report_bad_record
from ._errors import StoreUnavailableError
from ._validators import MetricsSink, ValidatorStore
from .core.exchange import Answer, Count, Exchange, ReadBack, Run, Send
from .core.memo import MEMO_MAX_CHARS
from .core.records import CachedResponse, StoredValidator
from .core.reply import Validator

__all__ = ["UNREAD", "Driver"]

UNREAD: Any = object()  # Driver.start's record when nobody read the store for this request yet
_MAX_SIZES = 4096  # targets whose last 200 size is remembered (cleared when full)
_MAX_TARGET = MEMO_MAX_CHARS  # longer targets are not remembered


class Driver:
    """Stored validators (``store``, may be None) and ``metrics`` for one face's exchanges."""

    __slots__ = ("_sizes", "count_hits", "metrics", "store")

    def __init__(
        self, store: ValidatorStore | None, metrics: MetricsSink | None, *, count_hits: bool = True
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.count_hits = count_hits  # False when the TagCache already counts its hits in ``metrics``
        self._sizes: dict[str, int] = {}  # target -> body size of its last 200 (for cheap 304s)

    def start(
        self,
        exchange: Exchange,
        route: str,
        read_back: Callable[[], Validator | None],
        record: StoredValidator | None = UNREAD,
    ) -> Answer | Run:
        """Before the app: the stored record read (unless ``record`` was read for this request
        already, by the lane), the exchange's answer or its run, reading a conditional write's
        current validator back through ``read_back()`` when it asks."""
        store = self.store
        if record is UNREAD:
            record = None
            if store is not None:  # the stored record the exchange asks to read (None: a miss)
                key = exchange.lookup_key()
                if key is not None:
                    record = store.lookup(key, _headers(exchange), route)
        step = exchange.before(record)
        if isinstance(step, ReadBack):
            step = exchange.read_back(read_back())
        if isinstance(step, Run) and step.invalidate_first and self.store is not None:
            try:  # a write invalidates before it runs: unrecorded, it is refused, never acknowledged
                self.store.invalidate(*step.invalidate_first, route=route, strict=True)
            except StoreUnavailableError:
                return exchange.unavailable()
        return step

    def begin(self, run: Run, route: str) -> Any:
        """The ticket taken before the app for ``run.ticket_tags`` (None: nothing will be stored)."""
        if run.ticket_tags is None or self.store is None:
            return None
        return self.store.begin(run.ticket_tags, route)

    def cached(self, exchange: Exchange, run: Run, route: str) -> Answer | None:
        """A cached whole response answering the request (``run.response_key``), or None on a miss."""
        if run.response_key is None or self.store is None:
            return None
        value = self.store.lookup_value(run.response_key, _headers(exchange), route)
        response = CachedResponse.from_value(value)
        if response is None and value is not None:
            report_bad_record("response", run.response_key)
        if response is None:
            if self.count_hits and self.metrics is not None:
                self.metrics.event("cache_miss", route)
            return None
        return exchange.cached(response)

    def settle(
        self,
        exchange: Exchange,
        step: Answer | Send,
        ticket: Any,
        route: str,
        *,
        counted: bool = True,
        response_key: str | None = None,
    ) -> None:
        """Perform a step's operations: store its record (and cached response) under ``ticket``,
        invalidate what it invalidates, count it (unless ``counted`` is False: a read-back)."""
        store = self.store
        if store is not None and ticket is not None:
            if step.record is not None and exchange.key is not None:
                store.store(
                    exchange.key, _headers(exchange), step.record, ticket=ticket,
                    tags=step.store_tags, route=route,
                )  # fmt: skip
            cached = step.cached if isinstance(step, Send) else None
            if cached is not None and response_key is not None:
                store.store_value(
                    response_key, _headers(exchange), cached.to_value(), vary=cached.vary, ticket=ticket,
                    tags=step.store_tags, ttl=exchange.settings.cache_ttl, route=route,
                )  # fmt: skip
        if isinstance(step, Send) and step.invalidate:
            self.invalidate(step.invalidate, route)
        if counted:
            self.count(route, step.tally, exchange)
            if isinstance(step, Answer) and step.cache_hit and self.count_hits and self.metrics is not None:
                self.metrics.event("cache_hit", route)

    def invalidate(self, tags: tuple[str, ...], route: str) -> None:
        if self.store is not None and tags:
            self.store.invalidate(*tags, route=route)

    def again_later(self, step: Answer | Send, route: str) -> Callable[[], None] | None:
        """For a write that invalidated: the same invalidation once its body is closed (it may commit
        while the body runs or closes; a read in between could store the old validator again)."""
        if not isinstance(step, Send) or not step.invalidate or self.store is None:
            return None
        tags = step.invalidate
        return lambda: self.invalidate(tags, route)

    def count(self, route: str, count: Count, exchange: Exchange | None) -> None:
        """Count one answer. A 304 whose saving the exchange could not know (a cheap validator
        answered before the app) saves what the last 200 of the same target sent. ``exchange``
        None: a stored record's 304 (the lane's), whose saving is known."""
        if self.metrics is None:
            return
        saved = count.bytes_saved
        if (count.sent is not None or saved is None) and exchange is not None:
            request = exchange.request
            target = f"{request.origin}{request.path}?{request.query}"
            if len(target) <= _MAX_TARGET:  # bounded in bytes: targets come from strangers
                if count.sent is not None:
                    if len(self._sizes) >= _MAX_SIZES:
                        self._sizes.clear()
                    self._sizes[target] = count.sent
                else:
                    saved = self._sizes.get(target)
        self.metrics.response(route, count.status, bytes_saved=saved or 0, stored=count.stored)


def _headers(exchange: Exchange) -> Any:
    request = exchange.request
    return request.headers if request.headers is not None else request.fields

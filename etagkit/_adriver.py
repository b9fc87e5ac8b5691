"""The driver awaited: async faces (ASGI, async views) perform an exchange's operations through the one
:class:`~etagkit._driver.Driver`, never an async copy of it.

A store call that may wait on the network (Redis, a two-level store) runs in a worker thread, so the
event loop never blocks; a ``MemoryStore`` never waits on I/O, so its calls run inline (a thread hop
costs tens of microseconds, more than the whole stored 304). Steps with nothing to store,
invalidate or read (most of them) never leave the loop.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from ._driver import Driver
from .core.exchange import Answer, Exchange, Run, Send
from .core.freshness import SAFE_METHODS
from .core.readback import read_back_validator

__all__ = ["AsyncDriver", "ReadBackHead"]


class _ReadBackWanted(Exception):
    """Raised from inside :meth:`Driver.start` when the exchange asks for a read-back."""


T = TypeVar("T")
ReadBackHead = tuple[int, Iterable[tuple[str, str]]] | None  # a read-back GET's status and headers


class AsyncDriver:
    """``driver``'s operations, awaited; ``cache`` (a ``TagCache`` or None) says whether they may block."""

    __slots__ = ("driver", "inline")

    def __init__(self, driver: Driver, cache: Any) -> None:
        self.driver = driver
        # the TagCache's own rule for its async face: only a plain MemoryStore never waits on I/O
        self.inline = driver.store is None or bool(getattr(cache, "_store_inline", False))

    async def _io(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self.inline:
            return fn(*args, **kwargs)
        try:  # anyio: any event loop an ASGI server runs (asyncio, trio)
            from anyio.to_thread import run_sync
        except ImportError:  # Django's ASGI handler without anyio: asyncio
            import asyncio

            return await asyncio.to_thread(fn, *args, **kwargs)
        return await run_sync(functools.partial(fn, *args, **kwargs))

    async def start(
        self, exchange: Exchange, route: str, read_back: Callable[[], Awaitable[ReadBackHead]]
    ) -> Answer | Run:
        """:meth:`Driver.start` itself, with the read-back GET awaited (an ASGI sub-call): when the
        exchange asks for one, the sync start stops, the GET runs on the loop, and the start runs
        again with its answer (one more stored-record read, only on that rare path)."""

        def ask() -> None:
            raise _ReadBackWanted

        # where start reads nothing (no stored record to look up) and writes nothing (a safe method
        # invalidates nothing first), a thread hop would cost more than the call: run it inline
        quiet = exchange.request.method in SAFE_METHODS and exchange.lookup_key() is None
        try:
            if quiet:
                return self.driver.start(exchange, route, ask)
            return await self._io(self.driver.start, exchange, route, ask)
        except _ReadBackWanted:
            pass
        head = await read_back()
        current = read_back_validator(*head) if head is not None else None
        return await self._io(self.driver.start, exchange, route, lambda: current)

    async def begin(self, run: Run, route: str) -> Any:
        if run.ticket_tags is None:
            return None
        return await self._io(self.driver.begin, run, route)

    async def cached(self, exchange: Exchange, run: Run, route: str) -> Answer | None:
        if run.response_key is None:
            return None
        return await self._io(self.driver.cached, exchange, run, route)

    async def settle(
        self,
        exchange: Exchange,
        step: Answer | Send,
        ticket: Any,
        route: str,
        *,
        counted: bool = True,
        response_key: str | None = None,
    ) -> None:
        """:meth:`Driver.settle`; off the loop only when it stores or invalidates."""
        writes = ticket is not None or (isinstance(step, Send) and bool(step.invalidate))
        settle = self.driver.settle
        if writes:
            await self._io(settle, exchange, step, ticket, route, counted=counted, response_key=response_key)
        else:
            settle(exchange, step, ticket, route, counted=counted, response_key=response_key)

    async def again_later(self, step: Answer | Send | None, route: str) -> None:
        """A write's second invalidation, once its body went out (:meth:`Driver.again_later`)."""
        again = self.driver.again_later(step, route) if step is not None else None
        if again is not None:
            await self._io(again)

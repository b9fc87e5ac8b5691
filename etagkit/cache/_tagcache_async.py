"""The async face of ``TagCache``: ``aget_or_set``, ``ainvalidate_tags`` and their internals.

The same windows, plans and compare-and-set rules as the sync face (``_tagcache.py``, which this
mixin is part of); computes are awaited and store calls run in a worker thread
(``asyncio.to_thread``) so a remote store never blocks the event loop. An in-process MemoryStore is
called directly (it never waits on I/O). Single-flight is per event loop; background refreshes are
tasks of the running loop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from ._lease import Leases
from ._store import SetResult
from ._windows import Plan, Windows

if TYPE_CHECKING:
    from ._store import Hit
    from ._tagcache import Ticket

__all__ = ["AsyncFace"]

log = logging.getLogger("etagkit.cache")

T = TypeVar("T")

_SHARED_ATTEMPTS = 3  # as in _tagcache: flights joined before a waiter computes on its own


def _consume(future: asyncio.Future[Any]) -> None:
    """Mark a flight's exception as retrieved even when no caller waited for it."""
    if not future.cancelled():
        future.exception()


class AsyncFace:
    """Mixed into ``TagCache``: its async methods. State lives on the TagCache (``__init__`` there)."""

    _aflights: dict[tuple[asyncio.AbstractEventLoop, str], asyncio.Future[Any]]
    _tasks: set[asyncio.Task[None]]
    _store_inline: bool
    _timer: Callable[[], float]
    _lease: Leases | None

    if TYPE_CHECKING:  # provided by TagCache

        def _read(self, key: str, now: float) -> Hit | None: ...
        def _windows(self, ttl: float | None, stale_ttl: float, error_ttl: float) -> Windows: ...
        def _count(self, name: str) -> None: ...
        def _plan(self, hit: Hit, now: float) -> Plan: ...
        def _serve_stale_after_error(self, key: str, hit: Hit) -> Any: ...
        def _read_now(self, key: str) -> Hit | None: ...
        def _vouched(self, key: str, hit: Hit) -> tuple[Any, bool]: ...
        def invalidate_tags(self, *tags: str, soft: bool = False) -> None: ...
        def delete(self, key: str) -> None: ...
        def clear(self) -> None: ...
        def begin(self, tags: Iterable[str] | str = ()) -> Ticket: ...
        def _write(
            self, key: str, value: Any, ticket: Ticket, tags: tuple[str, ...], w: Windows
        ) -> SetResult | None: ...

    async def aget_or_set(
        self,
        key: str,
        compute: Callable[[], Awaitable[T]],
        *,
        ttl: float | None = None,
        tags: Iterable[str] | str = (),
        stale_ttl: float = 0.0,
        error_ttl: float = 0.0,
    ) -> T:
        """The async face of :meth:`get_or_set`: the same windows and rules, ``compute`` awaited.

        Store calls run in a worker thread (``asyncio.to_thread``) so a remote store never blocks
        the event loop; an in-process MemoryStore is called directly (it never waits on I/O).
        Single-flight is per event loop; background refreshes are tasks of the running loop.
        """
        now = self._timer()
        hit = await self._off_loop(self._read, key, now)
        windows = self._windows(ttl, stale_ttl, error_ttl)
        if hit is None:
            self._count("misses")
            return await self._aload(key, compute, tags, windows)
        plan = self._plan(hit, now)
        if plan is Plan.FRESH:
            return hit.entry.value  # type: ignore[no-any-return]
        if plan is not Plan.REFRESH:
            self._arefresh_later(key, compute, tags, windows)
            return hit.entry.value  # type: ignore[no-any-return]
        try:
            return await self._aload(key, compute, tags, windows)
        except Exception:
            return self._serve_stale_after_error(key, hit)  # type: ignore[no-any-return]

    async def _off_loop(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a (sync) store call without blocking the event loop."""
        if self._store_inline:
            return fn(*args)
        return await asyncio.to_thread(fn, *args)

    async def _acompute_and_store(
        self,
        key: str,
        compute: Callable[[], Awaitable[Any]],
        tags: Iterable[str] | str,
        w: Windows,
        close: Callable[[], None] = lambda: None,
    ) -> tuple[Any, bool]:
        """As :meth:`_compute_and_store` (the lease wait, if any, runs in a worker thread)."""
        lease, token = self._lease, None
        if lease is not None:
            read = functools.partial(self._read_now, key)
            hit, token = await asyncio.to_thread(lease.lead_or_wait, key, read, self._timer)
            if hit is not None:
                close()
                return await self._off_loop(self._vouched, key, hit)
        try:
            ticket = await self._off_loop(self.begin, tags)
            value = await compute()
            close()
            return value, await self._off_loop(self._write, key, value, ticket, (), w) is SetResult.REFUSED
        finally:
            if token is not None and lease is not None:
                await asyncio.to_thread(lease.release, key, token)

    async def ainvalidate_tags(self, *tags: str, soft: bool = False) -> None:
        """The async face of ``invalidate_tags``: the same guarantee, and it raises the same
        ``StoreUnavailableError`` when the invalidation could not be recorded."""
        await self._off_loop(functools.partial(self.invalidate_tags, *tags, soft=soft))

    async def adelete(self, key: str) -> None:
        """The async face of ``delete``."""
        await self._off_loop(self.delete, key)

    async def aclear(self) -> None:
        """The async face of ``clear``."""
        await self._off_loop(self.clear)

    async def _aload(
        self, key: str, compute: Callable[[], Awaitable[T]], tags: Iterable[str] | str, w: Windows
    ) -> T:
        """As :meth:`_load`, with flights per event loop."""
        for _ in range(_SHARED_ATTEMPTS):
            flight = self._aclaim(key)
            if flight is None:
                joined = self._aflights[asyncio.get_running_loop(), key]
                try:
                    value, refused = await asyncio.shield(joined)  # our cancellation is not the leader's
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if joined.cancelled() and task is not None and not task.cancelling():
                        continue  # the leader was cancelled, not this caller: try again
                    raise
                if not refused:
                    return value  # type: ignore[no-any-return]
                continue
            value, _ = await self._alead(
                key, flight, lambda close: self._acompute_and_store(key, compute, tags, w, close)
            )
            return value  # type: ignore[no-any-return]
        return (await self._acompute_and_store(key, compute, tags, w))[0]  # type: ignore[no-any-return]

    def _aclaim(self, key: str) -> asyncio.Future[Any] | None:
        """A new flight for ``key`` on the running loop, or None if one is in flight."""
        loop = asyncio.get_running_loop()
        if (loop, key) in self._aflights:
            return None
        flight = self._aflights[loop, key] = loop.create_future()
        flight.add_done_callback(_consume)
        return flight

    async def _alead(
        self,
        key: str,
        flight: asyncio.Future[Any],
        work: Callable[[Callable[[], None]], Coroutine[Any, Any, Any]],
    ) -> Any:
        """Run ``work(close)`` as the leader of ``flight``; its waiters get the outcome."""
        loop = asyncio.get_running_loop()

        def close() -> None:  # later callers start a new flight (see _compute_and_store)
            if self._aflights.get((loop, key)) is flight:
                del self._aflights[loop, key]

        try:
            result = await work(close)
        except asyncio.CancelledError:
            flight.cancel()
            raise
        except BaseException as exc:
            flight.set_exception(exc)
            raise
        else:
            flight.set_result(result)
            return result
        finally:
            close()

    def _arefresh_later(
        self, key: str, compute: Callable[[], Awaitable[Any]], tags: Iterable[str] | str, w: Windows
    ) -> None:
        flight = self._aclaim(key)
        if flight is None:
            return
        self._count("refreshes")

        async def job() -> None:
            try:
                await self._alead(
                    key, flight, lambda close: self._acompute_and_store(key, compute, tags, w, close)
                )
            except Exception:
                self._count("refresh_errors")
                log.warning("background refresh of %r failed; the stale value stays", key, exc_info=True)

        task = asyncio.get_running_loop().create_task(job())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

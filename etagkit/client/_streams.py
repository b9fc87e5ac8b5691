"""Response bodies that pass through at network speed and are stored only once complete.

Each chunk is handed to the caller as soon as the network gives it. While the body may still be
stored (a :class:`~etagkit.client._cache.Sink`), chunks are also kept, up to the store's byte bound:
a body that grows past it is dropped and never buffered further. The body is stored only when the
network stream ended normally; a stream closed early, or broken, stores nothing. Either way ``done``
is called once, with the answer for the flight's followers or None (they then ask on their own).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import httpx

from ._cache import Sink
from ._model import Answer

__all__ = ["AsyncTee", "SyncTee"]

Done = Callable[[Answer | None], None]


class _Keeper:
    """The part both faces share: keep chunks within the bound, complete or abandon exactly once."""

    __slots__ = ("_done", "_parts", "_sink", "_size")

    def __init__(self, sink: Sink | None, done: Done) -> None:
        self._sink = sink
        self._done: Done | None = done
        self._parts: list[bytes] = []
        self._size = 0

    def keep(self, chunk: bytes) -> None:
        if self._sink is None:
            return
        self._size += len(chunk)
        if self._size > self._sink.limit:
            self.finish(None)  # too large to store: stop keeping it now
        else:
            self._parts.append(chunk)

    def finish(self, body: bytes | None) -> None:
        done, sink = self._done, self._sink
        self._done, self._sink, self._parts = None, None, []
        if done is None:
            return
        done(sink.complete(body) if sink is not None and body is not None else None)

    def complete(self) -> None:
        if self._sink is not None:
            self.finish(b"".join(self._parts))
        else:
            self.finish(None)


class AsyncTee(httpx.AsyncByteStream):
    """An async network body that is also kept for the store (see the module docstring)."""

    def __init__(self, inner: httpx.AsyncByteStream, sink: Sink | None, done: Done) -> None:
        self._inner = inner
        self._keeper = _Keeper(sink, done)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        keeper = self._keeper
        try:
            async for chunk in self._inner:
                keeper.keep(chunk)
                yield chunk
        except BaseException:
            keeper.finish(None)
            raise
        keeper.complete()

    async def aclose(self) -> None:
        self._keeper.finish(None)  # nothing if it already completed
        await self._inner.aclose()


class SyncTee(httpx.SyncByteStream):
    """A sync network body that is also kept for the store (see the module docstring)."""

    def __init__(self, inner: httpx.SyncByteStream, sink: Sink | None, done: Done) -> None:
        self._inner = inner
        self._keeper = _Keeper(sink, done)

    def __iter__(self) -> Iterator[bytes]:
        keeper = self._keeper
        try:
            for chunk in self._inner:
                keeper.keep(chunk)
                yield chunk
        except BaseException:
            keeper.finish(None)
            raise
        keeper.complete()

    def close(self) -> None:
        self._keeper.finish(None)
        self._inner.close()

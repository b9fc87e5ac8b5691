"""Where the client keeps responses: the store contract, and the in-memory LRU store.

A store maps a :data:`StoreKey` (URL, auth scope, Vary selection) to a :class:`Stored` record and
finds every variant of a URL. It is bounded in bytes and entries. The cache calls it under its own
lock, so a store only has to be consistent for one caller at a time; the persistent one
(:mod:`etagkit.client._sqlite`) shares this contract.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, Protocol, runtime_checkable

from cachetools import LRUCache

from .._errors import ConfigurationError
from ._model import Stored, StoreKey

__all__ = ["MemoryResponseStore", "ResponseStore", "check_bounds"]


@runtime_checkable
class ResponseStore(Protocol):
    """The store contract of the client's cache (bounded; a record that cannot be read is a miss)."""

    max_bytes: int

    def variants(self, url: str) -> list[Stored]:
        """Every stored response for ``url`` (each Vary variant, each auth scope), marking them used."""
        ...

    def put(self, stored: Stored) -> None:
        """Store (or replace) a record, evicting the least recently used beyond the bounds."""
        ...

    def drop(self, key: StoreKey) -> None:
        """Forget one record (nothing if absent)."""
        ...

    def drop_url(self, url: str) -> None:
        """Forget every record for ``url``."""
        ...

    def clear(self) -> None:
        """Forget everything."""
        ...

    def usage(self) -> tuple[int, int]:
        """(entries, bytes) held now."""
        ...

    def close(self) -> None:
        """Release what the store holds open (a file)."""
        ...


def check_bounds(max_entries: object, max_bytes: object) -> None:
    """Raise ConfigurationError unless both bounds are ints >= 1."""
    for name, value in (("max_entries", max_entries), ("max_bytes", max_bytes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(f"{name} must be an int >= 1, not {value!r}")


class _LRU(LRUCache[Hashable, Any]):
    """cachetools' LRU that reports each eviction, so the owner can keep its URL index in step."""

    def __init__(self, maxsize: int, store: MemoryResponseStore) -> None:
        super().__init__(maxsize, getsizeof=lambda stored: stored.size)
        self._store = store

    def popitem(self) -> tuple[Hashable, Any]:
        key, value = super().popitem()
        self._store._unindex(value.key)
        return key, value


class MemoryResponseStore:
    """Responses in process memory: an LRU bounded by entries and bytes (cachetools), and a URL index
    so that a lookup reads only the variants of one URL."""

    def __init__(self, max_entries: int = 1024, max_bytes: int = 64 * 1024 * 1024) -> None:
        check_bounds(max_entries, max_bytes)
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries = _LRU(max_bytes, self)
        self._by_url: dict[str, dict[StoreKey, None]] = {}

    def variants(self, url: str) -> list[Stored]:
        keys = self._by_url.get(url)
        if not keys:
            return []
        get = self._entries.get
        return [stored for stored in map(get, list(keys)) if stored is not None]

    def put(self, stored: Stored) -> None:
        if stored.size > self.max_bytes:
            self.drop(stored.key)
            return
        self._entries[stored.key] = stored
        self._by_url.setdefault(stored.url, {})[stored.key] = None
        while len(self._entries) > self.max_entries:
            self._entries.popitem()

    def drop(self, key: StoreKey) -> None:
        self._entries.pop(key, None)
        self._unindex(key)

    def drop_url(self, url: str) -> None:
        for key in list(self._by_url.get(url, ())):
            self.drop(key)

    def clear(self) -> None:
        self._entries.clear()
        self._by_url.clear()

    def usage(self) -> tuple[int, int]:
        return len(self._entries), int(self._entries.currsize)

    def close(self) -> None:
        pass

    def consistent(self) -> bool:
        """Whether the URL index names exactly the stored keys (for tests)."""
        indexed = {key for keys in self._by_url.values() for key in keys}
        return indexed == set(self._entries.keys())

    def _unindex(self, key: StoreKey) -> None:
        keys = self._by_url.get(key[0])
        if keys is not None:
            keys.pop(key, None)
            if not keys:
                del self._by_url[key[0]]

"""Generations for "latest wins": bounded marks of the newest generation that completed per store
key and of the last invalidation per URL (see :class:`etagkit.client._cache.Cache`)."""

from __future__ import annotations

from collections.abc import Hashable

from cachetools import LRUCache

__all__ = ["Marks"]


class Marks(LRUCache[Hashable, int]):
    """Generation marks, bounded: an evicted mark raises the floor, and a missing mark reads as the
    floor, so forgetting a mark can only refuse an update, never allow a stale one."""

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize)
        self.floor = 0

    def popitem(self) -> tuple[Hashable, int]:
        key, value = super().popitem()
        self.floor = max(self.floor, value)
        return key, value

    def mark(self, key: Hashable) -> int:
        return max(self.get(key, self.floor), self.floor)

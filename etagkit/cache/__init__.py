"""Tagged cache-aside: TagCache in front of a MemoryStore, a RedisStore or a TwoLevelStore.

``RedisStore`` lives in ``etagkit.cache.redis`` and ``TwoLevelStore`` in ``etagkit.cache.twolevel``
(both need the ``redis`` extra); importing this package never imports redis.
"""

from __future__ import annotations

from ._store import GLOBAL_TAG, Entry, Hit, SetResult, Store
from ._tagcache import CachedFunction, TagCache, Ticket
from .memory import MemoryStore, estimate_size

__all__ = [
    "GLOBAL_TAG",
    "CachedFunction",
    "Entry",
    "Hit",
    "MemoryStore",
    "SetResult",
    "Store",
    "TagCache",
    "Ticket",
    "estimate_size",
]

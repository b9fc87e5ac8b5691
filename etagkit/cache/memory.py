"""MemoryStore: the in-process store, a cachetools TLRU cache bounded by entries and bytes, plus tag marks.

Entries are kept as Python objects (no serialization), so a hit costs one dict lookup, an LRU touch
and one mark comparison per tag. Tag marks live in a bounded LRU of their own: evicting a mark is
safe because the store contract reads a missing mark as "invalidated now" (see ``_store.py``).
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import replace
from itertools import islice

from cachetools import TLRUCache

from .._config import positive_int
from ._store import GLOBAL_TAG, Entry, Hit, SetResult

__all__ = ["MemoryStore", "estimate_size"]

# Bytes charged per entry on top of its value: the Entry, its Hit, the cachetools bookkeeping.
ENTRY_OVERHEAD = 400
_WALK_LIMIT = 10_000  # objects visited by estimate_size; beyond that the rest is not counted

_Mark = tuple[int, int]  # (hard mark, soft mark) on the store's logical clock


def estimate_size(value: object) -> int:
    """Approximate bytes held by ``value``: ``sys.getsizeof`` summed over the objects it reaches.

    Walks builtin containers (dict, list, tuple, set, frozenset) and instances' ``__dict__``,
    counting each object once and stopping after 10,000 objects; other references (slots, C
    extension internals) are not followed. It is an estimate for bounding memory, not an audit.
    """
    seen: set[int] = set()
    stack: list[object] = [value]
    total = 0
    while stack and len(seen) < _WALK_LIMIT:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj, 64)
        room = _WALK_LIMIT - len(stack)
        if isinstance(obj, dict):
            stack.extend(islice(obj.keys(), room))
            stack.extend(islice(obj.values(), room))
        elif isinstance(obj, list | tuple | set | frozenset):
            stack.extend(islice(obj, room))
        elif not isinstance(obj, type):
            attrs = getattr(obj, "__dict__", None)
            if isinstance(attrs, dict):
                stack.append(attrs)
    return total


class _Slot:
    """What the entry cache holds: the entry's Hit, and the epoch at which its marks were checked."""

    __slots__ = ("checked", "hit", "until")

    def __init__(self, hit: Hit) -> None:
        self.hit = hit
        self.until = hit.entry.error_until
        self.checked = -1


class _Entries(TLRUCache[str, _Slot, float]):
    """A TLRU cache (per-entry expiry = the entry's ``error_until``) bounded by bytes and by count."""

    def __init__(self, max_entries: int, max_bytes: int, timer: Callable[[], float]) -> None:
        super().__init__(max_bytes, _expires_at, timer, _size_of)
        self.max_entries = max_entries
        self.evictions = 0

    def popitem(self) -> tuple[str, _Slot]:
        # cachetools calls this to make room: least recently used among live entries (it expires first)
        item = super().popitem()
        self.evictions += 1
        return item

    def __setitem__(self, key: str, value: _Slot) -> None:
        super().__setitem__(key, value)
        while len(self) > self.max_entries:
            self.popitem()


def _expires_at(_key: str, slot: _Slot, _now: float) -> float:
    return float(slot.until)


def _size_of(slot: _Slot) -> float:
    return slot.hit.entry.size


class MemoryStore:
    """Thread-safe in-process store: TTL + LRU entries bounded by count and bytes, bounded tag marks.

    ``max_bytes`` bounds the sum of per-entry estimates (:func:`estimate_size` of the value, plus
    the key and tag lengths, plus a fixed ``ENTRY_OVERHEAD``), or ``Entry.size`` when the caller
    set one. An entry larger than ``max_bytes`` is not stored. Expiry runs on ``timer`` (give it the
    ``TagCache``'s timer; ``TagCache()`` does so for its default store).
    """

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        max_bytes: int = 64 * 1024 * 1024,
        max_marks: int = 100_000,
        timer: Callable[[], float] = time.time,
    ) -> None:
        self._lock = threading.Lock()
        self._entries = _Entries(
            positive_int("max_entries", max_entries), positive_int("max_bytes", max_bytes), timer
        )
        self._marks: OrderedDict[str, _Mark] = OrderedDict()
        self._max_marks = positive_int("max_marks", max_marks)
        self._clock = 0
        self._global: _Mark = (0, 0)  # GLOBAL_TAG's mark is never evicted
        self._mark_evictions = 0
        # Bumped whenever a mark moves (invalidation, clear, mark eviction): a hit whose marks were
        # checked at the current epoch is still valid without checking them again.
        self._epoch = 0

    # -- the Store contract -----------------------------------------------------------------------

    def begin(self, tags: Sequence[str]) -> int:
        """Return the logical clock now, creating marks (= that clock) for tags that have none."""
        with self._lock:
            clock = self._clock
            for tag in tags:
                if tag != GLOBAL_TAG and tag not in self._marks:
                    self._put_mark(tag, (clock, 0))
            return clock

    def get(self, key: str, now: float) -> Hit | None:
        """The entry if present, ``now < error_until`` and no tag was hard-invalidated since it began."""
        with self._lock:
            try:
                slot = self._entries[key]
            except KeyError:
                return None
            if not now < slot.until:
                self._drop(key)
                return None
            if slot.checked == self._epoch:  # no mark moved since the last check: still valid
                return slot.hit
            hit = slot.hit
            entry = hit.entry
            started = entry.started
            hard, soft = self._global
            soft_invalidated = soft > started
            if hard > started:
                self._drop(key)
                return None
            marks = self._marks
            for tag in entry.tags:
                mark = marks.get(tag)
                if mark is None or mark[0] > started:
                    self._drop(key)  # invalid for good: free its room now
                    return None
                marks.move_to_end(tag)
                if mark[1] > started:
                    soft_invalidated = True
            if soft_invalidated and not hit.soft_invalidated:
                slot.hit = hit = Hit(entry, True)  # marks only grow: soft stays soft
            slot.checked = self._epoch
            return hit

    def set(self, key: str, entry: Entry, now: float) -> SetResult:
        """Store unless a tag lost its mark or was hard-invalidated after ``entry.started`` (REFUSED);
        NOT_STORED if the marks allow it but it is larger than ``max_bytes`` or already expired."""
        if entry.size <= 0:
            size = estimate_size(entry.value) + len(key) + sum(map(len, entry.tags)) + ENTRY_OVERHEAD
            entry = replace(entry, size=size)
        with self._lock:
            valid = self._global[0] <= entry.started
            for tag in entry.tags:
                mark = self._marks.get(tag)
                if mark is None:
                    self._put_mark(tag, (self._clock, 0))  # so that the next compute can be stored
                    valid = False
                else:
                    self._marks.move_to_end(tag)
                    if mark[0] > entry.started:
                        valid = False
            result = SetResult.REFUSED
            if valid:
                result = SetResult.NOT_STORED
                if now < entry.error_until:
                    try:
                        self._entries[key] = _Slot(Hit(entry))
                    except ValueError:  # larger than max_bytes
                        pass
                    else:
                        return SetResult.STORED
            self._drop(key)  # whatever was there is older than this value that was not stored
            return result

    def invalidate(self, tags: Sequence[str], *, soft: bool = False) -> None:
        """Advance the clock once and mark every tag with it: O(1) per tag, entries untouched."""
        with self._lock:
            self._epoch += 1
            before = self._clock
            self._clock = now = before + 1
            for tag in tags:
                old = self._global if tag == GLOBAL_TAG else self._marks.get(tag)
                # a tag without a mark is already "invalidated"; recreating it at `before` is safe
                hard, old_soft = old if old is not None else (before, 0)
                mark = (hard, now) if soft else (now, old_soft)
                if tag == GLOBAL_TAG:
                    self._global = mark
                else:
                    self._put_mark(tag, mark)

    def delete(self, key: str) -> None:
        """Remove one entry."""
        with self._lock:
            self._drop(key)

    def clear(self) -> None:
        """Invalidate everything (``GLOBAL_TAG``) and drop every entry."""
        with self._lock:
            self._epoch += 1
            self._clock += 1
            self._global = (self._clock, self._global[1])
            self._entries.clear()

    # -- extras -----------------------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """Counters merged into ``TagCache.stats()``: evictions, and the current sizes."""
        with self._lock:
            return {
                "evictions": self._entries.evictions,
                "mark_evictions": self._mark_evictions,
                "entries": len(self._entries),
                "bytes": int(self._entries.currsize),
                "marks": len(self._marks),
            }

    def _drop(self, key: str) -> None:
        with contextlib.suppress(KeyError):  # cachetools raises KeyError for absent or expired keys
            del self._entries[key]

    def _put_mark(self, tag: str, mark: _Mark) -> None:
        marks = self._marks
        marks[tag] = mark
        marks.move_to_end(tag)
        if len(marks) > self._max_marks:
            marks.popitem(last=False)
            self._mark_evictions += 1
            self._epoch += 1

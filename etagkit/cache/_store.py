"""The contract between ``TagCache`` and its stores: entries, tag marks on a logical clock, CAS writes.

Race-safe O(1) invalidation (docs/cache.md, "Tags"):

* A store keeps one integer **logical clock** and, per tag, a **mark**: the clock value of the tag's
  last hard invalidation (and, separately, of its last soft one). Invalidating a tag is
  ``clock += 1; mark[tag] = clock``: O(1), whatever the number of entries carrying it.
* Before a compute starts, ``begin(tags)`` returns the current clock ``started`` and makes sure every
  tag known up front has a mark (a missing one is set to ``started``: invalidations before the
  compute began cannot make it stale).
* ``set(key, entry)`` is a compare-and-set. It answers ``SetResult.REFUSED`` if any of the entry's
  tags has a hard mark ``> entry.started`` **or no mark at all** (evicted or never seen: "invalidated
  now"): the value may be outdated. A refused tag that had no mark gets one, so the next compute can
  be stored. Tags learned only after the compute (``entry.tags`` may hold more than ``begin`` saw)
  are checked the same way. The marks are checked first: only a value that passed them may be
  answered ``SetResult.NOT_STORED`` (valid, but not kept: larger than the store's bound, or expiring
  at once). ``TagCache``'s single-flight relies on the difference: waiters take the leader's value
  unless it was REFUSED (then they compute again, since their call may postdate the invalidation).
* ``get(key)`` returns the entry only if every tag still has a hard mark ``<= entry.started``; a
  missing mark means miss. It also says whether a *soft* mark is newer than ``started`` (serve
  stale while one refresh runs).
* ``GLOBAL_TAG`` is carried implicitly by every entry: invalidating it invalidates everything
  (``clear()``; the breaker's catch-up after an outage).

Stores hold ``Entry`` objects; a remote store serializes them itself (never pickle by default).
A store may also offer ``stats() -> dict`` (evictions, breaker state, ...): ``TagCache.stats()``
merges it into its own counters. It is optional, so it is not part of the ``Store`` protocol.
Freshness times are seconds on the ``TagCache``'s timer (wall clock by default, so that processes
sharing a store agree).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = ["GLOBAL_TAG", "Entry", "Hit", "SetResult", "Store"]

GLOBAL_TAG = "*"  # implicit on every entry; tags given by users may not be "*"


@dataclass(frozen=True, slots=True)
class Entry:
    """A cached value with its tags, the clock value read before its compute, and its windows."""

    value: Any
    tags: tuple[str, ...]
    started: int
    fresh_until: float  # serve as fresh before this
    stale_until: float  # stale-while-revalidate window end (>= fresh_until)
    error_until: float  # stale-if-error window end (>= stale_until); the store may drop it after
    delta: float = 0.0  # measured compute seconds (XFetch's δ)
    size: int = field(default=0, compare=False)  # approximate bytes, for byte-bounded stores


@dataclass(frozen=True, slots=True)
class Hit:
    """What ``Store.get`` found: a still-valid entry, and whether a soft invalidation outdated it."""

    entry: Entry
    soft_invalidated: bool = False


class SetResult(enum.Enum):
    """What ``Store.set`` did. Truthy only when the entry was stored (``if store.set(...)`` reads so)."""

    STORED = "stored"
    REFUSED = "refused"  # a tag was invalidated after entry.started, or had no mark: maybe outdated
    NOT_STORED = "not_stored"  # the marks allowed it, but the store did not keep it (too large, ...)

    def __bool__(self) -> bool:
        return self is SetResult.STORED


@runtime_checkable
class Store(Protocol):
    """What every store (memory, Redis, two-level) implements; one contract test suite covers all."""

    def begin(self, tags: Sequence[str]) -> int:
        """Return the logical clock now, creating marks (= that clock) for tags that have none."""
        ...

    def get(self, key: str, now: float) -> Hit | None:
        """The entry if present, not expired at ``now`` (past ``error_until``) and not hard-invalidated."""
        ...

    def set(self, key: str, entry: Entry, now: float) -> SetResult:
        """Compare-and-set: store unless a tag was invalidated after ``entry.started`` (or lost its mark)."""
        ...

    def invalidate(self, tags: Sequence[str], *, soft: bool = False) -> None:
        """Mark tags invalidated now: O(1) per tag, visible to every reader of this store at once."""
        ...

    def delete(self, key: str) -> None:
        """Remove one entry."""
        ...

    def clear(self) -> None:
        """Invalidate everything (``GLOBAL_TAG``) and drop what can be dropped cheaply."""
        ...

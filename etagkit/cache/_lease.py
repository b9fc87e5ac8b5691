"""Distributed single-flight: one compute per key across processes, through a lease in the store.

In-process single-flight (``_singleflight.py``) elects one leader per process; that leader then
takes the key's lease in the store (``acquire_lease``: Redis ``SET NX PX``, one round trip, only on
a miss, never on a hit). The process that gets it computes and releases it after its write. The
others poll the store for the entry (5 ms, doubling to 50 ms): a valid entry is taken as their
result; a lease that is gone without an entry (the leader's write was refused, or it failed) is
tried again; and a waiter still waiting when the lease's TTL has passed computes itself. A leader
that crashed therefore never blocks anyone longer than the lease TTL (the key expires in Redis).
The value a waiter takes is read through the store like any hit: its tags' marks vouch for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from .._errors import StoreUnavailableError
from ._store import Hit

__all__ = ["Leases"]

_FIRST_POLL = 0.005
_MAX_POLL = 0.05
_MAX_UNRELEASED = 1024  # bounded: beyond it, leases are left to expire


class Leases:
    """The lease side of ``TagCache``'s compute: who computes ``key`` across processes."""

    def __init__(self, store: Any, ttl: float, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.store = store
        self.ttl = ttl
        self._sleep = sleep
        self.waited = 0  # computes avoided: a waiter took another process's value (for stats/tests)
        self._unreleased: dict[str, str] = {}  # key -> token whose release failed (store down)
        self._lock = threading.Lock()

    @staticmethod
    def offered_by(store: object) -> bool:
        """Whether ``store`` has the lease methods (RedisStore, TwoLevelStore)."""
        return all(
            callable(getattr(store, m, None)) for m in ("acquire_lease", "release_lease", "lease_held")
        )

    def lead_or_wait(
        self, key: str, read: Callable[[], Hit | None], timer: Callable[[], float]
    ) -> tuple[Hit | None, str | None]:
        """``(hit, None)``: another process computed it; ``(None, token)``: this caller holds the
        lease and computes; ``(None, None)``: compute without a lease (store down, or waited the
        whole lease TTL)."""
        if self._unreleased:
            self._release_pending()
        deadline = time.monotonic() + self.ttl
        delay = _FIRST_POLL
        while True:
            try:
                token = self.store.acquire_lease(key, self.ttl)
            except StoreUnavailableError:
                return None, None
            if token is not None:
                return None, token
            while True:  # another process computes: wait for its entry or for its lease to end
                if time.monotonic() >= deadline:
                    return None, None
                self._sleep(delay)
                delay = min(delay * 2, _MAX_POLL)
                hit = read()
                if hit is not None and not hit.soft_invalidated and timer() < hit.entry.fresh_until:
                    self.waited += 1
                    return hit, None
                try:
                    if not self.store.lease_held(key):
                        break  # released without a usable entry (refused, failed): try to lead
                except StoreUnavailableError:
                    return None, None

    def release(self, key: str, token: str) -> None:
        """Give the lease back. If the store cannot be reached, the release is retried before this
        process's next lease (a lease left behind would make others wait out its TTL)."""
        try:
            self.store.release_lease(key, token)
        except StoreUnavailableError:
            with self._lock:
                if len(self._unreleased) < _MAX_UNRELEASED:
                    self._unreleased[key] = token

    def _release_pending(self) -> None:
        with self._lock:
            pending, self._unreleased = self._unreleased, {}
        for key, token in pending.items():
            self.release(key, token)

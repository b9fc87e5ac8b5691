"""TwoLevelStore: a bounded in-process MemoryStore in front of a RedisStore, kept honest by pub/sub.

A local hit costs what a MemoryStore hit costs. Local entries are only valid while this process
hears every invalidation: each RedisStore invalidation (and delete) is PUBLISHed on the namespace's
channel by the same script that performs it, and a listener thread applies it to the local layer's
own marks. The local layer has its own logical clock; an entry copied from Redis is stored (wrapped,
so reads return the remote entry unchanged) with the local clock read *before* the Redis read, so an
invalidation that arrives while the copy is in flight makes the local write refuse (the same
compare-and-set argument as the store contract).

If the subscription is lost (connection error), the listener flushes the local layer and every
call bypasses it, going to Redis directly, until it has resubscribed and flushed once more: the
local layer never serves anything it cannot prove was not invalidated in the meantime.
Invalidations made through this store are applied locally right after the Redis call, even when
that call failed.

Read-after-invalidate across processes, whichever store invalidates (a plain ``RedisStore`` too):
the invalidating store waits (up to its ``ack_timeout``) until every subscriber that received the
message acknowledged it (``_acks.py``). A subscriber that does not answer in time (hung, stopped)
cannot serve stale copies either: the local layer is used only within ``trust_window`` seconds
after a PING sent over the subscription came back (a PONG arrives after every message published
before its PING, so the listener has applied them all), and ``trust_window`` is at most the
invalidators' ``ack_timeout``. The listener pings every ``trust_window / 4``; a process that stalls
longer reads Redis until its next PONG. A read that starts after ``invalidate`` returned, in any
process, therefore finds no local copy of what it invalidated.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

try:
    import redis  # noqa: F401 - checked here so that the error names this module and its extra
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without redis
    raise ImportError("etagkit.cache.twolevel needs redis-py: pip install 'etagkit[redis]'") from exc

from .._config import number
from .._errors import ConfigurationError
from ._store import GLOBAL_TAG, Entry, Hit, SetResult
from .memory import ENTRY_OVERHEAD, MemoryStore, estimate_size
from .redis import RedisStore

__all__ = ["TwoLevelStore"]

log = logging.getLogger("etagkit.cache.twolevel")


def _text(channel: Any) -> Any:
    """A channel name as str (redis-py gives bytes with ``decode_responses=False``)."""
    return channel.decode("utf-8", "replace") if isinstance(channel, bytes) else channel


def _local_copy(entry: Entry, local_started: int) -> Entry:
    """The local layer's entry: valid on the local clock; its value is the remote ``Hit`` to return."""
    size = (entry.size or estimate_size(entry.value)) + ENTRY_OVERHEAD
    return replace(entry, value=Hit(entry), started=local_started, size=size)


class TwoLevelStore:
    """The ``Store`` contract: a local ``MemoryStore`` layer over ``remote``, invalidated over pub/sub.

    ``local`` defaults to ``MemoryStore(max_entries=..., max_bytes=..., timer=timer)``; give ``timer``
    the ``TagCache``'s timer. Call :meth:`close` (or use ``with``) to stop the listener thread.
    """

    def __init__(
        self,
        remote: RedisStore,
        *,
        local: MemoryStore | None = None,
        max_entries: int = 1_000,
        max_bytes: int = 16 * 1024 * 1024,
        timer: Callable[[], float] = time.time,
        resubscribe_interval: float = 1.0,
        trust_window: float = 0.2,
        ack_timeout: float | None = None,
    ) -> None:
        self.resubscribe_interval = number("resubscribe_interval", resubscribe_interval, positive=True)
        self.trust_window = number("trust_window", trust_window, positive=True)
        if ack_timeout is not None:
            remote.ack_timeout = number("ack_timeout", ack_timeout)
        if remote.ack_timeout and self.trust_window > remote.ack_timeout:
            raise ConfigurationError(
                f"trust_window ({trust_window}s) must not exceed the invalidators' ack_timeout "
                f"({remote.ack_timeout}s), or a stalled process could serve what was invalidated"
            )
        self.remote = remote
        self.local = local or MemoryStore(max_entries=max_entries, max_bytes=max_bytes, timer=timer)
        self.received = 0  # invalidation messages applied (for stats and tests)
        self.subscription_losses = 0
        self._subscribed = False
        self._trusted_until = 0.0  # time.monotonic() before which the local layer may answer
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._listener = threading.Thread(target=self._listen, name="etagkit-twolevel", daemon=True)
        self._listener.start()

    def _trusted(self) -> bool:
        return time.monotonic() < self._trusted_until

    # -- the Store contract ---------------------------------------------------------------------------

    def begin(self, tags: Sequence[str]) -> int:
        """The remote clock (entries are written to Redis first)."""
        return self.remote.begin(tags)

    def get(self, key: str, now: float) -> Hit | None:
        """Local hit if subscribed; else Redis (one round trip), copying a valid hit into the local layer."""
        if not self._trusted():
            return self.remote.get(key, now)
        local = self.local
        copy = local.get(key, now)
        if copy is not None:
            remote_hit: Hit = copy.entry.value
            return Hit(remote_hit.entry, True) if copy.soft_invalidated else remote_hit
        local_started = local.begin(())  # before the remote read: a message in flight refuses the copy
        hit = self.remote.get(key, now)
        if hit is not None and not hit.soft_invalidated and self._trusted():
            local.begin(hit.entry.tags)
            local.set(key, _local_copy(hit.entry, local_started), now)
        return hit

    def set(self, key: str, entry: Entry, now: float) -> SetResult:
        """Compare-and-set in Redis (its result is the answer); if stored, also keep a local copy (if
        subscribed; the local layer may still not keep it, e.g. larger than its ``max_bytes``)."""
        local_started = self.local.begin(entry.tags) if self._trusted() else None
        result = self.remote.set(key, entry, now)
        if result is SetResult.STORED and local_started is not None and self._trusted():
            self.local.set(key, _local_copy(entry, local_started), now)
        elif result is not SetResult.STORED:
            self.local.delete(key)
        return result

    def invalidate(self, tags: Sequence[str], *, soft: bool = False) -> None:
        """Invalidate in Redis (published to every process, acknowledged: ``RedisStore``), then
        locally, even if Redis failed (then it raises ``StoreUnavailableError``)."""
        if not tags:
            return
        try:
            self.remote.invalidate(tags, soft=soft)
        finally:
            self.local.invalidate(tags, soft=soft)

    def acquire_lease(self, key: str, ttl: float) -> str | None:
        """The remote's compute lease (``RedisStore.acquire_lease``)."""
        return self.remote.acquire_lease(key, ttl)

    def release_lease(self, key: str, token: str) -> None:
        """Give the remote's lease back."""
        self.remote.release_lease(key, token)

    def lease_held(self, key: str) -> bool:
        """Whether some process holds the remote compute lease of ``key``."""
        return self.remote.lease_held(key)

    @property
    def healthy(self) -> bool:
        """The remote's health (breaker closed, nothing owed)."""
        return self.remote.healthy

    def delete(self, key: str) -> None:
        """Delete in Redis (published) and locally."""
        try:
            self.remote.delete(key)
        finally:
            self.local.delete(key)

    def clear(self) -> None:
        """Invalidate everything in Redis (published, acknowledged) and locally."""
        try:
            self.invalidate((GLOBAL_TAG,))
        finally:
            self.local.clear()

    # -- the listener -----------------------------------------------------------------------------------

    @property
    def subscribed(self) -> bool:
        """True while invalidations are being received, i.e. while the local layer is used."""
        return self._subscribed

    def wait_subscribed(self, timeout: float) -> bool:
        """Block until subscribed (or ``timeout`` seconds pass); returns :attr:`subscribed`."""
        self._ready.wait(timeout)
        return self._subscribed

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen_once()
            except Exception as exc:  # any failure of the subscription: flush, bypass, retry
                if not self._stop.is_set():  # warn once per loss, not at every failed retry
                    level = logging.WARNING if self._subscribed else logging.DEBUG
                    log.log(level, "cache invalidation subscription lost (%s): local layer flushed", exc)
            finally:
                self._lose_subscription()
            self._stop.wait(self.resubscribe_interval)

    def _listen_once(self) -> None:
        client: Any = self.remote.client  # redis.Redis or RedisCluster (whose pubsub() is untyped)
        pubsub = client.pubsub()
        interval = self.trust_window / 4
        try:
            pubsub.subscribe(self.remote.channel)
            pings: dict[str, float] = {}  # ping payload -> time.monotonic() when sent
            serial, next_ping = 0, 0.0
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= next_ping and self._subscribed:
                    if len(pings) > 64:  # no answer to the last 64 pings: the link is dead
                        raise ConnectionError("no PONG over the invalidation subscription")
                    serial += 1
                    pings[str(serial)] = now
                    pubsub.ping(str(serial))
                    next_ping = now + interval
                message = pubsub.get_message(timeout=interval)
                if message is None:
                    continue
                kind = message.get("type")
                if kind == "subscribe":
                    self.local.clear()  # whatever was missed before this moment is gone
                    self._subscribed = True
                    next_ping = 0.0  # trusted from the first PONG on
                elif kind == "pong":
                    sent = pings.pop(_text(message.get("data")), None)
                    if sent is not None:
                        pings = {k: v for k, v in pings.items() if v > sent}
                        self._trusted_until = max(self._trusted_until, sent + self.trust_window)
                        self._ready.set()
                elif kind == "message":
                    self._apply(message.get("data"))
        finally:
            pubsub.close()

    def _lose_subscription(self) -> None:
        if self._subscribed:
            self.subscription_losses += 1
        self._subscribed = False
        self._trusted_until = 0.0
        self._ready.clear()
        self.local.clear()

    def _apply(self, data: Any) -> None:
        try:
            message = json.loads(data)
            key = message.get("k")
            tags = message.get("t")
        except (TypeError, ValueError, AttributeError):
            log.warning("ignored a malformed message on the cache invalidation channel: %r", data)
            return
        if isinstance(key, str):
            self.local.delete(key)
        if isinstance(tags, list) and tags:
            self.local.invalidate([str(t) for t in tags], soft=message.get("f") == "s")
        self.received += 1
        clock, origin = message.get("c"), message.get("o")
        if isinstance(clock, str) and isinstance(origin, str) and origin:  # applied: acknowledge it
            if origin == self.remote.id:
                self.remote.acks.record(int(clock))
            else:
                self.remote.client.publish(self.remote.ack_channel(origin), clock)

    # -- lifecycle and stats ----------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """The remote's stats (breaker), the local layer's (evictions, sizes) and the subscription's."""
        stats: dict[str, Any] = {f"local_{k}": v for k, v in self.local.stats().items()}
        stats["evictions"] = stats.pop("local_evictions", 0)
        stats.update(self.remote.stats())
        stats["subscribed"] = self._subscribed
        stats["subscription_losses"] = self.subscription_losses
        stats["invalidations_received"] = self.received
        return stats

    def close(self) -> None:
        """Stop the listener thread and close the remote store (its client, if it built one)."""
        self._stop.set()
        self._listener.join(timeout=5)
        self._lose_subscription()
        self.remote.close()

    def __enter__(self) -> TwoLevelStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""TwoLevelStore: local hits without Redis, other processes' invalidations over pub/sub (RESP2 and
RESP3), and a flushed, bypassed local layer whenever the subscription is lost."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from support import RedisServer, counting_connection_class

from etagkit import ConfigurationError, StoreUnavailableError
from etagkit.cache._store import Entry
from etagkit.cache.breaker import CircuitBreaker
from etagkit.cache.memory import MemoryStore
from etagkit.cache.redis import RedisStore
from etagkit.cache.twolevel import TwoLevelStore

pytestmark = pytest.mark.redis

NOW = 1_800_000_000.0
CountingConnection: Any = counting_connection_class()


def entry(started: int, value: Any = "v", tags: tuple[str, ...] = ("a",)) -> Entry:
    return Entry(value, tags, started, NOW + 10, NOW + 20, NOW + 30)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for an asynchronous event (a pub/sub message); a bounded wait, not a timing assertion."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached")
        time.sleep(0.005)


def two_level(url: str, prefix: str, **client_kwargs: Any) -> TwoLevelStore:
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, **client_kwargs)
    store = TwoLevelStore(RedisStore(client, prefix=prefix), resubscribe_interval=0.05)
    assert store.wait_subscribed(10)
    return store


@pytest.fixture(params=[3, 2], ids=["resp3", "resp2"])
def pair(
    request: pytest.FixtureRequest, redis_url: str, redis_prefix: str
) -> Iterator[tuple[TwoLevelStore, ...]]:
    """Two stores sharing one namespace: two processes' views of the same cache."""
    a = two_level(redis_url, redis_prefix, protocol=request.param)
    b = two_level(redis_url, redis_prefix, protocol=request.param)
    yield a, b
    a.close()
    b.close()


@pytest.mark.parametrize(
    "options",
    [
        {"resubscribe_interval": 0},
        {"resubscribe_interval": -1},
        {"trust_window": 0},
        {"trust_window": 1.0},
        {"max_entries": 0},
    ],
)
def test_bad_settings_raise_configuration_error_before_any_thread(options: dict[str, Any]) -> None:
    """``resubscribe_interval=0`` would make a lost subscription a busy loop."""
    remote = RedisStore("redis://127.0.0.1:1/0")  # never connected: construction fails first
    with pytest.raises(ConfigurationError, match=next(iter(options))):
        TwoLevelStore(remote, **options)


def test_local_hit_does_not_touch_redis(redis_url: str, redis_prefix: str) -> None:
    store = two_level(redis_url, redis_prefix, connection_class=CountingConnection)
    try:
        started = store.begin(["a"])
        assert store.set("k", entry(started), NOW)
        CountingConnection.sent.clear()
        for _ in range(5):
            hit = store.get("k", NOW)
            assert hit is not None and hit.entry.value == "v"
        assert sum(CountingConnection.sent.values()) == 0
    finally:
        store.close()


def test_remote_hit_is_copied_locally(pair: tuple[TwoLevelStore, TwoLevelStore]) -> None:
    a, b = pair
    assert a.set("k", entry(a.begin(["a"])), NOW)
    assert b.local.get("k", NOW) is None
    hit = b.get("k", NOW)
    assert hit is not None and hit.entry.value == "v"
    assert b.local.get("k", NOW) is not None


def test_other_process_invalidation_reaches_local_layer(pair: tuple[TwoLevelStore, TwoLevelStore]) -> None:
    a, b = pair
    assert a.set("k", entry(a.begin(["a", "b"]), tags=("a", "b")), NOW)
    assert b.get("k", NOW) is not None  # now in b's local layer
    seen = b.received
    a.invalidate(["b"])
    wait_until(lambda: b.received > seen)
    assert b.local.get("k", NOW) is None
    assert b.get("k", NOW) is None


def test_invalidate_returns_only_once_other_processes_applied_it(redis_url: str, redis_prefix: str) -> None:
    """Read-after-invalidate across processes: b's listener is held (its local layer's lock taken), so
    a's invalidate waits for b's acknowledgement; once it returns, b has no local copy left."""
    a, b = two_level(redis_url, redis_prefix), two_level(redis_url, redis_prefix)
    a.remote.ack_timeout = 30.0  # far beyond this test: only the acknowledgement can end the wait
    try:
        assert a.set("k", entry(a.begin(["a"])), NOW)
        assert b.get("k", NOW) is not None and b.local.get("k", NOW) is not None
        seen = a.received
        with b.local._lock:  # b's listener blocks when it applies the message
            call = threading.Thread(target=a.invalidate, args=(["a"],))
            call.start()
            wait_until(lambda: a.received > seen)  # a applied (and acknowledged) its own message...
            time.sleep(0.3)  # (longer than b's trust window: b's own pings cannot end a's wait)
            assert call.is_alive()  # ...and still waits for b
        call.join(10)
        assert not call.is_alive()
        assert b.local.get("k", NOW) is None  # no wait_until: already applied when invalidate returned
        assert a.stats()["ack_timeouts"] == 0
    finally:
        a.close()
        b.close()


def test_an_unanswered_acknowledgement_times_out_and_the_silent_reader_stops_trusting_its_copy(
    redis_url: str, redis_prefix: str
) -> None:
    """b's listener hangs: a's invalidation returns after its ack timeout (counted), and by then b no
    longer answers from its local layer (its trust window, <= a's ack timeout, has run out)."""
    a = two_level(redis_url, redis_prefix)
    b = TwoLevelStore(
        RedisStore(redis_url, prefix=redis_prefix, socket_timeout=5, connect_timeout=5, ack_timeout=0.1),
        resubscribe_interval=0.05,
        trust_window=0.1,
    )
    a.remote.ack_timeout = 0.1
    try:
        assert b.wait_subscribed(10)
        assert a.set("k", entry(a.begin(["a"])), NOW)
        assert b.get("k", NOW) is not None and b.local.get("k", NOW) is not None
        with b.local._lock:  # b never answers in time
            a.invalidate(["a"])
            assert not b._trusted()  # b.get would go to Redis now, not to its stale local copy
        assert a.stats()["ack_timeouts"] == 1
        assert b.get("k", NOW) is None
    finally:
        a.close()
        b.close()


def test_soft_invalidation_and_delete_propagate(pair: tuple[TwoLevelStore, TwoLevelStore]) -> None:
    a, b = pair
    assert a.set("k", entry(a.begin(["a"])), NOW)
    assert b.get("k", NOW) is not None
    seen = b.received
    a.invalidate(["a"], soft=True)
    wait_until(lambda: b.received > seen)
    hit = b.get("k", NOW)
    assert hit is not None and hit.soft_invalidated
    # the refresh after a soft invalidation is stored and served as fresh again
    assert a.set("k", entry(a.begin(["a"]), "v2"), NOW)
    assert b.get("k", NOW) is not None
    seen = b.received
    a.delete("k")
    wait_until(lambda: b.received > seen)
    assert b.local.get("k", NOW) is None


def test_clear_elsewhere_flushes_local(pair: tuple[TwoLevelStore, TwoLevelStore]) -> None:
    a, b = pair
    assert a.set("k", entry(a.begin(["a"])), NOW)
    assert b.get("k", NOW) is not None
    seen = b.received
    a.clear()
    wait_until(lambda: b.received > seen)
    assert b.get("k", NOW) is None


def test_copy_in_flight_is_refused_by_a_concurrent_invalidation(
    pair: tuple[TwoLevelStore, TwoLevelStore],
) -> None:
    """b reads from Redis; the invalidation is applied locally before b stores its local copy."""
    a, b = pair
    assert a.set("k", entry(a.begin(["a"])), NOW)
    real_get = b.remote.get

    def get_then_invalidate(key: str, now: float) -> Any:
        hit = real_get(key, now)  # valid when read...
        seen = b.received
        a.invalidate(["a"])  # ...invalidated before b copies it
        wait_until(lambda: b.received > seen)
        return hit

    b.remote.get = get_then_invalidate  # type: ignore[method-assign]
    assert b.get("k", NOW) is not None  # the read itself happened before the invalidation
    b.remote.get = real_get  # type: ignore[method-assign]
    assert b.local.get("k", NOW) is None
    assert b.get("k", NOW) is None


def test_own_invalidation_is_local_at_once(redis_url: str, redis_prefix: str) -> None:
    store = two_level(redis_url, redis_prefix)
    try:
        assert store.set("k", entry(store.begin(["a"])), NOW)
        assert store.get("k", NOW) is not None
        store.invalidate(["a"])
        assert store.get("k", NOW) is None  # no waiting for the pub/sub echo
    finally:
        store.close()


def test_lost_subscription_flushes_and_bypasses(private_redis: RedisServer) -> None:
    writer = RedisStore(private_redis.url, prefix="p:", socket_timeout=5, connect_timeout=5)
    # The fresh server's first script call publishes a global invalidation (NOSCRIPT recovery): made
    # here, before anyone listens, it cannot land in the middle of the read below and refuse its copy.
    started = writer.begin(["a"])
    store = TwoLevelStore(
        RedisStore(private_redis.url, prefix="p:", socket_timeout=5, connect_timeout=5),
        resubscribe_interval=0.05,
    )
    try:
        assert store.wait_subscribed(10)
        assert writer.set("k", entry(started), NOW)
        assert store.get("k", NOW) is not None
        assert store.local.stats()["entries"] == 1
        writer.client.client_kill_filter(_type="pubsub")  # the subscription's connection dies
        wait_until(lambda: store.subscription_losses == 1)
        writer.invalidate(["a"])  # nobody hears this message
        assert store.get("k", NOW) is None  # flushed and bypassed, or flushed again on resubscribe
        assert store.wait_subscribed(10)
        assert store.get("k", NOW) is None
        assert writer.set("k", entry(writer.begin(["a"]), "v2"), NOW)
        hit = store.get("k", NOW)
        assert hit is not None and hit.entry.value == "v2"
        assert store.stats()["subscribed"] is True
    finally:
        store.close()
        writer.close()


def test_redis_killed_local_layer_is_not_served(private_redis: RedisServer) -> None:
    remote = RedisStore(
        private_redis.url,
        prefix="p:",
        socket_timeout=2,  # a killed server refuses at once: no short timeout needed
        connect_timeout=2,
        breaker=CircuitBreaker(failure_threshold=1, reset_timeout=60),
    )
    store = TwoLevelStore(remote, resubscribe_interval=0.05)
    try:
        assert store.wait_subscribed(10)
        assert store.set("k", entry(store.begin(["a"])), NOW)
        assert store.get("k", NOW) is not None
        private_redis.stop()
        wait_until(lambda: not store.subscribed)
        assert store.local.stats()["entries"] == 0
        with pytest.raises(StoreUnavailableError):
            store.get("k", NOW)  # bypass: Redis is down, so a miss for TagCache, never the local copy
        assert store.stats()["breaker_state"] == "open"
        private_redis.restart()
        assert store.wait_subscribed(10)
    finally:
        store.close()


def test_malformed_channel_messages_are_ignored(redis_url: str, redis_prefix: str) -> None:
    store = two_level(redis_url, redis_prefix)
    try:
        assert store.set("k", entry(store.begin(["a"])), NOW)
        assert store.get("k", NOW) is not None
        for junk in (b"\xff\xfe", b"[1,2]", b"42", b'{"t": "a"}'):
            store.remote.client.publish(store.remote.channel, junk)
        seen = store.received
        store.remote.client.publish(store.remote.channel, b'{"t": ["zzz"]}')
        wait_until(lambda: store.received > seen)
        assert store.subscribed
        assert store.get("k", NOW) is not None
    finally:
        store.close()


def test_local_layer_is_bounded(redis_url: str, redis_prefix: str) -> None:
    remote = RedisStore(redis_url, prefix=redis_prefix, socket_timeout=5, connect_timeout=5)
    store = TwoLevelStore(remote, local=MemoryStore(max_entries=3))
    try:
        assert store.wait_subscribed(10)
        started = store.begin(["a"])
        for i in range(10):
            assert store.set(f"k{i}", entry(started), NOW)
        assert store.local.stats()["entries"] == 3
        assert all(store.get(f"k{i}", NOW) is not None for i in range(10))  # the rest from Redis
    finally:
        store.close()

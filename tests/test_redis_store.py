"""RedisStore specifics (the shared contract suite covers the semantics): one round trip per read,
TTL on every key, one hash-tag namespace, NOSCRIPT recovery, eviction safety, RESP2 and RESP3."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from support import RedisServer, counting_connection_class

from etagkit import ConfigurationError
from etagkit.cache._store import GLOBAL_TAG, Entry, SetResult
from etagkit.cache.redis import RedisStore, namespace_for

pytestmark = pytest.mark.redis

NOW = 1_800_000_000.0
CountingConnection: Any = counting_connection_class()


def entry(started: int, value: Any = "v", tags: tuple[str, ...] = ("a", "b")) -> Entry:
    return Entry(value, tags, started, NOW + 10, NOW + 20, NOW + 30, delta=0.25)


@pytest.fixture
def store(redis_url: str, redis_prefix: str) -> Iterator[RedisStore]:
    # generous timeouts: the shared Redis answers late on a busy machine (faults: test_redis_faults.py)
    s = RedisStore(redis_url, prefix=redis_prefix, socket_timeout=5, connect_timeout=5)
    yield s
    s.close()


def test_a_read_is_one_command(redis_url: str, redis_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url, connection_class=CountingConnection)
    store = RedisStore(client, prefix=redis_prefix)
    started = store.begin(["a", "b"])
    assert store.set("k", entry(started), NOW)
    assert store.get("k", NOW) is not None  # warm: the scripts are loaded (NOSCRIPT -> SCRIPT LOAD)
    store.invalidate(["unrelated"])
    CountingConnection.sent.clear()
    for _ in range(10):
        assert store.get("k", NOW) is not None
    assert store.get("absent", NOW) is None
    assert CountingConnection.sent == Counter({"EVALSHA": 11})
    CountingConnection.sent.clear()
    store.invalidate(["a", "b"])
    assert CountingConnection.sent == Counter({"EVALSHA": 1})
    client.close()


def test_value_and_entry_fields_round_trip(store: RedisStore) -> None:
    started = store.begin(["a", "b"])
    value = {"rows": [(1, "x", b"\x00\xff"), (2, None, b"")], "n": 2, "ok": False}
    original = entry(started, value)
    assert store.set("k", original, NOW)
    hit = store.get("k", NOW)
    assert hit is not None and not hit.soft_invalidated
    assert hit.entry == original
    assert hit.entry.size > 0


def test_every_key_has_a_ttl_and_shares_one_hash_tag(store: RedisStore, redis_prefix: str) -> None:
    started = store.begin(["a"])
    store.set("k", entry(started, tags=("a", "late")), NOW)  # refused: "late" had no mark
    assert store.set("k", entry(started, tags=("a", "late")), NOW)
    store.invalidate(["other"], soft=True)
    client = store.client
    keys = list(client.scan_iter(match="{" + redis_prefix + "}*"))
    assert len(keys) >= 6  # clock, global mark, 3 tag marks, the entry
    for key in keys:
        assert key.startswith(b"{" + redis_prefix.encode() + b"}")
        assert client.pttl(key) > 0, key
    entry_ttl = client.pttl("{" + redis_prefix + "}e:k")
    assert 0 < entry_ttl <= 30_000  # until error_until - now
    # a mark outlives the entries carrying it by the margin (1 h), not by days (issue 13)
    assert entry_ttl < client.pttl("{" + redis_prefix + "}h:a") <= 30_000 + 3600 * 1000


def test_namespace_is_one_cluster_slot() -> None:
    assert namespace_for("etagkit:") == "{etagkit:}"
    assert namespace_for("app:{users}:") == "app:{users}:"
    assert namespace_for("odd{}") == "{odd{}}"


def test_evicted_mark_means_invalidated(store: RedisStore, redis_prefix: str) -> None:
    started = store.begin(["a", "b"])
    assert store.set("k", entry(started), NOW)
    store.client.delete("{" + redis_prefix + "}h:b")  # what allkeys-lru may do
    assert store.get("k", NOW) is None
    store.client.delete("{" + redis_prefix + "}h:" + GLOBAL_TAG)
    assert store.set("k", entry(store.begin(["a", "b"])), NOW)


def test_evicted_clock_restarts_above_every_old_value(store: RedisStore, redis_prefix: str) -> None:
    started = store.begin(["a"])
    for _ in range(50):
        store.invalidate(["a"])
    before = store.begin(["a"])
    assert before > started
    store.client.delete("{" + redis_prefix + "}c")
    after = store.begin(["a"])
    assert after >= before
    store.invalidate(["a"])
    assert store.set("k", entry(after, tags=("a",)), NOW) is SetResult.REFUSED


def test_expired_or_late_writes(store: RedisStore) -> None:
    started = store.begin(["a", "b"])
    assert store.set("k", entry(started), NOW + 30) is SetResult.NOT_STORED  # past error_until
    assert store.set("k", entry(started), NOW)
    assert store.get("k", NOW + 29.9) is not None
    assert store.get("k", NOW + 30) is None


def test_noscript_invalidates_everything_once_then_works(private_redis: RedisServer) -> None:
    """SCRIPT FLUSH looks like a restart (the script cache is never persisted): the next call first
    invalidates everything, loads every script, and goes on; later calls do not invalidate again.
    On a private server: flushing the shared one's script cache would disturb other tests."""
    store = RedisStore(private_redis.url, prefix="p:", socket_timeout=2, connect_timeout=2)
    assert store.set("k", entry(store.begin(["a", "b"])), NOW)
    first_use = store.stats()["redis_restarts_detected"]  # a fresh server had no scripts either
    store.client.script_flush()
    assert store.get("k", NOW) is None
    assert store.stats()["redis_restarts_detected"] == first_use + 1
    assert store.set("k", entry(store.begin(["a", "b"])), NOW) is SetResult.STORED
    assert store.get("k", NOW) is not None
    store.invalidate(["a"])
    assert store.get("k", NOW) is None
    assert store.stats()["redis_restarts_detected"] == first_use + 1
    store.close()


def test_a_first_start_on_an_empty_redis_is_no_warning_but_a_flush_with_data_is(
    private_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A fresh server has no scripts either: invalidating an empty namespace loses nothing, so it is
    logged at INFO; a NOSCRIPT while the namespace holds data (a restart, a flush) stays a WARNING."""
    store = RedisStore(private_redis.url, prefix="p:", socket_timeout=2, connect_timeout=2)

    def noscript_levels() -> list[int]:
        return [r.levelno for r in caplog.records if "has no etagkit scripts" in r.getMessage()]

    with caplog.at_level(logging.INFO, logger="etagkit.cache.redis"):
        assert store.set("k", entry(store.begin(["a", "b"])), NOW)
        assert noscript_levels() == [logging.INFO]
        caplog.clear()
        store.client.script_flush()
        assert store.get("k", NOW) is None
        assert noscript_levels() == [logging.WARNING]
    store.close()


def test_invalidations_are_published_and_wait_for_acknowledgements(redis_url: str, redis_prefix: str) -> None:
    """A plain RedisStore's invalidation is published, and returns only once every subscriber that
    received it acknowledged it on the store's ack channel (what a two-level listener does)."""
    import json
    import threading

    store = RedisStore(redis_url, prefix=redis_prefix, socket_timeout=5, connect_timeout=5, ack_timeout=30)
    pubsub = store.client.pubsub()
    pubsub.subscribe(store.channel)
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"  # type: ignore[index]
    done = threading.Event()
    worker = threading.Thread(target=lambda: (store.invalidate(["a", "b"], soft=True), done.set()))
    worker.start()
    message = pubsub.get_message(timeout=5)
    assert message is not None
    payload = json.loads(message["data"])
    # the clock travels as a string: cjson would round a 16-digit number
    assert payload == {"f": "s", "t": ["a", "b"], "c": payload["c"], "o": store.id}
    assert not done.wait(0.2)  # still waiting for this subscriber's acknowledgement
    store.client.publish(store.ack_channel(store.id), payload["c"])
    worker.join(10)
    assert done.is_set() and store.stats()["ack_timeouts"] == 0
    store.delete("k")
    deleted = pubsub.get_message(timeout=5)
    assert deleted is not None and json.loads(deleted["data"]) == {"k": "k"}
    pubsub.close()
    assert store.ack_channel("me") == store.namespace + "ack:me"
    store.close()


@pytest.mark.parametrize(
    "options",
    [
        {"prefix": ""},
        {"socket_timeout": 0},
        {"socket_timeout": -1},
        {"connect_timeout": 0},
        {"connect_timeout": "1"},
        {"mark_margin": 0},
        {"ack_timeout": -1},
        {"retry_interval": 0},
    ],
)
def test_bad_settings_raise_configuration_error_at_construction(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match=next(iter(options))):
        RedisStore("redis://127.0.0.1:1/0", **options)  # no connection is made at construction


def test_an_empty_prefix_has_no_namespace() -> None:
    """``{}`` is an empty hash tag, which Redis Cluster ignores: keys would spread over slots."""
    with pytest.raises(ConfigurationError):
        namespace_for("")


def test_decode_responses_client_is_refused(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    with pytest.raises(ConfigurationError):
        RedisStore(client)
    client.close()


@pytest.mark.parametrize("protocol", [2, 3])
def test_both_resp_protocols(redis_url: str, redis_prefix: str, protocol: int) -> None:
    client = redis.Redis.from_url(redis_url, protocol=protocol)
    store = RedisStore(client, prefix=redis_prefix)
    started = store.begin(["a"])
    assert store.set("k", entry(started, value=[b"\x00", 1.5], tags=("a",)), NOW)
    hit = store.get("k", NOW)
    assert hit is not None and hit.entry.value == [b"\x00", 1.5]
    store.invalidate(["a"], soft=True)
    hit = store.get("k", NOW)
    assert hit is not None and hit.soft_invalidated
    client.close()


def test_works_under_allkeys_lru(start_redis: Callable[..., RedisServer]) -> None:
    """A tiny maxmemory with allkeys-lru evicts entries and marks; reads stay misses, never stale."""
    srv = start_redis("--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lru")
    store = RedisStore(srv.url, prefix="lru:", socket_timeout=2, connect_timeout=2)
    big = "x" * 2000
    for i in range(3000):
        started = store.begin([f"t{i}"])
        store.set(f"k{i}", entry(started, big, tags=(f"t{i}",)), NOW)
        if i % 7 == 0:
            store.invalidate([f"t{i}"])
    for i in range(0, 3000, 7):
        assert store.get(f"k{i}", NOW) is None
    assert store.client.info("stats")["evicted_keys"] > 0
    store.close()


def test_hybrid_clock_tracks_server_time(store: RedisStore) -> None:
    clock = store.begin([])
    assert abs(clock / 1e6 - time.time()) < 3600  # microseconds of the server's wall clock


def test_close_leaves_a_client_passed_in_to_its_owner(redis_url: str, redis_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    before = client.client_id()
    store = RedisStore(client, prefix=redis_prefix)
    assert store.get("k", NOW) is None
    store.close()
    assert client.client_id() == before  # same connection: the store did not disconnect it
    client.close()


def test_close_disconnects_a_client_built_from_a_url(redis_url: str, redis_prefix: str) -> None:
    store = RedisStore(redis_url, prefix=redis_prefix, socket_timeout=5, connect_timeout=5)
    before = store.client.client_id()
    store.close()
    assert store.client.client_id() != before  # its pool was disconnected: a new connection now
    store.client.close()


def test_marks_never_outlive_what_they_protect_by_more_than_the_margin(
    redis_url: str, redis_prefix: str
) -> None:
    """Issue 13: every unknown Host created a path-tag mark living 7 days. A mark now lives the
    margin past the longest entry that carries it (a missing mark reads as invalidated: safe)."""
    store = RedisStore(redis_url, prefix=redis_prefix, mark_margin=60)
    client = store.client
    mark = "{" + redis_prefix + "}h:"
    try:
        store.begin(["host:unknown.example"])  # a tag that no entry will ever carry
        assert 0 < client.pttl(mark + "host:unknown.example") <= 60_000
        store.invalidate(["gone"])
        assert 0 < client.pttl(mark + "gone") <= 60_000
        long_lived = Entry("v", ("a",), store.begin(["a"]), NOW + 500, NOW + 600, NOW + 1000)
        assert store.set("k", long_lived, NOW)
        assert 1000_000 < client.pttl(mark + "a") <= 1060_000  # the entry's 1000 s + the margin
        short = Entry("v", ("a",), store.begin(["a"]), NOW + 1, NOW + 1, NOW + 1)
        assert store.set("k2", short, NOW)
        assert client.pttl(mark + "a") > 1000_000  # never shortened by a shorter entry
        hours_ago = [k for k in client.scan_iter(match=mark + "*") if client.pttl(k) > 1060_000]
        assert hours_ago == []
    finally:
        store.close()


# -- distributed single-flight: leases ------------------------------------------------------------


def test_a_crashed_leader_blocks_nobody_past_its_lease(redis_url: str, redis_prefix: str) -> None:
    """Another process took the compute lease of "k" and died (never wrote, never released): a
    caller waits at most the lease's TTL, then computes itself (and the lease expired in Redis)."""
    from etagkit.cache import TagCache

    crashed = RedisStore(redis_url, prefix=redis_prefix, socket_timeout=5, connect_timeout=5)
    assert crashed.acquire_lease("k", 0.3) is not None
    crashed.close()  # gone, without releasing
    store = RedisStore(redis_url, prefix=redis_prefix, socket_timeout=5, connect_timeout=5)
    cache = TagCache(store, lease=0.3)
    calls: list[int] = []
    assert cache.get_or_set("k", lambda: calls.append(1) or "mine", tags=["t"]) == "mine"
    assert calls == [1]
    assert cache.get_or_set("k", lambda: "again", tags=["t"]) == "mine"  # and it was stored
    assert not store.lease_held("k")  # released after the write
    store.close()


def test_a_leader_that_gives_up_without_a_value_hands_the_compute_on(
    redis_url: str, redis_prefix: str
) -> None:
    """The lease is released without an entry (the leader's write was refused, or it raised): a
    waiter does not wait out the TTL; it takes the lease and computes."""
    import threading

    from etagkit.cache import TagCache

    other = RedisStore(redis_url, prefix=redis_prefix, socket_timeout=5, connect_timeout=5)
    token = other.acquire_lease("k", 30.0)  # far beyond this test: only the release can end the wait
    assert token is not None
    store = RedisStore(redis_url, prefix=redis_prefix, socket_timeout=5, connect_timeout=5)
    cache = TagCache(store, lease=30.0)
    result: list[str] = []
    waiter = threading.Thread(
        target=lambda: result.append(cache.get_or_set("k", lambda: "computed", tags=["t"]))
    )
    waiter.start()
    time.sleep(0.1)
    assert waiter.is_alive()  # waiting for the other process
    other.release_lease("k", token)
    waiter.join(20)
    assert result == ["computed"]
    other.close()
    store.close()


def test_a_waiter_takes_the_value_another_process_computed(redis_url: str, redis_prefix: str) -> None:
    import threading

    from etagkit.cache import TagCache

    other = RedisStore(redis_url, prefix=redis_prefix, socket_timeout=5, connect_timeout=5)
    other_cache = TagCache(other)
    token = other.acquire_lease("k", 30.0)
    assert token is not None
    store = RedisStore(redis_url, prefix=redis_prefix, socket_timeout=5, connect_timeout=5)
    cache = TagCache(store, lease=30.0)
    calls: list[int] = []
    result: list[str] = []
    waiter = threading.Thread(
        target=lambda: result.append(cache.get_or_set("k", lambda: calls.append(1) or "mine", tags=["t"]))
    )
    waiter.start()
    time.sleep(0.1)
    assert other_cache.set("k", "theirs", ticket=other_cache.begin(["t"]))  # the other process's compute
    other.release_lease("k", token)
    waiter.join(20)
    assert result == ["theirs"] and calls == []
    other.close()
    store.close()


def test_the_async_face_waits_for_another_process_holding_the_lease(
    redis_url: str, redis_prefix: str
) -> None:
    import asyncio
    import threading

    from etagkit.cache import TagCache

    other = RedisStore(redis_url, prefix=redis_prefix, socket_timeout=5, connect_timeout=5)
    other_cache = TagCache(other)
    token = other.acquire_lease("k", 30.0)
    assert token is not None
    store = RedisStore(redis_url, prefix=redis_prefix, socket_timeout=5, connect_timeout=5)
    cache = TagCache(store, lease=30.0)
    computed: list[int] = []

    async def mine() -> str:
        computed.append(1)
        return "mine"

    def the_other_process_finishes() -> None:
        time.sleep(0.1)
        assert other_cache.set("k", "theirs", ticket=other_cache.begin(["t"]))
        other.release_lease("k", token)

    finisher = threading.Thread(target=the_other_process_finishes)
    finisher.start()
    assert asyncio.run(cache.aget_or_set("k", mine, tags=["t"])) == "theirs"
    finisher.join(10)
    assert computed == []
    other.close()
    store.close()


def test_the_lease_costs_no_round_trip_on_a_hit(private_redis: RedisServer) -> None:
    """Distributed single-flight is on by default because a hit never touches the lease: one
    EVALSHA per hit, as without it. A miss takes it (SET NX) and gives it back (one script)."""
    from etagkit.cache import TagCache

    client = redis.Redis.from_url(private_redis.url, connection_class=CountingConnection)
    cache = TagCache(RedisStore(client, prefix="lease:"), lease=10.0)
    assert cache.get_or_set("k", lambda: "v", tags=["t"]) == "v"  # warm: scripts loaded, stored
    CountingConnection.sent.clear()
    for _ in range(10):
        assert cache.get_or_set("k", lambda: "other", tags=["t"]) == "v"
    assert CountingConnection.sent == Counter({"EVALSHA": 10})
    CountingConnection.sent.clear()
    assert cache.get_or_set("cold", lambda: "v", tags=["t"]) == "v"
    # read, lease (SET NX), begin, write, release
    assert CountingConnection.sent == Counter({"EVALSHA": 4, "SET": 1})
    client.close()

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
    assert client.pttl("{" + redis_prefix + "}h:a") > 24 * 3600 * 1000  # marks: the long mark_ttl


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


def test_invalidations_are_published(store: RedisStore) -> None:
    pubsub = store.client.pubsub()
    pubsub.subscribe(store.channel)
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"  # type: ignore[index]
    clock, receivers = store.invalidate_published(["a", "b"], soft=True, origin="me")
    store.delete("k")
    messages = [pubsub.get_message(timeout=5) for _ in range(2)]
    pubsub.close()
    import json

    payloads = [json.loads(m["data"]) for m in messages if m]
    # the clock travels as a string: cjson would round a 16-digit number
    assert payloads == [{"f": "s", "t": ["a", "b"], "c": str(clock), "o": "me"}, {"k": "k"}]
    assert receivers == 1
    assert store.ack_channel("me") == store.namespace + "ack:me"


@pytest.mark.parametrize(
    "options",
    [
        {"prefix": ""},
        {"socket_timeout": 0},
        {"socket_timeout": -1},
        {"connect_timeout": 0},
        {"connect_timeout": "1"},
        {"mark_ttl": 0},
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

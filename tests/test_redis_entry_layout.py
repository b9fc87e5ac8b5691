"""RedisStore's entry layout (``_redis_lua._GET_LUA``): soft marks are read only after a soft
invalidation newer than the entry, yet every soft invalidation (from any process, on any shard) is
seen; an entry of the previous layout (a JSON mark list) is a miss."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
import redis
from support import counting_connection_class

from etagkit.cache._store import Entry, SetResult
from etagkit.cache.redis import RedisStore

pytestmark = pytest.mark.redis

NOW = 1_800_000_000.0
CountingConnection: Any = counting_connection_class()


def entry(started: int, value: Any = "v", tags: tuple[str, ...] = ("a", "b")) -> Entry:
    return Entry(value, tags, started, NOW + 10, NOW + 20, NOW + 30)


def make(redis_url: str, prefix: str, **options: Any) -> RedisStore:
    return RedisStore(redis_url, prefix=prefix, socket_timeout=5, connect_timeout=5, **options)


@pytest.mark.parametrize("shards", [1, 4])
def test_a_soft_invalidation_by_another_process_is_seen_on_every_shard(
    redis_url: str, redis_prefix: str, shards: int
) -> None:
    reader = make(redis_url, redis_prefix, shards=shards)
    writer = make(redis_url, redis_prefix, shards=shards)
    keys = [f"k{i}" for i in range(12)]  # spread over the shards
    started = reader.begin(["a", "b", "c"])
    for key in keys:
        assert reader.set(key, entry(started), NOW) is SetResult.STORED
        assert reader.set(key + "c", entry(started, tags=("c",)), NOW) is SetResult.STORED
    writer.invalidate(["b"], soft=True)
    for key in keys:
        hit = reader.get(key, NOW)
        assert hit is not None and hit.soft_invalidated, key
        other = reader.get(key + "c", NOW)  # older than the soft mark, but not carrying "b": clean
        assert other is not None and not other.soft_invalidated, key
    fresh = reader.begin(["a", "b"])  # begun after the soft invalidation: clean again
    assert reader.set("k0", entry(fresh, "new"), NOW) is SetResult.STORED
    hit = reader.get("k0", NOW)
    assert hit is not None and not hit.soft_invalidated and hit.entry.value == "new"
    writer.invalidate(["b"])  # hard after soft: gone
    assert reader.get("k1", NOW) is None
    assert reader.get("k1c", NOW) is not None
    reader.close()
    writer.close()


def test_a_read_after_a_soft_invalidation_is_still_one_command(redis_url: str, redis_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url, connection_class=CountingConnection)
    store = RedisStore(client, prefix=redis_prefix)
    started = store.begin(["a", "b"])
    assert store.set("k", entry(started), NOW) is SetResult.STORED
    store.invalidate(["unrelated"], soft=True)  # newer than the entry: its soft marks are read
    assert store.get("k", NOW) is not None  # warm
    CountingConnection.sent.clear()
    hit = store.get("k", NOW)
    assert hit is not None and not hit.soft_invalidated
    assert CountingConnection.sent == Counter({"EVALSHA": 1})
    client.close()


def test_an_entry_of_the_previous_layout_is_a_miss_then_replaced(redis_url: str, redis_prefix: str) -> None:
    store = make(redis_url, redis_prefix)
    started = store.begin(["a"])
    assert store.set("k", entry(started, tags=("a",)), NOW) is SetResult.STORED
    key = store.namespace + "e:k"
    record = store.client.hget(key, "d")
    marks = [store.namespace + p + t for p in ("h:", "s:") for t in ("a", "*")]
    store.client.delete(key)
    store.client.hset(key, mapping={"d": record, "k": json.dumps(marks), "s": started})  # as before
    assert store.client.hget(key, "d") == record
    assert store.get("k", NOW) is None  # the same record and valid marks: still a miss
    assert store.set("k", entry(store.begin(["a"]), "new", tags=("a",)), NOW) is SetResult.STORED
    hit = store.get("k", NOW)
    assert hit is not None and hit.entry.value == "new"
    assert store.client.hget(key, "k") is None
    store.close()


def test_mark_keys_with_any_characters(redis_url: str, redis_prefix: str) -> None:
    """Tags are any strings: separators, quotes, NUL, non-ASCII, long ones; keys are packed as they are."""
    store = make(redis_url, redis_prefix)
    tags = ("a,b", 'q"\\', "nul\x00x", "é ü 字", "x" * 300, "\n\t")
    started = store.begin(tags)
    assert store.set("k", entry(started, tags=tags), NOW) is SetResult.STORED
    hit = store.get("k", NOW)
    assert hit is not None and hit.entry.tags == tags
    store.invalidate(["é ü 字"], soft=True)
    hit = store.get("k", NOW)
    assert hit is not None and hit.soft_invalidated
    store.invalidate(["nul\x00x"])
    assert store.get("k", NOW) is None
    store.close()

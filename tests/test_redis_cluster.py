"""RedisStore on a local three-master Redis Cluster. By default a namespace spreads over 16 shards
(slots) spread over every master, each with its entries and a copy of the marks, so a read is one
EVALSHA on one node (etagkit/cache/_shards.py); ``shards=1`` keeps a namespace in one slot. The
two-level store hears invalidations over cluster pub/sub. (The contract suite runs here too: the
``cluster`` kind of ``make_store``.)"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from redis.cluster import ClusterNode, RedisCluster
from support import LocalRedisCluster

from etagkit.cache import TagCache
from etagkit.cache._store import Entry, SetResult
from etagkit.cache.redis import RedisStore, store_from_url
from etagkit.cache.twolevel import TwoLevelStore

pytestmark = [pytest.mark.redis, pytest.mark.cluster]

NOW = 1_800_000_000.0


def entry(started: int, value: Any = "v", tags: tuple[str, ...] = ("a", "b")) -> Entry:
    return Entry(value, tags, started, NOW + 10, NOW + 20, NOW + 30)


@pytest.fixture
def connect(redis_cluster: LocalRedisCluster) -> Iterator[Callable[..., RedisCluster]]:
    clients: list[RedisCluster] = []

    def make(**kwargs: Any) -> RedisCluster:
        nodes = [ClusterNode(host, port) for host, port in redis_cluster.startup_nodes]
        client = RedisCluster(startup_nodes=nodes, socket_timeout=5, socket_connect_timeout=5, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def test_cluster_has_three_masters(connect: Callable[..., RedisCluster]) -> None:
    assert len(connect().get_primaries()) == 3


def test_one_shard_keeps_a_namespace_in_one_slot(connect: Callable[..., RedisCluster]) -> None:
    client = connect()
    store = RedisStore(client, prefix="slot-test:", shards=1)
    started = store.begin(["a", "b"])
    assert store.set("k1", entry(started), NOW)
    assert store.set("k2", entry(started, tags=("c",)), NOW) is SetResult.REFUSED  # creates c's mark
    store.invalidate(["d"], soft=True)
    keys = [
        k
        for node in client.get_primaries()
        for k in client.scan_iter(match="{slot-test:}*", target_nodes=node)
    ]
    assert len(keys) >= 7  # clock, global mark, marks a b c d, entry k1
    slots = {client.keyslot(key) for key in keys}
    assert slots == {client.keyslot("{slot-test:}")}


def test_an_explicit_hash_tag_in_the_prefix_is_kept(connect: Callable[..., RedisCluster]) -> None:
    client = connect()
    store = RedisStore(client, prefix="app:{tenant-1}:", shards=1)
    assert store.set("k", entry(store.begin(["a", "b"])), NOW)
    assert client.keyslot("app:{tenant-1}:e:k") == client.keyslot("tenant-1")
    assert client.exists("app:{tenant-1}:e:k") == 1


def test_namespaces_spread_over_the_masters(connect: Callable[..., RedisCluster]) -> None:
    client = connect()
    owners = set()
    for n in range(12):
        store = RedisStore(client, prefix=f"tenant{n}:")
        assert store.set("k", entry(store.begin(["a", "b"]), n), NOW)
        hit = store.get("k", NOW)
        assert hit is not None and hit.entry.value == n
        owners.add(client.get_node_from_key(store.namespace + "e:k").name)
    assert len(owners) == 3


def test_a_namespace_spreads_its_entries_over_every_master(connect: Callable[..., RedisCluster]) -> None:
    """Issue 12: one namespace lived in one slot, so a whole app's keys sat on one master."""
    client = connect()
    store = RedisStore(client, prefix=f"spread-{uuid.uuid4().hex[:8]}:")
    started = store.begin(["a", "b"])
    for n in range(300):
        store.set(f"key-{n}", entry(started, n), NOW)  # a shard's first write may be refused...
        assert store.set(f"key-{n}", entry(store.begin(["a", "b"]), n), NOW)  # ...never the next
    per_master: dict[str, int] = {}
    for n in range(300):
        shard = store._shard(f"key-{n}")
        node = client.get_node_from_key(shard.entries + f"key-{n}")
        per_master[node.name] = per_master.get(node.name, 0) + 1
    assert len(per_master) == 3
    assert min(per_master.values()) >= 0.2 * 300, per_master
    for n in range(0, 300, 7):
        hit = store.get(f"key-{n}", NOW)
        assert hit is not None and hit.entry.value == n


def test_a_read_is_one_command_on_one_node(connect: Callable[..., RedisCluster]) -> None:
    """Counted by the servers (INFO commandstats): every read is one EVALSHA, on the node that owns
    its shard, and the reads of one namespace go to several masters."""
    client = connect()
    store = RedisStore(client, prefix=f"count-{uuid.uuid4().hex[:8]}:")
    assert len(store.shards) == 16
    keys = [f"k{n}" for n in range(20)]
    for key in keys:
        store.set(key, entry(store.begin(["a", "b"])), NOW)
        assert store.set(key, entry(store.begin(["a", "b"])), NOW)
        assert store.get(key, NOW) is not None  # warm (scripts loaded on every node)
    client.config_resetstat(target_nodes=RedisCluster.PRIMARIES)
    for key in keys:
        assert store.get(key, NOW) is not None
    stats = {node.name: client.info("commandstats", target_nodes=node) for node in client.get_primaries()}
    calls = {name: {k: v["calls"] for k, v in s.items()} for name, s in stats.items()}
    expected: dict[str, int] = dict.fromkeys(calls, 0)
    for key in keys:
        expected[client.get_node_from_key(store._shard(key).entries + key).name] += 1
    assert {name: c.get("cmdstat_evalsha", 0) for name, c in calls.items()} == expected
    inside = {"cmdstat_evalsha", "cmdstat_hmget", "cmdstat_mget"}  # the script and its own calls
    admin = {"cmdstat_info", "cmdstat_config|resetstat"}
    others = {name: sorted(set(c) - inside - admin) for name, c in calls.items()}
    assert all(not other for other in others.values()), others  # nothing else was sent
    assert sum(1 for n in expected.values() if n) >= 2  # the reads went to several masters


def test_an_invalidation_reaches_every_shard_before_it_returns(connect: Callable[..., RedisCluster]) -> None:
    store = RedisStore(connect(), prefix=f"phases-{uuid.uuid4().hex[:8]}:")
    other = RedisStore(connect(), prefix=store.namespace)  # another process, same namespace
    keys = [f"k{n}" for n in range(40)]
    for key in keys:
        store.set(key, entry(store.begin(["a", "b"])), NOW)
        assert store.set(key, entry(store.begin(["a", "b"])), NOW)
    ticket = other.begin(["a"])  # a compute begins before the invalidation...
    store.invalidate(["b"])
    assert all(other.get(key, NOW) is None for key in keys)  # gone on every shard
    assert all(other.set(key, entry(ticket), NOW) is SetResult.REFUSED for key in keys)  # ...refused
    fresh = other.begin(["a", "b"])
    stored = [other.set(key, entry(fresh, "new"), NOW) for key in keys]
    assert all(stored)  # begun after it: valid on every shard
    store.clear()
    assert all(other.get(key, NOW) is None for key in keys)


def test_race_safety_on_the_cluster(connect: Callable[..., RedisCluster]) -> None:
    store = RedisStore(connect(), prefix="race:")
    cache = TagCache(store, timer=lambda: NOW)
    ticket = cache.begin(["book:1"])  # a compute begins...
    cache.invalidate_tags("book:1")  # ...the book changes meanwhile...
    assert cache.set("book", "old title", ticket=ticket) is False  # ...its result is refused
    assert cache.get("book") is None
    assert cache.get_or_set("book", lambda: "new title", tags=["book:1"]) == "new title"
    cache.invalidate_tags("book:1")
    assert cache.get("book") is None


def test_two_level_over_cluster_pubsub(connect: Callable[..., RedisCluster]) -> None:
    a = TwoLevelStore(RedisStore(connect(), prefix="tl:"), resubscribe_interval=0.05)
    b = TwoLevelStore(RedisStore(connect(), prefix="tl:"), resubscribe_interval=0.05)
    try:
        assert a.wait_subscribed(10) and b.wait_subscribed(10)
        assert a.set("k", entry(a.begin(["a", "b"])), NOW)
        assert b.get("k", NOW) is not None
        assert b.local.get("k", NOW) is not None
        seen = b.received
        a.invalidate(["b"])
        deadline = time.monotonic() + 10
        while b.received == seen and time.monotonic() < deadline:
            time.sleep(0.005)
        assert b.received > seen
        assert b.get("k", NOW) is None
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("scheme", ["redis+cluster", "redis"])
def test_a_cluster_url_or_a_plain_url_to_a_cluster_node_gives_a_cluster_store(
    redis_cluster: LocalRedisCluster, scheme: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 12: a redis:// URL pointing at a cluster node silently became "no cache" (every
    MOVED a store error). Both URLs now build a cluster store (what bookstore --redis uses)."""
    host, port = redis_cluster.startup_nodes[1]
    with caplog.at_level(logging.INFO, logger="etagkit.cache.redis"):
        store = store_from_url(f"{scheme}://{host}:{port}", prefix=f"url-{uuid.uuid4().hex[:8]}:")
    try:
        assert store.is_cluster and len(store.shards) == 16
        if scheme == "redis":
            assert any("is a Redis Cluster node" in r.getMessage() for r in caplog.records)
        cache = TagCache(store, timer=lambda: NOW)
        for n in range(30):
            cache.get_or_set(f"k{n}", lambda n=n: n, tags=["t"])
        assert [cache.get_or_set(f"k{n}", lambda: -1, tags=["t"]) for n in range(30)] == list(range(30))
        assert cache.stats()["store_errors"] == 0
    finally:
        store.close()


def test_a_plain_url_that_does_not_answer_at_start_up_is_reported_in_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="etagkit.cache.redis"):
        store = store_from_url("redis://127.0.0.1:1/0", prefix="nowhere:")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "did not answer at start-up" in lines[0], lines
    assert not store.is_cluster
    store.close()

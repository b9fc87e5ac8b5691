"""RedisStore and TwoLevelStore against their floors (issue 3).

* ``RedisStore.get`` hit on an entry with two tags (one EVALSHA: the entry, its two tags' marks and
  the global mark, checked in Lua; then the record decoded into an ``Entry``) against a raw redis-py
  ``GET`` of the same record bytes on an identically configured client: target <= 1.3x.
* Commands per read, counted on the client's connection: target exactly 1.
* ``TwoLevelStore.get`` local hit against a ``MemoryStore.get`` hit on the same entry: target <= 1.5x.
* ``TagCache.get_or_set`` hit over a RedisStore, against the same raw GET, for information; and with
  the lease (distributed single-flight) on vs off: target <= 1.1x (a hit takes no lease).
* Scale-out in real processes (``_scaleout.py``): computes of a cold key missed by 4 processes, a
  3-master cluster vs one server (reads/s, keys per master).

Needs the Redis at ``ETAGKIT_REDIS_URL`` (default ``redis://127.0.0.1:6379/15``); every key it
writes is under a fresh prefix and deleted afterwards.
Runnable alone: ``python -m benchmarks.bench_cache_redis [--quick]``.
"""

from __future__ import annotations

import collections
import os
import sys
import time
import uuid
from typing import Any

import redis

from benchmarks import _scaleout
from benchmarks._harness import Loop, measure_loops, row
from etagkit.cache import MemoryStore, TagCache
from etagkit.cache._store import Entry
from etagkit.cache.redis import RedisStore
from etagkit.cache.twolevel import TwoLevelStore

KEY = "book:42"
TAGS = ("book:42", "author:7")
VALUE = {"id": 42, "title": "A Tale of Two Caches", "authors": [7], "isbn": b"978-0-00-000000-0"}


class _CountingConnection(redis.Connection):
    sent: collections.Counter[str] = collections.Counter()  # noqa: RUF012 - shared on purpose

    def send_command(self, *args: Any, **kwargs: Any) -> None:
        _CountingConnection.sent[str(args[0]).upper()] += 1
        super().send_command(*args, **kwargs)


def _url() -> str:
    return os.environ.get("ETAGKIT_REDIS_URL", "redis://127.0.0.1:6379/15")


def _client(**kwargs: Any) -> redis.Redis:
    return redis.Redis.from_url(_url(), socket_timeout=5, socket_connect_timeout=5, **kwargs)


def _entry(store: Any, now: float) -> Entry:
    return Entry(VALUE, TAGS, store.begin(TAGS), now + 3600, now + 3600, now + 3600)


def _commands_per_read(prefix: str) -> int:
    client = _client(connection_class=_CountingConnection)
    store = RedisStore(client, prefix=prefix)
    now = time.time()
    store.set(KEY, _entry(store, now), now)
    store.get(KEY, now)  # warm: the script is loaded
    _CountingConnection.sent.clear()
    reads = 100
    for _ in range(reads):
        store.get(KEY, now)
    client.close()
    return sum(_CountingConnection.sent.values()) // reads


def _loops(prefix: str, closers: list[Any]) -> dict[str, Loop]:
    now = time.time()
    store = RedisStore(_client(), prefix=prefix)
    closers.append(store)
    store.set(KEY, _entry(store, now), now)
    record = store.client.hget(store.namespace + "e:" + KEY, "d")
    raw = _client()
    closers.append(raw)
    raw_key = store.namespace + "raw:" + KEY
    raw.set(raw_key, record, ex=3600)

    memory = MemoryStore()
    memory.set(KEY, _entry(memory, now), now)
    two_level = TwoLevelStore(RedisStore(_client(), prefix=prefix))
    closers.append(two_level)
    if not two_level.wait_subscribed(10):
        raise RuntimeError("the two-level store could not subscribe")
    two_level.get(KEY, now)  # copied into its local layer
    cache = TagCache(store, lease=None)
    leased = TagCache(store, lease=10.0)

    def raw_get(n: int) -> None:
        get = raw.get
        for _ in range(n):
            get(raw_key)

    def store_get(n: int) -> None:
        get = store.get
        for _ in range(n):
            get(KEY, now)

    def memory_get(n: int) -> None:
        get = memory.get
        for _ in range(n):
            get(KEY, now)

    def two_level_get(n: int) -> None:
        get = two_level.get
        for _ in range(n):
            get(KEY, now)

    def get_or_set(n: int) -> None:
        compute = dict
        for _ in range(n):
            cache.get_or_set(KEY, compute, tags=TAGS)

    def get_or_set_leased(n: int) -> None:
        compute = dict
        for _ in range(n):
            leased.get_or_set(KEY, compute, tags=TAGS)

    return {
        "get_or_set_leased": get_or_set_leased,
        "raw": raw_get,
        "store": store_get,
        "memory": memory_get,
        "two_level": two_level_get,
        "get_or_set": get_or_set,
    }


def _cleanup(prefix: str) -> None:
    client = _client()
    try:
        keys = list(client.scan_iter(match="{" + prefix + "}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def run(quick: bool) -> list[dict[str, Any]]:
    """Rows in the runner's format (``benchmarks/_harness.py``)."""
    prefix = f"etagkit-bench:{uuid.uuid4().hex[:12]}:"
    closers: list[Any] = []
    try:
        commands = _commands_per_read(prefix)
        loops = _loops(prefix, closers)
        # a Redis round trip waits on a socket: wall time; the local layer's hit is in-process work
        remote = measure_loops(
            {name: loops[name] for name in ("raw", "store", "get_or_set")}, quick, clock="wall"
        )
        local = measure_loops({name: loops[name] for name in ("memory", "two_level")}, quick)
        lease = measure_loops(
            {name: loops[name] for name in ("get_or_set", "get_or_set_leased")}, quick, clock="wall"
        )
    finally:
        for closer in closers:
            closer.close()
        _cleanup(prefix)
    raw_get = "redis-py GET of the same bytes"
    return [
        row("RedisStore.get hit, 2 tags", remote["store"], raw_get, remote["raw"], target="<= 1.3x"),
        {
            "scenario": "RedisStore.get: commands per read",
            "etagkit_s": float(commands),
            "baseline": "1 command",
            "baseline_s": 1.0,
            "ratio": float(commands),
            "target": "commands per read: 1",
            "met": commands == 1,
            "unit": "commands",
            "note": "counted on the client connection",
        },
        row(
            "TwoLevelStore.get local hit, 2 tags",
            local["two_level"],
            "MemoryStore.get hit",
            local["memory"],
            target="<= 1.5x",
        ),
        row("TagCache.get_or_set hit over RedisStore", remote["get_or_set"], raw_get, remote["raw"]),
        row(
            "get_or_set hit over RedisStore, lease on",
            lease["get_or_set_leased"],
            "the same with the lease off",
            lease["get_or_set"],
            target="<= 1.1x",
        ),
        *_scaleout.run(quick),
    ]


def main() -> None:
    for result in run("--quick" in sys.argv[1:]):
        scale = 1.0 if "met" in result else 1e6
        unit = "" if "met" in result else "us"
        ours, theirs = result["etagkit_s"] * scale, result["baseline_s"] * scale
        print(
            f"{result['scenario']:<42} {ours:9.2f} {unit:<2} vs {result['baseline']:<32}"
            f" {theirs:9.2f} {unit:<2} ratio {result['ratio']:5.2f}  target {result['target'] or '-'}"
        )


if __name__ == "__main__":
    main()

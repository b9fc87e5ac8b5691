"""RedisStore under faults, on a private redis-server the test kills, pauses or poisons: the app
keeps answering (misses, skipped writes, never an exception), the breaker opens and closes again, and
nothing written before an outage with a lost invalidation is ever served afterwards."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import RedisServer, counting_connection_class

from etagkit import StoreUnavailableError
from etagkit.cache import TagCache
from etagkit.cache._serialize import Codec
from etagkit.cache._store import Entry, SetResult
from etagkit.cache.breaker import CircuitBreaker
from etagkit.cache.redis import _SCRIPTS, RedisStore

pytestmark = pytest.mark.redis

NOW = 1_800_000_000.0
CountingConnection: Any = counting_connection_class()


def packed(*keys: str) -> bytes:
    """An entry's mark-key field: concatenated MessagePack strings (``_redis_lua._GET_LUA``)."""
    return b"".join(msgpack.packb(key) for key in keys)


# the mark fields of an entry without tags (namespace "{f:}"): hard marks and the latest soft mark; soft
GLOBAL_MARKS = {"m": packed("{f:}h:*", "{f:}s"), "o": packed("{f:}s:*")}


class FakeTimer:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def entry(started: int, value: Any = "v", tags: tuple[str, ...] = ("a",)) -> Entry:
    return Entry(value, tags, started, NOW + 10, NOW + 20, NOW + 30)


def make_store(url: str, timer: FakeTimer, *, timeout: float = 2.0, **kwargs: Any) -> RedisStore:
    """A store on a private server. Its timeouts are generous unless a test stalls the server (a killed
    one refuses at once): a busy machine must not turn a slow answer into a fault the test did not make."""
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout=5, timer=timer)
    return RedisStore(
        url, prefix="f:", socket_timeout=timeout, connect_timeout=timeout, breaker=breaker, **kwargs
    )


def load_scripts(url: str) -> None:
    """Load etagkit's scripts into a restarted server, as if it had kept its script cache: then only
    the owed global invalidation (not the NOSCRIPT one) can hide what was written before."""
    client = redis.Redis.from_url(url)
    for script in _SCRIPTS:
        client.script_load(script.source)
    client.close()


@pytest.fixture
def durable_redis(start_redis: Callable[..., RedisServer]) -> RedisServer:
    """A private server whose data survives a SIGKILL (AOF, fsync always): an outage, not a wipe."""
    return start_redis("--appendonly", "yes", "--appendfsync", "always")


def test_killed_redis_gives_misses_and_opens_the_breaker(private_redis: RedisServer) -> None:
    timer = FakeTimer()
    store = make_store(private_redis.url, timer)
    cache = TagCache(store, timer=lambda: NOW)
    calls: list[int] = []

    def compute() -> str:
        calls.append(1)
        return f"computed {len(calls)}"

    assert cache.get_or_set("k", compute, tags=["a"]) == "computed 1"
    assert cache.get_or_set("k", compute, tags=["a"]) == "computed 1"
    private_redis.stop()
    assert cache.get_or_set("k", compute, tags=["a"]) == "computed 2"  # no exception, recomputed
    assert store.breaker.state == "open"
    # an invalidation that cannot be recorded raises (the caller must not acknowledge its write)
    with pytest.raises(StoreUnavailableError, match="breaker is open"):
        cache.invalidate_tags("a")
    with pytest.raises(StoreUnavailableError, match="breaker is open"):
        cache.delete("k")
    with pytest.raises(StoreUnavailableError, match="breaker is open"):
        cache.clear()
    assert not cache.healthy
    stats = cache.stats()
    assert stats["breaker_state"] == "open" and stats["store_errors"] > 0
    assert stats["owed_global_invalidation"] is True
    private_redis.restart()
    timer.now += 5  # half-open: the next call is the probe
    assert cache.get_or_set("k", compute, tags=["a"]) == "computed 3"
    assert store.breaker.state == "closed"
    assert cache.get_or_set("k", compute, tags=["a"]) == "computed 3"
    store.close()


def test_open_breaker_does_not_touch_redis(private_redis: RedisServer) -> None:
    timer = FakeTimer()
    client = redis.Redis.from_url(private_redis.url, socket_timeout=0.05, connection_class=CountingConnection)
    store = RedisStore(client, prefix="f:", breaker=CircuitBreaker(failure_threshold=1, timer=timer))
    private_redis.stop()
    with pytest.raises(StoreUnavailableError):
        store.get("k", NOW)
    assert store.breaker.state == "open"
    CountingConnection.sent.clear()
    for call in (
        lambda: store.get("k", NOW),
        lambda: store.set("k", entry(1), NOW),
        lambda: store.begin(["a"]),
        lambda: store.invalidate(["a"]),
        lambda: store.delete("k"),
    ):
        with pytest.raises(StoreUnavailableError):
            call()
    assert sum(CountingConnection.sent.values()) == 0
    store.close()


def test_paused_redis_times_out_and_opens_the_breaker(private_redis: RedisServer) -> None:
    timer = FakeTimer()
    store = make_store(private_redis.url, timer, timeout=0.5)  # two timeouts fit well in the pause
    cache = TagCache(store, timer=lambda: NOW)
    assert cache.get_or_set("k", lambda: "v1", tags=["a"]) == "v1"
    admin = redis.Redis.from_url(private_redis.url, socket_timeout=30)
    # Every client's commands hang for 3 s (CLIENT UNPAUSE would hang too, so the pause expires).
    admin.execute_command("CLIENT", "PAUSE", 3000, "ALL")
    assert cache.get_or_set("k", lambda: "v2", tags=["a"]) == "v2"  # timed out: a miss
    assert store.breaker.state == "open"
    assert cache.get_or_set("k", lambda: "v3", tags=["a"]) == "v3"  # refused by the breaker at once
    assert admin.ping()  # answered once the pause is over
    admin.close()
    timer.now += 5
    # back: everything written before the stall is invalidated first (an invalidation elsewhere may
    # have been lost in it), so the value is computed again, and then cached again
    assert cache.get_or_set("k", lambda: "v4", tags=["a"]) == "v4"
    assert cache.get_or_set("k", lambda: "v5", tags=["a"]) == "v4"
    assert store.breaker.state == "closed"
    store.close()


def test_a_reader_that_saw_a_stall_never_serves_what_a_lost_invalidation_hid(
    private_redis: RedisServer,
) -> None:
    """Two processes: the writer's invalidation is lost in a stall; the reader, which also timed out
    during it, comes back first. It must not serve the entry the lost invalidation was meant for."""
    writer_timer, reader_timer = FakeTimer(), FakeTimer()
    writer = make_store(private_redis.url, writer_timer, timeout=0.5)  # two timeouts fit in the pause
    reader = make_store(private_redis.url, reader_timer, timeout=0.5)
    started = reader.begin(["a"])
    assert reader.set("k", entry(started), NOW) is SetResult.STORED
    admin = redis.Redis.from_url(private_redis.url, socket_timeout=30)
    admin.execute_command("CLIENT", "PAUSE", 3000, "ALL")
    with pytest.raises(StoreUnavailableError):
        writer.invalidate(["a"])  # lost: the write behind it happened, its invalidation did not
    with pytest.raises(StoreUnavailableError):
        reader.get("k", NOW)
    assert admin.ping()  # the stall is over
    admin.close()
    reader_timer.now += 5  # the reader's breaker may probe again; the writer has not called yet
    assert reader.get("k", NOW) is None
    writer.close()
    reader.close()


@pytest.mark.parametrize(
    ("poison", "verdict"),
    [
        pytest.param(lambda c, k, s: c.set(k, b"\x00not etagkit"), "not etagkit's", id="foreign-string-key"),
        pytest.param(lambda c, k, s: c.rpush(k, b"x"), "not etagkit's", id="foreign-list-key"),
        pytest.param(
            lambda c, k, s: c.hset(k, mapping={"d": b"\xe7\x01mgarbage", "s": s, **GLOBAL_MARKS}),
            "unreadable record",
            id="corrupt-record",
        ),
        pytest.param(
            lambda c, k, s: c.hset(k, mapping={"d": b"\xe7\x01j[]", "s": s, **GLOBAL_MARKS}),
            "unreadable record",
            id="wrong-layout",
        ),
        pytest.param(
            lambda c, k, s: c.hset(k, mapping={"d": b'\xe7\x01j[1,[],1,"x",1,1,1]', "s": s, **GLOBAL_MARKS}),
            "unreadable record",
            id="wrong-field-types",
        ),
        pytest.param(
            lambda c, k, s: c.hset(k, mapping={"d": b"x", "m": "\xc1 not msgpack", "s": s}),
            "not etagkit's",
            id="bad-mark-list",
        ),
        pytest.param(
            lambda c, k, s: c.hset(k, mapping={"d": b"x", "m": msgpack.packb([1, {}]), "s": s}),
            "not etagkit's",
            id="mark-list-not-strings",
        ),
        pytest.param(
            lambda c, k, s: c.hset(
                k,
                mapping={
                    "d": Codec(pickle_key=b"someone else's key!!").dumps([1]),
                    "s": s,
                    **GLOBAL_MARKS,
                },
            ),
            "HMAC",
            id="wrong-hmac",
        ),
    ],
)
def test_garbage_in_a_key_is_a_logged_miss(
    private_redis: RedisServer, caplog: pytest.LogCaptureFixture, poison: Any, verdict: str
) -> None:
    store = make_store(private_redis.url, FakeTimer(), pickle_key=b"our secret key, 32 bytes long..!")
    cache = TagCache(store, timer=lambda: NOW)
    started = store.begin([])  # the global mark exists, so only the record itself can make this a miss
    poison(store.client, store.namespace + "e:k", started)
    with caplog.at_level(logging.WARNING, logger="etagkit.cache.redis"):
        assert store.get("k", NOW) is None
        assert cache.get_or_set("k", lambda: "fresh", tags=["a"]) == "fresh"  # recomputed, overwrites
    messages = [record.getMessage() for record in caplog.records]
    assert any("'k'" in message and verdict in message for message in messages), messages
    assert cache.get_or_set("k", lambda: "again", tags=["a"]) == "fresh"
    assert store.breaker.state == "closed"
    store.close()


def test_garbage_in_a_mark_is_invalidated_not_an_error(private_redis: RedisServer) -> None:
    store = make_store(private_redis.url, FakeTimer())
    assert store.set("k", entry(store.begin(["a"])), NOW)
    store.client.set(store.namespace + "h:a", b"garbage")
    assert store.get("k", NOW) is None
    store.invalidate(["a"])  # repairs the mark
    assert store.set("k", entry(store.begin(["a"])), NOW)
    assert store.get("k", NOW) is not None
    store.close()


def test_lost_invalidation_forces_a_global_one_after_recovery(durable_redis: RedisServer) -> None:
    timer = FakeTimer()
    # no background payer here (an hour between retries): the next call must pay on its own
    store = make_store(durable_redis.url, timer, retry_interval=3600)
    other = RedisStore(durable_redis.url, prefix="f:", socket_timeout=2, connect_timeout=2)  # saw no outage
    assert store.set("k", entry(store.begin(["a"])), NOW)
    assert store.set("unrelated", entry(store.begin(["b"]), tags=("b",)), NOW)
    durable_redis.stop()
    with pytest.raises(StoreUnavailableError):
        store.invalidate(["a"])  # the write that invalidated "a" happened; Redis never heard of it
    assert store.stats()["owed_global_invalidation"]
    durable_redis.restart()
    load_scripts(durable_redis.url)
    assert other.get("k", NOW) is not None  # the data survived the outage...
    timer.now += 5
    assert store.get("k", NOW) is None  # ...but the first call after recovery invalidates everything
    assert store.get("unrelated", NOW) is None
    assert other.get("k", NOW) is None  # in every process
    assert not store.stats()["owed_global_invalidation"]
    assert store.set("k", entry(store.begin(["a"]), "new"), NOW)
    hit = other.get("k", NOW)
    assert hit is not None and hit.entry.value == "new"
    store.close()
    other.close()


def test_write_begun_before_outage_is_refused_after_it(durable_redis: RedisServer) -> None:
    timer = FakeTimer()
    store = make_store(durable_redis.url, timer)
    started = store.begin(["a"])  # a compute begins...
    durable_redis.stop()
    with pytest.raises(StoreUnavailableError):
        store.invalidate(["a"])  # ...an invalidation is lost during the outage...
    durable_redis.restart()
    load_scripts(durable_redis.url)
    timer.now += 5
    assert store.set("k", entry(started), NOW) is SetResult.REFUSED  # ...so its result is never stored
    store.close()


@pytest.mark.parametrize("first_reader", ["this-store", "another-store"])
def test_restart_from_an_older_snapshot_never_serves_what_was_invalidated(
    private_redis: RedisServer, first_reader: str
) -> None:
    """Redis restarts from an RDB snapshot taken before an acknowledged invalidation: the entry it
    hid is back in Redis, yet no store serves it (the first NOSCRIPT invalidates everything)."""
    timer = FakeTimer()
    store = make_store(private_redis.url, timer)
    cache = TagCache(store, timer=lambda: NOW)
    assert cache.get_or_set("book:1", lambda: "old title", tags=["book:1"], ttl=600) == "old title"
    store.client.save()  # the snapshot (as `save 60 1000` would take one)
    cache.invalidate_tags("book:1")  # acknowledged by Redis, after the snapshot
    # A compute still running when Redis dies: its ticket is newer than the snapshot's clock, so only
    # the server-time part of the global mark, max(clock + 1, TIME in µs), can be above it.
    before_crash = store.begin(["book:1"])
    assert store.get("book:1", NOW) is None
    private_redis.stop()
    private_redis.restart()  # loads the snapshot: the invalidation is lost
    store.client.connection_pool.disconnect()  # drop connections that died with the server
    admin = redis.Redis.from_url(private_redis.url)
    assert admin.exists(store.namespace + "e:book:1")  # the invalidated entry really is back
    admin.close()
    other = RedisStore(private_redis.url, prefix="f:", socket_timeout=2, connect_timeout=2)  # another process
    readers = [store, other] if first_reader == "this-store" else [other, store]
    for reader in readers:
        assert reader.get("book:1", NOW) is None
    assert store.set("book:1", entry(before_crash, "old title", ("book:1",)), NOW) is SetResult.REFUSED
    assert cache.get_or_set("book:1", lambda: "new title", tags=["book:1"]) == "new title"
    hit = other.get("book:1", NOW)
    assert hit is not None and hit.entry.value == "new title"
    assert store.breaker.state == "closed"
    other.close()
    store.close()


def test_concurrent_callers_during_an_outage_raise_only_from_invalidations(
    private_redis: RedisServer,
) -> None:
    timer = FakeTimer()
    cache = TagCache(make_store(private_redis.url, timer), timer=lambda: NOW)
    errors: list[BaseException] = []
    refused: list[int] = []
    barrier = threading.Barrier(8)

    def worker(n: int) -> None:
        try:
            barrier.wait()
            for i in range(50):
                assert cache.get_or_set(f"k{i % 5}", lambda: n, tags=["a"]) is not None
                if i % 10 == 0:
                    try:
                        cache.invalidate_tags("a")
                    except StoreUnavailableError:
                        refused.append(i)
                if n == 0 and i == 10:
                    private_redis.stop()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert refused  # the invalidations after the kill could not be recorded, and said so
    assert cache.stats()["breaker_state"] in ("open", "half_open")


def test_an_invalidation_during_a_stall_on_a_fresh_connection_raises(private_redis: RedisServer) -> None:
    """Issue 12: during a SIGSTOP stall, a fresh store's invalidation returned after 0.05 s with no
    error and never landed. Now it raises, and once Redis answers the owed global invalidation is
    paid by the background thread, without any further call of this store."""
    import os
    import signal

    seeder = RedisStore(private_redis.url, prefix="f:", socket_timeout=5, connect_timeout=5)
    assert seeder.set("k", entry(seeder.begin(["a"])), NOW)
    fresh = RedisStore(private_redis.url, prefix="f:", retry_interval=0.05)  # 50 ms timeouts
    cache = TagCache(fresh, timer=lambda: NOW)
    assert private_redis.proc is not None
    os.kill(private_redis.proc.pid, signal.SIGSTOP)
    try:
        with pytest.raises(StoreUnavailableError, match=r"unreachable|breaker"):
            cache.invalidate_tags("a")
        assert not cache.healthy and fresh.stats()["owed_global_invalidation"]
    finally:
        os.kill(private_redis.proc.pid, signal.SIGCONT)
    deadline = time.monotonic() + 30
    while fresh.stats()["owed_global_invalidation"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not fresh.stats()["owed_global_invalidation"]  # paid in the background
    assert seeder.get("k", NOW) is None  # so another process no longer serves the entry
    assert cache.healthy
    fresh.close()
    seeder.close()


def test_an_open_breaker_logs_one_line_per_state_change_not_per_call(
    private_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 13: 41 WARNING lines for 20 calls while the breaker was open."""
    timer = FakeTimer()
    clock = FakeTimer()
    clock.now = NOW
    cache = TagCache(make_store(private_redis.url, timer), timer=clock, lease=None)
    private_redis.stop()
    with caplog.at_level(logging.DEBUG, logger="etagkit"):
        for _ in range(20):
            assert cache.get_or_set("k", lambda: "v", tags=["a"]) == "v"
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        # the first store error, and the breaker opening: one line each
        assert len(warnings) == 2, [r.getMessage() for r in warnings]
        assert any("circuit breaker" in r.getMessage() and "open" in r.getMessage() for r in warnings)
        clock.now += 61  # a minute later: one summary line for what was not logged
        assert cache.get_or_set("k", lambda: "v", tags=["a"]) == "v"
        summary = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING][2:]
        assert len(summary) == 1 and "more store errors" in summary[0], summary


_MARKS = (
    st.binary(max_size=40)
    | st.lists(st.text(max_size=8) | st.integers(), max_size=3).map(lambda keys: packed(*map(str, keys)))
    | st.lists(st.integers(-(2**63), 2**64 - 1) | st.text(max_size=4), max_size=3).map(msgpack.packb)
    | st.just(b"<the global marks>")
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    record=st.binary(max_size=200) | st.binary(max_size=100).map(lambda b: b"\xe7\x01" + b),
    marks=_MARKS,
    soft_marks=_MARKS,
    started=st.text(max_size=20) | st.integers() | st.just("<the clock>"),
    soft_invalidated=st.booleans(),
)
def test_any_bytes_under_an_entry_key_are_a_miss_or_a_hit_never_an_error(
    redis_url: str,
    redis_prefix: str,
    *,
    record: bytes,
    marks: bytes,
    soft_marks: bytes,
    started: int | str,
    soft_invalidated: bool,
) -> None:
    """Whatever a stranger writes into an entry's hash, a read returns None or a Hit, and logs."""
    store = RedisStore(redis_url, prefix=redis_prefix, socket_timeout=5, connect_timeout=5)
    try:
        clock = store.begin([])  # the global mark exists: a well-formed entry would be valid
        ns = store.namespace
        if marks == b"<the global marks>":
            marks = packed(ns + "h:*", ns + "s")
        if soft_marks == b"<the global marks>":
            soft_marks = packed(ns + "s:*")
        if started == "<the clock>":
            started = clock
        if soft_invalidated:  # the soft marks are read too
            store.invalidate(["x"], soft=True)
        mapping = {"d": record, "m": marks, "o": soft_marks, "s": started}
        store.client.hset(ns + "e:k", mapping=mapping)
        hit = store.get("k", NOW)  # no exception, whatever the bytes
        assert hit is None or isinstance(hit.entry, Entry)
    finally:
        store.close()


def test_the_async_face_raises_the_same_when_an_invalidation_cannot_be_recorded(
    private_redis: RedisServer,
) -> None:
    import asyncio

    timer = FakeTimer()
    store = make_store(private_redis.url, timer)
    cache = TagCache(store, timer=lambda: NOW)

    async def scenario() -> None:
        assert await cache.aget_or_set("k", _async_value("v1"), tags=["a"]) == "v1"
        await cache.ainvalidate_tags("a")  # recorded: returns
        assert await cache.aget_or_set("k", _async_value("v2"), tags=["a"]) == "v2"
        private_redis.stop()
        assert await cache.aget_or_set("k", _async_value("v3"), tags=["a"]) == "v3"  # a miss, no error
        with pytest.raises(StoreUnavailableError, match=r"unreachable|breaker"):
            await cache.ainvalidate_tags("a")
        with pytest.raises(StoreUnavailableError, match=r"unreachable|breaker"):
            await cache.aclear()

    asyncio.run(scenario())
    assert not cache.healthy
    store.close()


def _async_value(value: str) -> Any:
    async def compute() -> str:
        return value

    return compute

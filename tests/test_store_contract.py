"""The store contract (etagkit/cache/_store.py), run on every store kind via the ``make_store`` fixture.

Store-level rules first (clock, marks, CAS, windows), then the same rules seen through a TagCache:
the deterministic invalidate-during-compute race and a many-thread stress run with zero stale reads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest
from support import FakeTimer

from etagkit.cache import GLOBAL_TAG, Entry, Hit, SetResult, Store, TagCache

MakeStore = Callable[..., Any]
T0 = 1_000_000.0


def entry(value: Any, tags: tuple[str, ...], started: int, *, until: float = T0 + 100) -> Entry:
    return Entry(value, tags, started, fresh_until=until, stale_until=until, error_until=until)


def store_with(make_store: MakeStore) -> tuple[Store, FakeTimer]:
    timer = FakeTimer(T0)
    return make_store(timer=timer), timer


def test_store_implements_the_protocol(make_store: MakeStore) -> None:
    store, _ = store_with(make_store)
    assert isinstance(store, Store)


def test_clock_advances_on_invalidation_only(make_store: MakeStore) -> None:
    store, _ = store_with(make_store)
    first = store.begin(["a"])
    assert store.begin(["a", "b"]) == first
    store.invalidate(["a"])
    assert store.begin(["a"]) > first


@pytest.mark.parametrize("value", [None, 0, 0.0, "", b"", False, [], {}, "text", {"id": 1, "tags": ["x"]}])
def test_roundtrip_of_any_value_including_falsy(make_store: MakeStore, value: Any) -> None:
    store, _ = store_with(make_store)
    started = store.begin(["a"])
    assert store.set("k", entry(value, ("a",), started), T0) is SetResult.STORED
    hit = store.get("k", T0)
    assert isinstance(hit, Hit)
    assert hit.entry.value == value
    assert type(hit.entry.value) is type(value)
    assert hit.soft_invalidated is False
    assert hit.entry.started == started and hit.entry.tags == ("a",)


def test_unknown_key_is_a_miss(make_store: MakeStore) -> None:
    store, _ = store_with(make_store)
    assert store.get("nothing", T0) is None


def test_hard_invalidation_hides_only_entries_with_that_tag(make_store: MakeStore) -> None:
    store, _ = store_with(make_store)
    started = store.begin(["a", "b", "c"])
    store.set("ab", entry(1, ("a", "b"), started), T0)
    store.set("c", entry(2, ("c",), started), T0)
    store.set("untagged", entry(3, (), started), T0)
    assert store.get("ab", T0) is not None  # read once (a store may remember the check)
    store.invalidate(["b"])
    assert store.get("ab", T0) is None
    kept = store.get("c", T0)
    assert kept is not None and kept.entry.value == 2
    untagged = store.get("untagged", T0)
    assert untagged is not None and untagged.entry.value == 3


def test_entry_is_gone_at_error_until(make_store: MakeStore) -> None:
    store, timer = store_with(make_store)
    started = store.begin(["a"])
    store.set("k", Entry("v", ("a",), started, T0 + 10, T0 + 20, T0 + 30), T0)
    for now in (T0 + 9, T0 + 15, T0 + 29.5):
        timer.now = now
        assert store.get("k", now) is not None
    timer.now = T0 + 30
    assert store.get("k", T0 + 30) is None


def test_write_refused_when_a_tag_was_invalidated_during_the_compute(make_store: MakeStore) -> None:
    store, _ = store_with(make_store)
    started = store.begin(["a", "b"])
    store.invalidate(["b"])  # while "computing"
    assert store.set("k", entry("old", ("a", "b"), started), T0) is SetResult.REFUSED
    assert store.get("k", T0) is None
    again = store.begin(["a", "b"])
    assert store.set("k", entry("new", ("a", "b"), again), T0) is SetResult.STORED


def test_invalidation_before_begin_does_not_refuse(make_store: MakeStore) -> None:
    store, _ = store_with(make_store)
    store.begin(["a"])
    store.invalidate(["a"])
    started = store.begin(["a"])
    assert store.set("k", entry("v", ("a",), started), T0) is SetResult.STORED
    assert store.get("k", T0) is not None


def test_late_learned_tag_invalidated_during_the_compute_is_refused(make_store: MakeStore) -> None:
    store, _ = store_with(make_store)
    store.begin(["late"])  # the tag exists (an earlier response carried it)
    started = store.begin(["a"])  # this compute only knows "a" up front
    store.invalidate(["late"])
    assert store.set("k", entry("v", ("a", "late"), started), T0) is SetResult.REFUSED
    assert store.get("k", T0) is None


def test_tag_without_mark_counts_as_invalidated_now_then_recovers(make_store: MakeStore) -> None:
    """A missing mark (never seen, evicted) reads as "invalidated now": a write begun before the
    latest invalidation (of anything) is refused. (A single-slot store refuses it even without
    one: tests/test_redis_store.py; a cluster shard accepts it then, see etagkit/cache/_shards.py.)"""
    store, _ = store_with(make_store)
    started = store.begin(["a"])
    store.invalidate(["unrelated"])  # the clock moves on: the missing mark would be above `started`
    assert store.set("k", entry("v", ("a", "never-seen"), started), T0) is SetResult.REFUSED
    again = store.begin(["a"])
    assert store.set("k", entry("v", ("a", "never-seen"), again), T0) is SetResult.STORED
    assert store.get("k", T0) is not None


def test_soft_invalidation_flags_the_hit_and_a_new_entry_is_clean(make_store: MakeStore) -> None:
    store, _ = store_with(make_store)
    started = store.begin(["a"])
    store.set("k", entry("old", ("a",), started), T0)
    assert store.get("k", T0) == Hit(entry("old", ("a",), started), False)
    store.invalidate(["a"], soft=True)
    hit = store.get("k", T0)
    assert hit is not None and hit.soft_invalidated and hit.entry.value == "old"
    started = store.begin(["a"])
    assert store.set("k", entry("new", ("a",), started), T0) is SetResult.STORED  # soft never refuses a write
    hit = store.get("k", T0)
    assert hit is not None and not hit.soft_invalidated and hit.entry.value == "new"


def test_hard_after_soft_hides_the_entry(make_store: MakeStore) -> None:
    store, _ = store_with(make_store)
    started = store.begin(["a"])
    store.set("k", entry("old", ("a",), started), T0)
    store.invalidate(["a"], soft=True)
    store.invalidate(["a"])
    assert store.get("k", T0) is None


def test_global_tag_and_clear_invalidate_everything(make_store: MakeStore) -> None:
    store, _ = store_with(make_store)
    started = store.begin(["a"])
    store.set("k1", entry(1, ("a",), started), T0)
    store.set("k2", entry(2, (), started), T0)
    store.invalidate([GLOBAL_TAG])
    assert store.get("k1", T0) is None and store.get("k2", T0) is None
    assert (
        store.set("k3", entry(3, (), started), T0) is SetResult.REFUSED
    )  # began before the global invalidation
    started = store.begin(["a"])
    assert store.set("k1", entry(1, ("a",), started), T0) is SetResult.STORED
    store.clear()
    assert store.get("k1", T0) is None
    started = store.begin(["a"])
    assert store.set("k1", entry(1, ("a",), started), T0) is SetResult.STORED
    assert store.get("k1", T0) is not None


def test_delete_and_overwrite(make_store: MakeStore) -> None:
    store, _ = store_with(make_store)
    started = store.begin(["a"])
    store.set("k", entry(1, ("a",), started), T0)
    store.set("k", entry(2, ("a",), started), T0)
    hit = store.get("k", T0)
    assert hit is not None and hit.entry.value == 2
    store.delete("k")
    assert store.get("k", T0) is None
    store.delete("k")  # deleting a missing key is fine


def test_refused_write_removes_the_older_value(make_store: MakeStore) -> None:
    """v1 is still valid by its own tags, but a later compute for the key was refused: what it would
    have replaced is no newer, so it goes too (the next read computes again)."""
    store, _ = store_with(make_store)
    started = store.begin(["a"])
    assert store.set("k", entry("v1", ("a",), started), T0) is SetResult.STORED
    slow = store.begin(["a", "b"])
    store.invalidate(["b"])
    hit = store.get("k", T0)
    assert hit is not None and hit.entry.value == "v1"  # "a" was not invalidated
    assert store.set("k", entry("v2", ("a", "b"), slow), T0) is SetResult.REFUSED
    assert store.get("k", T0) is None  # neither the refused value nor the one it would replace


# -- through TagCache -----------------------------------------------------------------------------


class Opaque:
    """A value neither msgpack nor JSON can encode: a remote store without a pickle_key refuses it."""


def test_a_value_the_store_cannot_encode_is_returned_uncached_never_raised(
    make_store: MakeStore, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    timer = FakeTimer(T0)
    cache = TagCache(make_store(timer=timer), timer=timer)
    value, calls = Opaque(), []

    def compute() -> Opaque:
        calls.append(1)
        return value

    with caplog.at_level(logging.WARNING, logger="etagkit.cache"):
        for _ in range(3):
            assert cache.get_or_set("k", compute, tags=["a"]) is value
    logged = [r for r in caplog.records if "cannot encode" in r.getMessage() and "'k'" in r.getMessage()]
    if request.node.callspec.params["make_store"] == "memory":  # keeps Python objects as they are
        assert (len(calls), cache.stats()["serialization_errors"], logged) == (1, 0, [])
    else:
        assert (len(calls), cache.stats()["serialization_errors"], len(logged)) == (3, 3, 1)
    assert cache.stats()["store_errors"] == 0


def test_invalidation_during_compute_never_leaves_its_result_readable(make_store: MakeStore) -> None:
    """Start compute, invalidate, finish compute, read: a miss (deterministic, with events)."""
    timer = FakeTimer(T0)
    cache = TagCache(make_store(timer=timer), timer=timer)
    computing, invalidated = threading.Event(), threading.Event()
    db = {"title": "old"}
    results: list[str] = []

    def slow_compute() -> str:
        value = db["title"]
        computing.set()
        assert invalidated.wait(10)
        return value

    worker = threading.Thread(
        target=lambda: results.append(cache.get_or_set("book:1", slow_compute, tags=["book:1"]))
    )
    worker.start()
    assert computing.wait(10)
    db["title"] = "new"
    cache.invalidate_tags("book:1")
    invalidated.set()
    worker.join(10)
    assert results == ["old"]  # the caller that started first may see the value of its time
    assert cache.get("book:1", "MISS") == "MISS"
    assert cache.get_or_set("book:1", lambda: db["title"], tags=["book:1"]) == "new"
    assert cache.get("book:1") == "new"


def test_ticket_write_refused_for_tags_learned_after_the_compute(make_store: MakeStore) -> None:
    timer = FakeTimer(T0)
    cache = TagCache(make_store(timer=timer), timer=timer)
    cache.begin(["author:7"])  # another entry made the tag known
    ticket = cache.begin(["book:1"])
    cache.invalidate_tags("author:7")  # during the compute
    assert cache.set("page", "body", ticket=ticket, tags=["author:7"]) is False
    assert cache.get("page") is None
    ticket = cache.begin(["book:1"])
    assert cache.set("page", "body", ticket=ticket, tags=["author:7"]) is True
    assert cache.get("page") == "body"
    cache.invalidate_tags("author:7")
    assert cache.get("page") is None


@pytest.mark.slow
def test_stress_no_stale_read_under_concurrent_invalidation(
    make_store: MakeStore, request: pytest.FixtureRequest
) -> None:
    """Readers (two TagCaches = two processes) race a writer; no read may return a value older
    than the last version whose write (database, then invalidation) had completed when it started.
    Two-level: each "process" has its own TwoLevelStore (its own local layer) over the same Redis
    namespace, so one's invalidations reach the other's local layer only over pub/sub."""
    first = make_store()
    second = make_store() if request.node.callspec.params["make_store"] == "twolevel" else first
    caches = [TagCache(first, default_ttl=3600), TagCache(second, default_ttl=3600)]
    items = 4
    db = [0] * items
    done = [0] * items  # versions whose invalidation has returned
    rounds, readers = 2500, 4
    errors: list[str] = []
    stop = threading.Event()

    def reader(n: int) -> None:
        cache = caches[n % 2]
        for r in range(rounds):
            i = (r + n) % items
            before = done[i]
            got = cache.get_or_set(f"item:{i}", lambda i=i: db[i], tags=[f"item:{i}", "items"])
            if got < before:
                errors.append(f"reader {n} round {r}: item {i} read {got} after version {before}")
                return

    def writer() -> None:
        w = 0
        while not stop.is_set():
            i = w % items
            db[i] += 1  # write the "database" first, then invalidate
            caches[w % 2].invalidate_tags(f"item:{i}")
            done[i] = db[i]
            w += 1

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(readers)]
    writer_thread = threading.Thread(target=writer)
    writer_thread.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    stop.set()
    writer_thread.join(10)
    assert errors == [], [(c.stats()["store_errors"], c.stats()["refresh_errors"]) for c in caches]
    for i in range(items):  # quiet now: every read gives the last version
        assert caches[0].get_or_set(f"item:{i}", lambda i=i: db[i], tags=[f"item:{i}"]) == db[i]
    for cache in caches:
        stats = cache.stats()
        assert stats["hits"] + stats["misses"] >= rounds * readers // 2
        assert stats["hits"] > 0  # a store that never stores would pass the rest

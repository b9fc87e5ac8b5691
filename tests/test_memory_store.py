"""MemoryStore specifics: bounds (entries, bytes, marks), LRU among live entries, TTL on the injected
timer, O(1) invalidation, the hit memo, thread safety, the size estimate."""

from __future__ import annotations

import random
import threading
from collections import OrderedDict
from typing import Any

import pytest
from support import FakeTimer

from etagkit import ConfigurationError
from etagkit.cache import Entry, MemoryStore, SetResult, estimate_size

T0 = 1_000_000.0


def put(
    store: MemoryStore, key: str, *, tags: tuple[str, ...] = (), until: float = T0 + 100, size: int = 0
) -> SetResult:
    started = store.begin(tags)
    return store.set(key, Entry(key, tags, started, until, until, until, size=size), T0)


def present(store: MemoryStore, now: float = T0) -> set[str]:
    return {key for key in ("a", "b", "c", "d", "e") if store.get(key, now) is not None}


def test_bounded_by_entry_count_and_counts_evictions() -> None:
    store = MemoryStore(max_entries=3, timer=FakeTimer(T0))
    for key in "abcd":
        assert put(store, key)
    assert present(store) == {"b", "c", "d"}
    assert store.stats()["evictions"] == 1
    assert store.stats()["entries"] == 3


def test_bounded_by_bytes() -> None:
    store = MemoryStore(max_bytes=1000, timer=FakeTimer(T0))
    for key in "abc":
        put(store, key, size=400)
    assert present(store) == {"b", "c"}
    assert store.stats()["bytes"] == 800
    assert store.stats()["evictions"] == 1


def test_entry_larger_than_max_bytes_is_not_stored() -> None:
    store = MemoryStore(max_bytes=1000, timer=FakeTimer(T0))
    put(store, "a", size=100)
    assert put(store, "a", size=5000) is SetResult.NOT_STORED  # valid, too large
    assert present(store) == set()  # the older value of "a" went too


def test_default_size_is_an_estimate_of_the_value() -> None:
    store = MemoryStore(timer=FakeTimer(T0))
    started = store.begin(())
    store.set("small", Entry("x", (), started, T0 + 9, T0 + 9, T0 + 9), T0)
    small = store.stats()["bytes"]
    store.set("big", Entry("x" * 100_000, (), started, T0 + 9, T0 + 9, T0 + 9), T0)
    assert store.stats()["bytes"] - small >= 100_000


def test_lru_among_live_entries() -> None:
    store = MemoryStore(max_entries=3, timer=FakeTimer(T0))
    for key in "abc":
        put(store, key)
    assert store.get("a", T0) is not None  # a is now the most recently used
    put(store, "d")
    assert present(store) == {"a", "c", "d"}


def test_expired_entries_go_before_live_ones_and_are_not_evictions() -> None:
    timer = FakeTimer(T0)
    store = MemoryStore(max_entries=3, timer=timer)
    put(store, "a", until=T0 + 5)
    put(store, "b")
    put(store, "c")
    store.get("a", T0)  # recently used, but about to expire
    timer.advance(10)
    put(store, "d")
    assert present(store, timer.now) == {"b", "c", "d"}
    assert store.stats()["evictions"] == 0


def test_expiry_follows_the_injected_timer() -> None:
    timer = FakeTimer(T0)
    store = MemoryStore(timer=timer)
    put(store, "a", until=T0 + 10)
    timer.now = T0 + 9.999
    assert store.get("a", timer.now) is not None
    timer.now = T0 + 10
    assert store.get("a", timer.now) is None
    assert store.stats()["entries"] == 0


def test_evicted_mark_makes_its_entries_miss_even_after_a_memoized_hit() -> None:
    store = MemoryStore(max_marks=2, timer=FakeTimer(T0))
    put(store, "a", tags=("t1",))
    assert store.get("a", T0) is not None  # checked and memoized
    store.begin(("t2", "t3"))  # evicts t1's mark
    assert store.stats()["mark_evictions"] == 1
    assert store.get("a", T0) is None
    assert put(store, "a", tags=("t1",)) is SetResult.STORED  # a new compute is stored again
    assert store.get("a", T0) is not None


def test_mark_evicted_during_the_compute_refuses_the_write() -> None:
    store = MemoryStore(max_marks=1, timer=FakeTimer(T0))
    started = store.begin(("t1",))
    store.begin(("t2",))  # t1's mark is evicted while "computing"
    assert store.set("a", Entry(1, ("t1",), started, T0 + 9, T0 + 9, T0 + 9), T0) is SetResult.REFUSED


def test_memoized_hit_sees_a_later_invalidation() -> None:
    store = MemoryStore(timer=FakeTimer(T0))
    put(store, "a", tags=("t",))
    for _ in range(3):
        assert store.get("a", T0) is not None
    store.invalidate(["t"], soft=True)
    hit = store.get("a", T0)
    assert hit is not None and hit.soft_invalidated
    store.invalidate(["t"])
    assert store.get("a", T0) is None


class _Untouchable:
    """Stands in for the entry cache during an invalidation: any use of it fails the test."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"invalidation touched the entries ({name})")

    def __getitem__(self, key: str) -> Any:
        raise AssertionError("invalidation read an entry")


class _CountingMarks(OrderedDict[str, Any]):
    writes = 0

    def __setitem__(self, key: str, value: Any) -> None:
        type(self).writes += 1
        super().__setitem__(key, value)


@pytest.mark.parametrize("entries", [1, 100_000])
def test_invalidation_touches_one_mark_and_no_entry_whatever_the_entry_count(entries: int) -> None:
    store = MemoryStore(max_entries=entries, timer=FakeTimer(T0))
    started = store.begin(("t",))
    for i in range(entries):
        store.set(f"k{i}", Entry(i, ("t",), started, T0 + 99, T0 + 99, T0 + 99, size=1), T0)
    assert store.stats()["entries"] == entries
    real_entries = store._entries
    store._marks = _CountingMarks(store._marks)
    _CountingMarks.writes = 0
    store._entries = _Untouchable()  # type: ignore[assignment]
    store.invalidate(["t"])
    store._entries = real_entries
    assert _CountingMarks.writes == 1
    assert store.get("k0", T0) is None and store.get(f"k{entries - 1}", T0) is None


def test_thread_safety_under_concurrent_use() -> None:
    store = MemoryStore(max_entries=50, max_bytes=50_000, max_marks=40, timer=FakeTimer(T0))
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def hammer(seed: int) -> None:
        rnd = random.Random(seed)
        start.wait()
        try:
            for _ in range(3000):
                key, tag = f"k{rnd.randrange(80)}", f"t{rnd.randrange(60)}"
                op = rnd.random()
                if op < 0.4:
                    hit = store.get(key, T0)
                    assert hit is None or hit.entry.value == key
                elif op < 0.8:
                    started = store.begin((tag,))
                    store.set(key, Entry(key, (tag,), started, T0 + 9, T0 + 9, T0 + 9), T0)
                elif op < 0.95:
                    store.invalidate([tag], soft=rnd.random() < 0.3)
                else:
                    store.delete(key)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(240)  # a generous bound under load (pytest's own timeout is 300 s), not a timing
    assert [thread.name for thread in threads if thread.is_alive()] == []  # all ended: no deadlock
    assert errors == []
    stats = store.stats()
    assert stats["entries"] <= 50 and stats["bytes"] <= 50_000 and stats["marks"] <= 40


@pytest.mark.parametrize("option", ["max_entries", "max_bytes", "max_marks"])
@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "10", None])
def test_bounds_must_be_positive_ints(option: str, bad: Any) -> None:
    with pytest.raises(ConfigurationError):
        MemoryStore(**{option: bad})


def test_estimate_size_counts_nested_containers_and_survives_cycles() -> None:
    flat = estimate_size([])
    nested = estimate_size([{"title": "x" * 1000, "tags": ["a" * 500]}])
    assert nested > flat + 1500
    cycle: list[Any] = []
    cycle.append(cycle)
    assert estimate_size(cycle) > 0

    class Row:
        def __init__(self) -> None:
            self.body = "y" * 2000

    assert estimate_size(Row()) > 2000
    assert estimate_size(list(range(1_000_000))) > 8_000_000  # the walk is capped, the list is not

"""TagCache: cache-aside, single-flight, freshness windows, XFetch, soft invalidation, the lower-level
begin/get/set API, a store that is down, and the @cached decorator with its stable key builder."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import math
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import FakeTimer

from etagkit import ConfigurationError, StoreUnavailableError
from etagkit.cache import Entry, Hit, MemoryStore, SetResult, TagCache
from etagkit.cache._keys import canonical

T0 = 1_000_000.0


class Jobs:
    """A ``spawn=`` that keeps background refreshes until the test runs them."""

    def __init__(self) -> None:
        self.pending: list[Callable[[], None]] = []

    def __call__(self, job: Callable[[], None]) -> None:
        self.pending.append(job)

    def run_all(self) -> None:
        while self.pending:
            self.pending.pop(0)()


class Counter:
    """A compute that counts its calls and returns the next value of ``values`` (or raises it)."""

    def __init__(self, *values: Any) -> None:
        self.values = list(values)
        self.calls = 0

    def __call__(self) -> Any:
        self.calls += 1
        value = self.values.pop(0) if len(self.values) > 1 else self.values[0]
        if isinstance(value, BaseException):
            raise value
        return value


def make(**options: Any) -> tuple[TagCache, FakeTimer, Jobs]:
    timer, jobs = FakeTimer(T0), Jobs()
    options.setdefault("random", lambda: 0.999999)
    return TagCache(timer=timer, spawn=jobs, **options), timer, jobs


def wait_for_waiters(cache: TagCache, key: str, n: int) -> None:
    """Block until ``n`` callers wait on the flight of ``key`` (an Event wait, not a timing sleep)."""
    pause = threading.Event()
    for _ in range(10_000):
        if cache._flights.waiting(key) >= n:
            return
        pause.wait(0.001)
    raise AssertionError(f"{n} waiters never joined the flight of {key!r}")


# -- cache-aside basics ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, 0, "", False, [], b""])
def test_none_and_falsy_values_are_cached_and_not_a_miss(value: Any) -> None:
    cache, _, _ = make()
    compute = Counter(value)
    assert cache.get_or_set("k", compute) == value
    assert cache.get_or_set("k", compute) == value
    assert compute.calls == 1
    missing = object()
    assert cache.get("k", missing) == value
    assert cache.get("other", missing) is missing
    assert cache.stats()["hits"] == 2


def test_ttl_expiry_on_the_injected_timer() -> None:
    cache, timer, _ = make(default_ttl=10)
    compute = Counter("v1", "v2")
    assert cache.get_or_set("k", compute) == "v1"
    timer.advance(9.9)
    assert cache.get_or_set("k", compute) == "v1"
    timer.advance(0.1)
    assert cache.get_or_set("k", compute) == "v2"
    assert cache.get_or_set("k", compute, ttl=0) == "v2"  # still fresh: the stored entry decides


def test_hard_invalidation_recomputes_and_counts() -> None:
    cache, _, _ = make()
    compute = Counter("v1", "v2")
    cache.get_or_set("k", compute, tags=["a", "b"])
    cache.invalidate_tags("b", "c")
    assert cache.get("k") is None
    assert cache.get_or_set("k", compute, tags=["a", "b"]) == "v2"
    stats = cache.stats()
    assert stats["invalidations"] == 2
    assert {"hits", "misses", "stale_served", "refreshes", "evictions", "store_errors"} <= set(stats)


def test_delete_and_clear() -> None:
    cache, _, _ = make()
    cache.set("a", 1, tags=["x"])
    cache.set("b", 2)
    cache.delete("a")
    assert cache.get("a") is None and cache.get("b") == 2
    cache.clear()
    assert cache.get("b") is None
    assert cache.set("b", 3) is True and cache.get("b") == 3


@pytest.mark.parametrize("tags", [["*"], [""], [1]])
def test_invalid_tags_are_refused(tags: list[Any]) -> None:
    cache, _, _ = make()
    with pytest.raises(ConfigurationError):
        cache.get_or_set("k", lambda: 1, tags=tags)
    with pytest.raises(ConfigurationError):
        cache.invalidate_tags(*tags)


def test_a_lone_string_is_one_tag() -> None:
    cache, _, _ = make()
    cache.get_or_set("k", lambda: 1, tags="books")
    cache.invalidate_tags("b")  # not a tag of "k" (a string is not split into characters)
    assert cache.get("k") == 1
    cache.invalidate_tags("books")
    assert cache.get("k") is None


@pytest.mark.parametrize("option", ["ttl", "stale_ttl", "error_ttl"])
def test_negative_or_nan_windows_are_refused(option: str) -> None:
    cache, _, _ = make()
    for bad in (-1.0, math.nan):
        with pytest.raises(ConfigurationError):
            cache.get_or_set("k", lambda: 1, **{option: bad})
    with pytest.raises(ConfigurationError):
        TagCache(default_ttl=-1)


@pytest.mark.parametrize(
    "options",
    [
        {"default_ttl": "300"},
        {"default_ttl": math.inf},
        {"default_ttl": True},
        {"beta": -0.5},
        {"beta": math.nan},
        {"beta": "1"},
    ],
)
def test_bad_settings_raise_configuration_error_at_construction(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match=next(iter(options))):
        TagCache(**options)


# -- single-flight --------------------------------------------------------------------------------


def concurrent_get_or_set(cache: TagCache, value: str, callers: int) -> tuple[list[int], list[str]]:
    """``callers`` threads miss ``k`` at once; the compute returns ``value`` once all but the leader
    wait on its flight. Returns (one entry per compute run, every caller's result)."""
    release = threading.Event()
    calls: list[int] = []

    def compute() -> str:
        calls.append(1)
        assert release.wait(10)
        return value

    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get_or_set("k", compute)))
        for _ in range(callers)
    ]
    for thread in threads:
        thread.start()
    wait_for_waiters(cache, "k", callers - 1)
    release.set()
    for thread in threads:
        thread.join(10)
    return calls, results


def test_concurrent_misses_run_the_compute_once() -> None:
    calls, results = concurrent_get_or_set(TagCache(), "value", 8)
    assert calls == [1]
    assert results == ["value"] * 8


def test_a_value_too_large_to_store_is_still_shared_by_the_waiters() -> None:
    """NOT_STORED (larger than max_bytes) is not a race refusal: the waiters take the leader's value."""
    cache = TagCache(MemoryStore(max_bytes=5_000))
    calls, results = concurrent_get_or_set(cache, "x" * 10_000, 10)
    assert calls == [1]
    assert results == ["x" * 10_000] * 10
    assert cache.get("k") is None  # and it was indeed not stored


def test_the_exception_reaches_every_waiter_and_is_not_cached() -> None:
    cache = TagCache()
    release = threading.Event()
    calls: list[int] = []

    def failing() -> str:
        calls.append(1)
        assert release.wait(10)
        raise LookupError("database down")

    outcomes: list[BaseException] = []

    def call() -> None:
        try:
            cache.get_or_set("k", failing)
        except LookupError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=call) for _ in range(5)]
    for thread in threads:
        thread.start()
    wait_for_waiters(cache, "k", 4)
    release.set()
    for thread in threads:
        thread.join(10)
    assert calls == [1]
    assert len(outcomes) == 5 and all(str(exc) == "database down" for exc in outcomes)
    assert cache.get_or_set("k", lambda: "recovered") == "recovered"  # the error was not cached


def test_a_waiter_arriving_after_an_invalidation_does_not_get_the_older_result() -> None:
    """The leader began before the invalidation; a caller that arrives after it must see the write."""
    cache = TagCache()
    db = {"v": "old"}
    computing, release = threading.Event(), threading.Event()
    first = [True]

    def compute() -> str:
        value = db["v"]
        if first[0]:
            first[0] = False
            computing.set()
            assert release.wait(10)
        return value

    leader: list[str] = []
    waiter: list[str] = []
    lead = threading.Thread(target=lambda: leader.append(cache.get_or_set("k", compute, tags=["t"])))
    lead.start()
    assert computing.wait(10)
    db["v"] = "new"
    cache.invalidate_tags("t")
    wait = threading.Thread(target=lambda: waiter.append(cache.get_or_set("k", compute, tags=["t"])))
    wait.start()
    wait_for_waiters(cache, "k", 1)
    release.set()
    lead.join(10)
    wait.join(10)
    assert leader == ["old"]
    assert waiter == ["new"]
    assert cache.get("k") == "new"


class PausingStore(MemoryStore):
    """A MemoryStore whose first write pauses after storing, until the test lets it return."""

    def __init__(self) -> None:
        super().__init__()
        self.written, self.go = threading.Event(), threading.Event()

    def set(self, key: str, entry: Entry, now: float) -> SetResult:
        stored = super().set(key, entry, now)
        if not self.written.is_set():
            self.written.set()
            assert self.go.wait(10)
        return stored


def test_a_caller_arriving_after_the_leaders_write_never_joins_its_flight() -> None:
    """Leader writes (accepted), an invalidation follows, then a caller arrives while the leader is
    still returning: that caller must compute anew, not take the leader's now-outdated value."""
    store = PausingStore()
    cache = TagCache(store)
    db = {"v": "old"}
    leader: list[str] = []
    late: list[str] = []
    late_done = threading.Event()
    lead = threading.Thread(target=lambda: leader.append(cache.get_or_set("k", lambda: db["v"], tags=["t"])))
    lead.start()
    assert store.written.wait(10)
    db["v"] = "new"
    cache.invalidate_tags("t")

    def late_caller() -> None:
        late.append(cache.get_or_set("k", lambda: db["v"], tags=["t"]))
        late_done.set()

    threading.Thread(target=late_caller).start()
    finished = late_done.wait(10)
    store.go.set()
    lead.join(10)
    assert finished and late == ["new"]
    assert leader == ["old"]
    assert cache.get("k") == "new"


# -- freshness windows ----------------------------------------------------------------------------


def test_stale_while_revalidate_serves_stale_and_runs_exactly_one_refresh() -> None:
    cache, timer, jobs = make()
    compute = Counter("v1", "v2")
    assert cache.get_or_set("k", compute, ttl=10, stale_ttl=10) == "v1"
    timer.advance(15)
    assert cache.get_or_set("k", compute, ttl=10, stale_ttl=10) == "v1"
    assert cache.get_or_set("k", compute, ttl=10, stale_ttl=10) == "v1"
    assert cache.get("k") is None  # get() only answers fresh values
    assert len(jobs.pending) == 1 and compute.calls == 1
    jobs.run_all()
    assert compute.calls == 2
    assert cache.get_or_set("k", compute, ttl=10, stale_ttl=10) == "v2"
    assert cache.get("k") == "v2"
    stats = cache.stats()
    assert stats["stale_served"] == 2 and stats["refreshes"] == 1


def test_default_spawn_refreshes_in_a_real_background_thread() -> None:
    timer = FakeTimer(T0)
    cache = TagCache(timer=timer)
    refreshed = threading.Event()
    callers: list[int] = []

    def compute() -> str:
        callers.append(threading.get_ident())
        if len(callers) > 1:
            refreshed.set()
        return f"v{len(callers)}"

    cache.get_or_set("k", compute, ttl=10, stale_ttl=10)
    timer.advance(15)
    assert cache.get_or_set("k", compute, ttl=10, stale_ttl=10) == "v1"
    assert refreshed.wait(10)
    pause = threading.Event()
    for _ in range(10_000):  # the refresh stores its value right after computing it
        if cache.get("k") == "v2":
            break
        pause.wait(0.001)
    assert cache.get("k") == "v2"
    assert callers[1] != threading.get_ident()


def test_failed_background_refresh_keeps_the_stale_value() -> None:
    cache, timer, jobs = make()
    compute = Counter("v1", RuntimeError("boom"), "v3")
    cache.get_or_set("k", compute, ttl=10, stale_ttl=10)
    timer.advance(12)
    assert cache.get_or_set("k", compute, ttl=10, stale_ttl=10) == "v1"
    jobs.run_all()
    assert cache.stats()["refresh_errors"] == 1
    assert cache.get_or_set("k", compute, ttl=10, stale_ttl=10) == "v1"  # a new refresh starts
    jobs.run_all()
    assert cache.get_or_set("k", compute, ttl=10, stale_ttl=10) == "v3"


def test_stale_if_error_serves_stale_only_when_the_refresh_raises() -> None:
    cache, timer, jobs = make()
    compute = Counter("v1", RuntimeError("down"), "v2")
    assert cache.get_or_set("k", compute, ttl=10, error_ttl=10) == "v1"
    timer.advance(12)
    assert cache.get_or_set("k", compute, ttl=10, error_ttl=10) == "v1"  # refresh raised: stale
    assert compute.calls == 2
    assert cache.get_or_set("k", compute, ttl=10, error_ttl=10) == "v2"  # refresh worked: new value
    assert jobs.pending == []
    stats = cache.stats()
    assert stats["stale_served"] == 1 and stats["refresh_errors"] == 1


def test_after_every_window_the_entry_is_gone_and_errors_propagate() -> None:
    cache, timer, _ = make()
    compute = Counter("v1", RuntimeError("down"))
    cache.get_or_set("k", compute, ttl=10, stale_ttl=5, error_ttl=5)
    timer.advance(20)
    with pytest.raises(RuntimeError, match="down"):
        cache.get_or_set("k", compute, ttl=10, stale_ttl=5, error_ttl=5)


def test_soft_invalidation_serves_stale_while_exactly_one_refresh_runs() -> None:
    cache, _, jobs = make()
    compute = Counter("v1", "v2")
    cache.get_or_set("k", compute, tags=["t"], ttl=60)
    cache.invalidate_tags("t", soft=True)
    assert cache.get("k") is None  # not fresh for get()
    assert cache.get_or_set("k", compute, tags=["t"], ttl=60) == "v1"
    assert cache.get_or_set("k", compute, tags=["t"], ttl=60) == "v1"
    assert len(jobs.pending) == 1
    jobs.run_all()
    assert cache.get_or_set("k", compute, tags=["t"], ttl=60) == "v2"
    assert jobs.pending == [] and compute.calls == 2


# -- XFetch ---------------------------------------------------------------------------------------


def xfetch_cache(draw: float, beta: float = 1.0) -> tuple[TagCache, FakeTimer, Jobs, Callable[[], str]]:
    cache, timer, jobs = make(random=lambda: draw, beta=beta)

    def compute() -> str:
        timer.advance(2.0)  # δ = 2 s of measured compute time
        return "v"

    return cache, timer, jobs, compute


@pytest.mark.parametrize(("draw", "refreshes"), [(0.49, 1), (0.51, 0)])
def test_xfetch_refreshes_early_with_probability_exp_minus_remaining_over_beta_delta(
    draw: float, refreshes: int
) -> None:
    cache, timer, jobs, compute = xfetch_cache(draw)
    cache.get_or_set("k", compute, ttl=100)
    fresh_until = timer.now + 100
    timer.now = fresh_until - 2.0 * math.log(2)  # exp(-Δt/(β·δ)) = 0.5 here
    assert cache.get_or_set("k", compute, ttl=100) == "v"
    assert len(jobs.pending) == refreshes


def test_xfetch_never_far_from_expiry_and_never_with_beta_zero() -> None:
    cache, timer, jobs, compute = xfetch_cache(0.0)
    cache.get_or_set("k", compute, ttl=1000)
    timer.advance(10)  # 990 s left, δ = 2: exp(-495) is 0
    cache.get_or_set("k", compute, ttl=1000)
    assert jobs.pending == []
    cache, timer, jobs, compute = xfetch_cache(0.0, beta=0.0)
    cache.get_or_set("k", compute, ttl=10)
    timer.advance(9.99)
    cache.get_or_set("k", compute, ttl=10)
    assert jobs.pending == []


def test_early_refresh_stores_the_new_value() -> None:
    cache, timer, jobs = make(random=lambda: 0.0)
    values = iter(["v1", "v2"])

    def compute() -> str:
        timer.advance(1.0)
        return next(values)

    cache.get_or_set("k", compute, ttl=10)
    timer.advance(9)
    assert cache.get_or_set("k", compute, ttl=10) == "v1"
    jobs.run_all()
    assert cache.get("k") == "v2"


# -- lower-level API (stored validators) ----------------------------------------------------------


def test_begin_set_get_with_a_ticket() -> None:
    cache, timer, _ = make()
    ticket = cache.begin(["route:/books"])
    assert ticket.started is not None and ticket.at == timer.now
    # a late tag the store has never seen has no mark: "invalidated now", so this write is refused
    assert cache.set("etag:/books", '"abc"', ticket=ticket, tags=["book:1"], ttl=30) is False
    assert cache.get("etag:/books") is None
    ticket = cache.begin(["route:/books"])  # the next request's compute can be stored
    assert cache.set("etag:/books", '"abc"', ticket=ticket, tags=["book:1"], ttl=30) is True
    assert cache.get("etag:/books") == '"abc"'
    cache.invalidate_tags("book:1")  # a tag learned after the compute still invalidates
    assert cache.get("etag:/books", "none") == "none"


def test_set_refused_when_invalidated_after_the_ticket() -> None:
    cache, _, _ = make()
    ticket = cache.begin(["route:/books"])
    cache.invalidate_tags("route:/books")
    assert cache.set("etag:/books", '"abc"', ticket=ticket) is False
    assert cache.get("etag:/books") is None


def test_entry_records_the_measured_compute_time() -> None:
    timer = FakeTimer(T0)
    store = MemoryStore(timer=timer)
    cache = TagCache(store, timer=timer)
    ticket = cache.begin()
    timer.advance(0.25)
    cache.set("k", 1, ticket=ticket, ttl=10, stale_ttl=5, error_ttl=3)
    hit = store.get("k", timer.now)
    assert hit is not None
    assert hit.entry.delta == pytest.approx(0.25)
    assert (hit.entry.fresh_until, hit.entry.stale_until, hit.entry.error_until) == (
        timer.now + 10,
        timer.now + 15,
        timer.now + 18,
    )


# -- a store that is down -------------------------------------------------------------------------


class DownStore:
    """A store whose backend cannot be reached (what RedisStore raises, or its open breaker)."""

    def begin(self, tags: Sequence[str]) -> int:
        raise StoreUnavailableError("down")

    def get(self, key: str, now: float) -> Hit | None:
        raise StoreUnavailableError("down")

    def set(self, key: str, entry: Entry, now: float) -> bool:
        raise StoreUnavailableError("down")

    def invalidate(self, tags: Sequence[str], *, soft: bool = False) -> None:
        raise StoreUnavailableError("down")

    def delete(self, key: str) -> None:
        raise StoreUnavailableError("down")

    def clear(self) -> None:
        raise StoreUnavailableError("down")

    def stats(self) -> dict[str, Any]:
        return {"breaker": "open"}


def test_a_store_that_is_down_fails_reads_and_writes_softly_and_invalidations_loudly() -> None:
    cache = TagCache(DownStore())
    compute = Counter("v")
    assert cache.get_or_set("k", compute, tags=["t"]) == "v"
    assert cache.get_or_set("k", compute, tags=["t"]) == "v"
    assert compute.calls == 2
    assert cache.get("k", "default") == "default"
    ticket = cache.begin(["t"])
    assert ticket.started is None
    assert cache.set("k", "v", ticket=ticket) is False
    assert cache.set("k", "v") is False
    # an invalidation that may not have been recorded raises: its write must not be acknowledged
    with pytest.raises(StoreUnavailableError, match="down"):
        cache.invalidate_tags("t")
    with pytest.raises(StoreUnavailableError, match="down"):
        cache.delete("k")
    with pytest.raises(StoreUnavailableError, match="down"):
        cache.clear()
    stats = cache.stats()
    assert stats["breaker"] == "open"
    assert stats["store_errors"] == 10


def test_metrics_receive_cache_events() -> None:
    events: list[str] = []

    class Sink:
        def event(self, name: str, route: str | None = None) -> None:
            events.append(name)

    cache, _, _ = make(metrics=Sink())
    cache.get_or_set("k", lambda: 1)
    cache.get_or_set("k", lambda: 1)
    assert events == ["cache_miss", "cache_hit"]


# -- the decorator --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Book:
    id: int
    author_id: int


def test_cached_with_template_tags_and_invalidation() -> None:
    cache, _, _ = make()
    db = {1: "Dune", 2: "Emma"}
    calls: list[int] = []

    @cache.cached(ttl=60, tags=["books", "book:{book_id}"])
    def title(book_id: int, upper: bool = False) -> str:
        calls.append(book_id)
        return db[book_id].upper() if upper else db[book_id]

    assert title(1) == "Dune" and title(1) == "Dune" and title(book_id=1, upper=False) == "Dune"
    assert calls == [1]
    assert title.tags(1) == ("books", "book:1")
    assert title(2) == "Emma"
    db[1] = "Dune Messiah"
    cache.invalidate_tags("book:1")
    assert title(1) == "Dune Messiah" and title(2) == "Emma"
    assert calls == [1, 2, 1]
    title.delete(2)
    assert title(2) == "Emma" and calls == [1, 2, 1, 2]


def test_cached_with_attribute_templates_callable_tags_and_keys() -> None:
    cache, _, _ = make()

    @cache.cached(tags="author:{book.author_id}", key="book:{book.id}")
    def render(book: Book) -> str:
        return f"book {book.id}"

    @cache.cached(tags=lambda book: [f"b{book.id}", f"a{book.author_id}"], key=lambda book: f"k{book.id}")
    def render2(book: Book) -> str:
        return f"book {book.id}"

    book = Book(3, 9)
    assert render(book) == "book 3" and render.key(book) == "book:3"
    assert render2(book) == "book 3" and render2.key(book) == "k3" and render2.tags(book) == ("b3", "a9")
    assert cache.get("book:3") == "book 3" and cache.get("k3") == "book 3"
    cache.invalidate_tags("a9")
    assert cache.get("k3") is None and cache.get("book:3") == "book 3"
    cache.invalidate_tags("author:9")
    assert cache.get("book:3") is None


def test_decoration_errors_are_raised_at_decoration_time() -> None:
    cache, _, _ = make()
    with pytest.raises(ConfigurationError, match="nope"):

        @cache.cached(tags="book:{nope}")
        def f(book_id: int) -> int:
            return book_id

    with pytest.raises(ConfigurationError):

        @cache.cached(key="{0}")
        def g(book_id: int) -> int:
            return book_id

    with pytest.raises(ConfigurationError):

        @cache.cached(ttl=-5)
        def h(book_id: int) -> int:
            return book_id


def test_default_key_distinguishes_values_and_types_but_not_spelling() -> None:
    cache, _, _ = make()

    @cache.cached()
    def f(x: Any, y: Any = None, **extra: Any) -> Any:
        return (x, y, extra)

    keys = {f.key(v) for v in (1, 1.0, True, "1", b"1", (1,), [1], None, {1}, frozenset({1}))}
    assert len(keys) == 10
    assert f.key(1) == f.key(x=1) == f.key(1, None) == f.key(1, y=None)
    assert f.key(1, z={"b": 1, "a": 2}) == f.key(1, z={"a": 2, "b": 1})
    assert f.key(1).startswith(
        f"{__name__}.test_default_key_distinguishes_values_and_types_but_not_spelling."
    )


def test_default_key_is_stable_across_processes() -> None:
    program = (
        "import datetime, uuid, decimal\n"
        "from etagkit.cache import TagCache\n"
        "cache = TagCache()\n"
        "@cache.cached()\n"
        "def f(*args, **kwargs): return None\n"
        "print(f.key('x', 1, 2.5, None, {'b': [1, 2], 'a': {'z', 'y'}}, b'raw',"
        " when=datetime.date(2024, 1, 2), id=uuid.UUID(int=7), price=decimal.Decimal('1.10')))\n"
    )
    keys = {
        subprocess.run(
            [sys.executable, "-c", program],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed},
        ).stdout.strip()
        for seed in ("1", "2", "random")
    }
    assert len(keys) == 1
    assert next(iter(keys)).startswith("__main__.f:")


class Color(enum.Enum):
    RED = "red"


def test_encoding_of_enums_dataclasses_and_cache_key_objects_and_refusal_of_others() -> None:
    class Tenant:
        def __init__(self, name: str) -> None:
            self.name = name

        def __cache_key__(self) -> str:
            return self.name

    assert canonical(Color.RED) != canonical("red")
    assert canonical(Book(1, 2)) == canonical(Book(1, 2)) != canonical(Book(1, 3))
    assert canonical(Tenant("a")) == canonical(Tenant("a")) != canonical(Tenant("b"))
    with pytest.raises(TypeError, match="__cache_key__"):
        canonical(object())


def test_cached_methods_bind_and_use_cache_key_or_ignore() -> None:
    cache, _, _ = make()

    class Repo:
        def __init__(self, name: str) -> None:
            self.name = name
            self.calls = 0

        def __cache_key__(self) -> str:
            return self.name

        @cache.cached(tags="repo:{self.name}")
        def count(self, kind: str) -> str:
            self.calls += 1
            return f"{self.name}:{kind}"

    class Service:
        @cache.cached(ignore=["self"])
        def answer(self, n: int) -> int:
            return n * 2

    one, two = Repo("one"), Repo("two")
    assert one.count("x") == "one:x" and one.count("x") == "one:x" and one.calls == 1
    assert two.count("x") == "two:x"
    cache.invalidate_tags("repo:one")
    assert one.count("x") == "one:x" and one.calls == 2
    assert Service().answer(4) == 8 and Service().answer(4) == 8
    assert Service.answer.key(Service(), 4) == Service.answer.key(None, 4)
    with pytest.raises(ConfigurationError):
        cache.cached(ignore=["nope"])(lambda x: x)


json_values = st.recursive(
    st.none() | st.integers() | st.text() | st.binary(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)


@given(json_values, json_values)
def test_canonical_encoding_is_deterministic_and_injective(a: Any, b: Any) -> None:
    assert canonical(a) == canonical(a)
    assert (canonical(a) == canonical(b)) == (a == b)


# -- the async face -------------------------------------------------------------------------------


class ThreadRecordingStore(MemoryStore):
    """A MemoryStore that is not one for TagCache's purposes (so calls go off the loop) and
    records which threads its reads ran on."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.threads: set[int] = set()

    def get(self, key: str, now: float) -> Hit | None:
        self.threads.add(threading.get_ident())
        return super().get(key, now)


def test_aget_or_set_caches_values_including_none() -> None:
    async def main() -> None:
        cache, _, _ = make()
        calls: list[int] = []

        async def compute() -> None:
            calls.append(1)

        assert await cache.aget_or_set("k", compute, tags=["t"]) is None
        assert await cache.aget_or_set("k", compute, tags=["t"]) is None
        assert calls == [1]
        cache.invalidate_tags("t")
        await cache.aget_or_set("k", compute, tags=["t"])
        assert calls == [1, 1]

    asyncio.run(main())


def test_async_store_calls_never_run_on_the_event_loop_thread() -> None:
    async def main() -> None:
        store = ThreadRecordingStore()
        cache = TagCache(store)

        async def compute() -> str:
            return "v"

        assert await cache.aget_or_set("k", compute) == "v"
        assert await cache.aget_or_set("k", compute) == "v"
        assert store.threads and threading.get_ident() not in store.threads

    asyncio.run(main())


def test_async_single_flight_and_shared_exception() -> None:
    async def main() -> None:
        cache, _, _ = make()
        started, release = asyncio.Event(), asyncio.Event()
        calls: list[int] = []

        async def compute() -> str:
            calls.append(1)
            started.set()
            await release.wait()
            if len(calls) == 2:
                raise LookupError("down")
            return "v"

        tasks = [asyncio.create_task(cache.aget_or_set("k", compute)) for _ in range(5)]
        await started.wait()
        for _ in range(5):
            await asyncio.sleep(0)  # let the other tasks reach the flight (a yield, not a timing)
        release.set()
        assert await asyncio.gather(*tasks) == ["v"] * 5
        assert calls == [1]

        started.clear()
        release.clear()
        failing = [asyncio.create_task(cache.aget_or_set("other", compute)) for _ in range(3)]
        await started.wait()
        for _ in range(5):
            await asyncio.sleep(0)
        release.set()
        outcomes = await asyncio.gather(*failing, return_exceptions=True)
        assert calls == [1, 1]
        assert all(isinstance(o, LookupError) for o in outcomes)

    asyncio.run(main())


def test_async_waiter_survives_a_cancelled_leader() -> None:
    async def main() -> None:
        cache, _, _ = make()
        started, release = asyncio.Event(), asyncio.Event()
        calls: list[int] = []

        async def compute() -> str:
            calls.append(1)
            if len(calls) == 1:
                started.set()
                await release.wait()
            return f"v{len(calls)}"

        leader = asyncio.create_task(cache.aget_or_set("k", compute))
        await started.wait()
        waiter = asyncio.create_task(cache.aget_or_set("k", compute))
        for _ in range(3):
            await asyncio.sleep(0)
        leader.cancel()
        assert await waiter == "v2"
        with pytest.raises(asyncio.CancelledError):
            await leader

    asyncio.run(main())


def test_async_windows_serve_stale_and_refresh_in_a_task() -> None:
    async def main() -> None:
        cache, timer, _ = make()
        values = iter(["v1", "v2", "v3"])
        fail = [False]

        async def compute() -> str:
            if fail[0]:
                raise RuntimeError("down")
            return next(values)

        assert await cache.aget_or_set("k", compute, ttl=10, stale_ttl=10, error_ttl=10) == "v1"
        timer.advance(15)
        assert await cache.aget_or_set("k", compute, ttl=10, stale_ttl=10, error_ttl=10) == "v1"
        assert await cache.aget_or_set("k", compute, ttl=10, stale_ttl=10, error_ttl=10) == "v1"
        assert len(cache._tasks) == 1  # exactly one background refresh
        await asyncio.gather(*cache._tasks)
        assert cache.get("k") == "v2"
        timer.advance(25)  # stale-if-error window of v2
        fail[0] = True
        assert await cache.aget_or_set("k", compute, ttl=10, stale_ttl=10, error_ttl=10) == "v2"
        fail[0] = False
        assert await cache.aget_or_set("k", compute, ttl=10, stale_ttl=10, error_ttl=10) == "v3"

    asyncio.run(main())


def test_async_functions_can_be_decorated() -> None:
    async def main() -> None:
        cache, _, _ = make()
        calls: list[int] = []

        @cache.cached(tags="book:{book_id}")
        async def title(book_id: int) -> str:
            calls.append(book_id)
            return f"title {book_id}"

        assert await title(1) == "title 1"
        assert await title(book_id=1) == "title 1"
        assert calls == [1]
        cache.invalidate_tags("book:1")
        assert await title(1) == "title 1" and calls == [1, 1]

    asyncio.run(main())

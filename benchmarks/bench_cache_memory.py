"""MemoryStore and TagCache against a raw cachetools.TTLCache; invalidation cost vs entry count.

* A MemoryStore hit on an entry with two tags (validity checked against both tags' marks and the
  global mark) against a raw ``TTLCache[key]`` hit: target <= 2x (issue 3).
* ``TagCache.get`` hit on the same entry (the front's own cost: freshness windows, stats), against
  the same raw hit: target <= 2x (issue 15).
* Both hits when the entry's marks must be read again (the first hit after an invalidation of any
  tag; later hits reuse the check until a mark moves): target <= 2x (issue 15).
* ``TagCache.get_or_set`` hit, against the same raw hit, for information.
* Invalidating one tag carried by 100,000 entries against invalidating one carried by 1 entry:
  target <= 1.5x (issue 3). Invalidation moves one mark on a logical clock, so it is O(1).

Runnable alone: ``python -m benchmarks.bench_cache_memory [--quick]``.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from cachetools import TTLCache

from benchmarks._harness import Loop, measure_loops, row
from etagkit.cache import MemoryStore, TagCache

KEY = "book:42"
TAGS = ("book:42", "author:7")
MANY = 100_000


def _hit_loops() -> dict[str, Loop]:
    raw: TTLCache[str, Any] = TTLCache(maxsize=10_000, ttl=300, timer=time.time)
    raw[KEY] = {"id": 42}
    store = MemoryStore()
    cache = TagCache(store)
    cache.get_or_set(KEY, lambda: {"id": 42}, tags=TAGS)
    now = time.time()

    def ttlcache(n: int) -> None:
        for _ in range(n):
            raw[KEY]

    def store_get(n: int) -> None:
        get = store.get
        for _ in range(n):
            get(KEY, now)

    slot = store._entries[KEY]  # internal: its check epoch is reset to force the re-read
    if getattr(slot, "checked", None) is None:
        raise RuntimeError("MemoryStore's slot no longer has `checked`: update the re-read scenario")
    poke = _Poke()

    def ttlcache_poked(n: int) -> None:
        for _ in range(n):
            poke.checked = -1  # the same attribute store as the re-read loops: billed to both sides
            raw[KEY]

    def store_recheck(n: int) -> None:
        get = store.get
        for _ in range(n):
            slot.checked = -1  # as after an invalidation of some other tag: the marks are read again
            get(KEY, now)

    def cache_get(n: int) -> None:
        get = cache.get
        for _ in range(n):
            get(KEY)

    def cache_recheck(n: int) -> None:
        get = cache.get
        for _ in range(n):
            slot.checked = -1
            get(KEY)

    def get_or_set(n: int) -> None:
        compute = dict
        for _ in range(n):
            cache.get_or_set(KEY, compute, tags=TAGS)

    return {
        "ttlcache": ttlcache,
        "store": store_get,
        "ttlcache_poked": ttlcache_poked,
        "recheck": store_recheck,
        "get": cache_get,
        "get_recheck": cache_recheck,
        "get_or_set": get_or_set,
    }


class _Poke:
    __slots__ = ("checked",)

    def __init__(self) -> None:
        self.checked = 0


def _filled(entries: int) -> MemoryStore:
    store = MemoryStore(max_entries=entries, max_marks=entries + 10)
    for i in range(entries):
        store.set(f"k{i}", _entry(store, i), time.time())
    return store


def _entry(store: MemoryStore, i: int) -> Any:
    from etagkit.cache import Entry

    started = store.begin(("t", f"item:{i}"))
    far = time.time() + 3600
    return Entry(i, ("t", f"item:{i}"), started, far, far, far)


def _invalidate_loops(quick: bool) -> dict[str, Loop]:
    many, one = _filled(MANY // 10 if quick else MANY), _filled(1)

    def invalidate(store: MemoryStore) -> Loop:
        def loop(n: int) -> None:
            inv = store.invalidate
            tags = ("t",)
            for _ in range(n):
                inv(tags)

        return loop

    return {"many": invalidate(many), "one": invalidate(one)}


def run(quick: bool) -> list[dict[str, Any]]:
    """Rows in the runner's format (``benchmarks/_harness.py``)."""
    hits = measure_loops(_hit_loops(), quick)
    count = MANY // 10 if quick else MANY
    inv = measure_loops(_invalidate_loops(quick), quick)
    baseline = "cachetools.TTLCache[key] hit"
    reread = (
        "the first hit after any invalidation re-reads the entry's marks (later hits do not); forced "
        "by resetting the entry's check epoch, one attribute store also made on the baseline's side"
    )
    return [
        row("MemoryStore.get hit, 2 tags", hits["store"], baseline, hits["ttlcache"], target="<= 2x"),
        row(
            "MemoryStore.get hit, 2 tags, marks re-read",
            hits["recheck"],
            baseline,
            hits["ttlcache_poked"],
            target="<= 2x",
            note=reread,
        ),
        row("TagCache.get hit, 2 tags", hits["get"], baseline, hits["ttlcache"], target="<= 2x"),
        row(
            "TagCache.get hit, 2 tags, marks re-read",
            hits["get_recheck"],
            baseline,
            hits["ttlcache_poked"],
            target="<= 2x",
            note=reread,
        ),
        row("TagCache.get_or_set hit, 2 tags", hits["get_or_set"], baseline, hits["ttlcache"]),
        row(
            f"invalidate 1 tag carried by {count:,} entries",
            inv["many"],
            "same, carried by 1 entry",
            inv["one"],
            target="<= 1.5x",
        ),
    ]


def main() -> None:
    print("medians per call; ratio = median over rounds of that round's etagkit / baseline time")
    for result in run("--quick" in sys.argv[1:]):
        target = result["target"] or "-"
        print(
            f"{result['scenario']:<48} {result['etagkit_s'] * 1e9:9.0f} ns  vs {result['baseline']:<32}"
            f" {result['baseline_s'] * 1e9:9.0f} ns  ratio {result['ratio']:5.2f}  target {target}"
        )


if __name__ == "__main__":
    main()

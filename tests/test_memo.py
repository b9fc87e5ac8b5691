"""Memos an attacker can feed are bounded in bytes (issue 13.1): long inputs are computed, not kept."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

from etagkit.core import keys, records
from etagkit.core.keys import path_tag, representation_key
from etagkit.core.memo import MEMO_MAX_CHARS, fields_chars
from etagkit.core.records import CachedResponse, StoredValidator


def test_fields_chars_counts_names_and_values() -> None:
    assert fields_chars([("ETag", '"x"'), ("Vary", "")]) == 4 + 3 + 4
    assert fields_chars([]) == 0


def _retained(fill: Callable[[int], object], count: int) -> int:
    """Bytes still allocated after ``count`` calls of ``fill(i)`` whose results are dropped."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(count):
            fill(i)
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


MEMOS = (keys._key_memo, keys._tag_memo, records._decode_memo, records._encode_memo, records._record_memo)


def _clear() -> None:
    for memo in MEMOS:
        memo.cache_clear()


def test_unique_100kb_targets_are_not_kept() -> None:
    _clear()
    long_query = "q=" + "x" * 100_000

    def fill(i: int) -> object:
        origin = f"http://h{i}." + "y" * 2000 + ".test"
        return representation_key("GET", "/p", f"{long_query}{i}", origin=origin), path_tag("/p", origin)

    retained = _retained(fill, 300)  # 300 x 100 KB = 30 MB if kept
    assert retained < 1 << 20, retained
    assert keys._key_memo.cache_info().currsize == 0
    assert keys._tag_memo.cache_info().currsize == 0


def test_the_key_memos_hold_at_most_maxsize_short_entries() -> None:
    _clear()
    part = MEMO_MAX_CHARS // 2 - 20

    def fill(i: int) -> object:
        origin = f"http://{i}.test"
        return representation_key("GET", "/" + "p" * part, f"q={i}" + "x" * part, origin=origin), path_tag(
            "/" + "p" * part + str(i), origin
        )

    retained = _retained(fill, 6000)  # more than the 4,096 entries each memo keeps
    assert keys._key_memo.cache_info().currsize == 4096
    # 2 memos x 4,096 entries x ~1 KB of ASCII input each, plus the keys themselves: about 10 MB
    assert retained < 16 << 20, retained


def test_unique_long_records_are_not_kept() -> None:
    _clear()

    def fill(i: int) -> object:
        location = f"/{i}/" + "l" * 5000
        stored = StoredValidator.from_response(200, [("ETag", f'"{i}"'), ("Content-Location", location)])
        assert stored is not None
        value = stored.to_value()
        assert StoredValidator.from_value(value) == stored
        return CachedResponse.from_value({"s": 200, "h": [["ETag", f'"{i}"'], ["X", location]], "b": b""})

    retained = _retained(fill, 500)  # 500 x 3 memos x 5 KB = 7.5 MB if kept
    assert retained < 1 << 20, retained
    for memo in (records._decode_memo, records._encode_memo, records._record_memo):
        assert memo.cache_info().currsize == 0


def test_short_records_are_still_memoized() -> None:
    _clear()
    headers = (("ETag", '"a"'), ("Cache-Control", "no-cache"))
    first = StoredValidator.from_response(200, headers)
    assert first is not None and StoredValidator.from_response(200, headers) is first
    value = first.to_value()
    assert StoredValidator.from_value(value) is StoredValidator.from_value(value)

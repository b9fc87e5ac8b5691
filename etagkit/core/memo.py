"""Memos bounded in bytes: an LRU memo that skips inputs above a size (issue 13: hostile input).

Requests repeat (the same paths, tags, dates and records), so the core memoizes its pure functions;
but an attacker sends inputs that never repeat. An ``lru_cache(maxsize=N)`` alone is bounded in
entries, not bytes: N entries of 100 KB query strings are 400 MB. :func:`bounded_memo` memoizes an
input only when its size (in characters, at most 4 bytes each in CPython) is within ``max_chars``,
so a memo holds at most ``maxsize x max_chars`` characters of input; larger inputs are computed each
time, as they would be without a memo. Pure: no clock, no I/O.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import ParamSpec, TypeVar, cast

__all__ = ["MEMO_MAX_CHARS", "bounded_memo", "fields_chars"]

P = ParamSpec("P")
R = TypeVar("R")

# Inputs longer than this are not memoized. Real URLs, tags, dates and 304 header sets are far
# shorter; a memo of 4,096 entries then holds at most 4 MiB of such text (16 MiB if all UCS-4).
MEMO_MAX_CHARS = 1024


def fields_chars(fields: Iterable[tuple[str, str]]) -> int:
    """The characters in header names and values: what a memo keyed by these fields holds."""
    return sum(len(name) + len(value) for name, value in fields)


def bounded_memo(
    maxsize: int, chars: Callable[P, int], max_chars: int = MEMO_MAX_CHARS
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a pure function with an LRU memo of ``maxsize`` entries that only keeps calls whose
    ``chars(*args, **kwargs)`` is at most ``max_chars``; larger calls run the function uncached.

    ``chars`` must not raise for the inputs the function accepts; the wrapper exposes the memo as
    ``.memo`` (``cache_info()``, ``cache_clear()``) for tests and benchmarks.
    """

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        memo = functools.lru_cache(maxsize=maxsize)(function)
        call = cast("Callable[P, R]", memo)  # the same arguments; unhashable ones raise TypeError

        @functools.wraps(function)
        def bounded(*args: P.args, **kwargs: P.kwargs) -> R:
            if chars(*args, **kwargs) <= max_chars:
                return call(*args, **kwargs)
            return function(*args, **kwargs)

        bounded.memo = memo  # type: ignore[attr-defined]
        return bounded

    return decorate

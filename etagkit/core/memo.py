"""The size bound of the core's memos (issue 13: memory an attacker can feed is bounded in bytes).

Requests repeat (the same paths, tags, dates and records), so the core memoizes its pure functions
with ``functools.lru_cache``; but an attacker sends inputs that never repeat, and an LRU of N entries
is bounded in entries, not bytes: 4,096 entries of 100 KB query strings are 400 MB. So each memoized
function memoizes an input only when its size (in characters, at most 4 bytes each in CPython) is at
most :data:`MEMO_MAX_CHARS`, and computes larger ones each time, as it would without a memo: a memo
of 4,096 entries then holds at most 4 MiB of input text (16 MiB were it all UCS-4). The check is
written inline at each memo, so a hit costs one ``len`` more than before, not a wrapper call.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["MEMO_MAX_CHARS", "fields_chars"]

# Real URLs, tags, dates and 304 header sets are far shorter; longer inputs are not memoized.
MEMO_MAX_CHARS = 1024


def fields_chars(fields: Iterable[tuple[str, str]]) -> int:
    """The characters in header names and values: what a memo keyed by these fields holds."""
    return sum(len(name) + len(value) for name, value in fields)

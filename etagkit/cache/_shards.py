"""A namespace spread over a Redis Cluster: ``count`` shards, each a hash slot of its own.

Why shards, each with its own copy of the marks: a read must check an entry against its tags'
marks, and Redis runs a script on one node only. Shard ``k`` holds entries whose key hashes to
``k``, plus a copy of the marks and a clock, so a read or write stays one script on one node.
Shard 0 (the namespace's own slot) is the home: its clock issues every ``started`` (``begin``) and
every invalidation's value ``C``. An invalidation runs in phases: the home script (clock and home
marks: ``C``), then every other shard in one concurrent round (one pipelined write per node, then
the replies: ``mark = max(mark, C)``, ``clock_k = max(clock_k, C)``), then the PUBLISH to two-level
readers (after every shard has the mark, so a reader cannot re-copy an entry a later phase would
invalidate). ``invalidate`` returns (or raises) only after all of them.

Why the shards may see the marks at different moments and still be safe: marks only grow, and an
entry is immutable with the ``started`` value of its ticket. A read between the phases that still
finds an old mark is a read that overlapped the invalidation (allowed: it had not returned). Any
read that starts after ``invalidate`` returned finds ``mark >= C`` on every shard, and any entry
begun before the invalidation has ``started < C``: refused or unreadable everywhere. A ticket
taken after the home phase has ``started >= C``, so it stays valid when the late phases arrive.
A mark missing on shard ``k`` is created at ``clock_k`` (every mark value shard ``k`` ever had is at
most ``clock_k``): an entry is accepted only if ``started >= clock_k``, i.e. it began after every
invalidation that reached ``k``; later ones raise its marks when their phase arrives. Every write
to shard ``k`` refreshes ``clock_k`` (it lives far longer than any mark), so a missing ``clock_k``
means a shard that never saw a mark, or one whose marks all expired; it then starts at the
writer's ``started``. (Left open: ``allkeys-lru`` evicting ``clock_k`` and a mark written during
that very compute, both within one compute's duration.)

Slots: shard ``k``'s hash tag is the namespace's tag plus a suffix chosen so the shards' slots sit
in ``count`` equal slot ranges; a cluster that splits slots evenly over its masters (what
``redis-cli --cluster create`` does) thereby gets every master about ``1/masters`` of the keys.
The choice is a pure function of the namespace and ``count``: every process computes the same.
"""

from __future__ import annotations

import zlib

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

__all__ = ["shard_namespaces", "shard_of"]


def _tag_span(namespace: str) -> tuple[int, int]:
    """Start and end (exclusive) of the hash tag's content in ``namespace`` (``namespace_for``)."""
    start = namespace.find("{")
    end = namespace.find("}", start + 2)
    return start + 1, end


def shard_namespaces(namespace: str, count: int) -> list[str]:
    """``count`` namespaces: ``namespace`` itself (the home), then one per other slot range."""
    if count <= 1:
        return [namespace]
    start, end = _tag_span(namespace)
    tag = namespace[start:end]
    width = REDIS_CLUSTER_HASH_SLOTS / count
    home_range = int(key_slot(tag.encode()) // width)
    result = [namespace]
    n = 0
    for wanted in range(count):
        if wanted == home_range:
            continue
        while True:
            candidate = f"{tag}~{n}"
            n += 1
            if int(key_slot(candidate.encode()) // width) == wanted:
                result.append(namespace[:start] + candidate + namespace[end:])
                break
    return result


def shard_of(key: str, count: int) -> int:
    """The shard an entry key lives in: a stable hash (CRC32), the same in every process."""
    if count <= 1:
        return 0
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % count

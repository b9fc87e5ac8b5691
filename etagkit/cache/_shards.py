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

import json
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.cluster import RedisCluster
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from ._redis_lua import _PUBLISH, _RAISE

__all__ = ["Router", "ShardKeys", "later_phases", "shard_namespaces", "shard_of"]

_DIRECT_PAUSE = 1.0  # seconds without the direct route after a connection error (failover, resharding)


@dataclass(frozen=True, slots=True)
class ShardKeys:
    """The key prefixes of one shard of a namespace (a single-slot namespace has one shard)."""

    namespace: str
    clock: str = field(init=False)
    entries: str = field(init=False)
    hard: str = field(init=False)
    soft: str = field(init=False)
    soft_latest: str = field(init=False)  # the latest soft mark of any tag (a read checks it first)
    leases: str = field(init=False)

    def __post_init__(self) -> None:
        names = {"clock": "c", "entries": "e:", "hard": "h:", "soft": "s:", "leases": "l:"}
        names["soft_latest"] = "s"
        for name, suffix in names.items():
            object.__setattr__(self, name, self.namespace + suffix)


class Router:
    """EVALSHA on the node that owns the first key. On a cluster it goes straight to that node's
    client (redis-py's cluster client costs ~50 µs more per call in its routing); a MOVED or ASK
    reply (resharding) goes through the cluster client, which follows it and refreshes its slot
    map, and a connection error pauses the direct route for a second so that the cluster client's
    own failover handling runs."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.cluster = isinstance(client, RedisCluster)
        self._paused_until = 0.0

    def evalsha(self, sha: str, keys: list[str], args: Sequence[Any]) -> Any:
        client = self.client
        if self.cluster and time.monotonic() >= self._paused_until:
            slot = key_slot(keys[0].encode("utf-8", "surrogatepass"))
            node = client.nodes_manager.get_node_from_slot(slot)
            direct = client.get_redis_connection(node)
            try:
                return direct.execute_command("EVALSHA", sha, len(keys), *keys, *args)
            except (redis.exceptions.MovedError, redis.exceptions.AskError, redis.exceptions.TryAgainError):
                pass  # resharding: let the cluster client follow the redirection
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                self._paused_until = time.monotonic() + _DIRECT_PAUSE
                raise
        return client.execute_command("EVALSHA", sha, len(keys), *keys, *args)


def later_phases(
    client: Any,
    shards: Sequence[ShardKeys],
    channel: str,
    tags: Sequence[str],
    *,
    soft: bool,
    clock: int,
    origin: str,
    margin_ms: int,
    plain: bool,
) -> int:
    """A sharded invalidation after its home phase: raise the marks on every other shard in one
    concurrent round (a pipelined write per node, then the replies), then publish from the home
    node. How many subscribers received the message. ``plain``: EVAL (no script cache needed)."""
    pipe: Any = client.pipeline(transaction=False)
    for shard in shards[1:]:
        marks = shard.soft if soft else shard.hard
        keys = [shard.clock, *(marks + tag for tag in tags)]
        if soft:
            keys.append(shard.soft_latest)
        pipe.execute_command("EVAL", _RAISE.source, len(keys), *keys, margin_ms, clock)
    pipe.execute()
    message = json.dumps({"f": "s" if soft else "h", "t": list(tags), "c": str(clock), "o": origin})
    script = _PUBLISH.source if plain else _PUBLISH.sha
    home = shards[0].clock
    return int(client.execute_command("EVAL" if plain else "EVALSHA", script, 1, home, channel, message))


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

"""RedisStore: the tag-mark store contract (``_store.py``) on Redis, one round trip per read.

Layout, under a namespace ``B`` (see "Redis Cluster" below)::

    B c            the logical clock (string integer)
    B h:<tag>      the tag's hard mark; B s:<tag> its soft mark (string integers)
    B e:<key>      an entry: hash {d: the self-describing record, k: JSON list of its mark keys,
                   s: started}
    B inv          pub/sub channel: every invalidation and delete is published here (two-level mode)
    B ack:<id>     pub/sub channel: acknowledgements of two-level store <id>'s invalidations

Every operation is one Lua script (EVALSHA), so each is one round trip and atomic: a read fetches
the entry, then all its marks (its tags' plus ``GLOBAL_TAG``'s) with one MGET inside the script,
and returns the record only if every hard mark exists and is ``<= started``;
a write is the compare-and-set of the contract; an invalidation advances the clock, sets the marks
and PUBLISHes, all in the same script. Every key has a TTL: entries live until ``error_until``;
marks and the clock get ``mark_ttl`` (long, refreshed on every write), so Redis may run
``allkeys-lru``. An evicted mark reads as "invalidated now". The clock is a hybrid logical clock,
``max(clock + 1, server time in µs)``, so even if the clock key itself is evicted, it restarts above
every value it ever had.

Restarts. Redis never persists its script cache, so a NOSCRIPT reply means the server restarted
(from an RDB/AOF file that may predate acknowledged invalidations) or its scripts were flushed.
Before anything else runs on it, the store invalidates ``GLOBAL_TAG`` with a plain EVAL, then loads
its scripts and retries the call. Every access is a script, so the first one after a restart (from
any process) is that global invalidation. Its mark is ``max(clock + 1, server time in µs)``: above
every ``started`` of the snapshot's entries (each is at most the snapshot's clock), and above any
ticket taken before the crash (the clock never runs ahead of server time, except by +1 steps when
it is invalidated faster than once a µs). Remaining gap: a server that comes back with *older data
but its scripts still cached* is not detected: a replica promoted (Sentinel, Cluster failover)
after missing the last writes of an asynchronous replication, or a dataset swapped under a running
server (``DEBUG RELOAD`` of an old file, ``RESTORE``). Such a failover should be followed by
``clear()`` (one global invalidation); a server whose wall clock steps back across a restart also
weakens the argument above.

A circuit breaker (``breaker.py``) wraps every call, with short socket timeouts. While it is open,
calls raise ``StoreUnavailableError`` without touching the network (``TagCache`` turns that into a
miss or a skipped write). Any call that could not reach Redis (timeout, refused by the breaker;
reads too, since another process's invalidation may have been lost in the same outage) is
remembered, and the next call first invalidates ``GLOBAL_TAG``, so nothing written before the
outage can be served once Redis is back.

Redis Cluster: a read must see an entry and its tag marks on one node, atomically. All keys of a
store therefore share one hash tag: the namespace is ``{prefix}`` (the prefix wrapped in braces),
or the prefix as given if it already contains a ``{...}`` hash tag. One namespace is one slot, so
each script touches a single node and stays atomic; scale out by giving independent data sets their
own namespaces (each lands on its own slot, spread over the masters). Pass a
``redis.cluster.RedisCluster`` as ``client``.

Serialization is ``_serialize.Codec``: msgpack or JSON, pickle only with a ``pickle_key`` (HMAC-signed).
A record that is not etagkit's, or fails its HMAC, is a miss and a logged warning, never an exception.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.cluster import RedisCluster
    from redis.retry import Retry
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without redis
    raise ImportError("etagkit.cache.redis needs redis-py: pip install 'etagkit[redis]'") from exc

from .._config import number
from .._errors import ConfigurationError, SerializationError, StoreUnavailableError
from ._serialize import Codec, SerializerName
from ._store import GLOBAL_TAG, Entry, Hit, SetResult
from .breaker import CircuitBreaker

__all__ = ["RedisStore"]

log = logging.getLogger("etagkit.cache.redis")

T = TypeVar("T")
_Arg = bytes | str | int | float

# Errors meaning "Redis did not answer": they feed the breaker. Anything else that redis-py raises
# (ResponseError: WRONGTYPE, OOM, ...) means Redis answered; the operation fails, the breaker does not.
_UNREACHABLE = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ClusterError,
    redis.exceptions.RedisClusterException,
    OSError,
)

# Shared Lua: the hybrid clock. Marks are plain strings (hard ``h:<tag>``, soft ``s:<tag>``) so that
# one MGET reads them all; MGET answers nil for a key of another type, and SET overwrites any type,
# so a foreign value under a mark key reads as "no mark" and is repaired by the next write.
_LUA_CLOCK = """
local function fmt(n) return string.format('%.0f', n) end
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function read_clock(ck, ttl)
  local c = tonumber(redis.call('MGET', ck)[1])
  if c then
    redis.call('PEXPIRE', ck, ttl)
    return c
  end
  c = now_us()
  redis.call('SET', ck, fmt(c), 'PX', ttl)
  return c
end
"""

# KEYS: clock, hard mark keys... ARGV: mark_ttl_ms -> the clock
_BEGIN_LUA = (
    _LUA_CLOCK
    + """
local c = read_clock(KEYS[1], ARGV[1])
if #KEYS > 1 then
  local m = redis.call('MGET', unpack(KEYS, 2))
  for i = 2, #KEYS do
    if not tonumber(m[i - 1]) then redis.call('SET', KEYS[i], fmt(c), 'PX', ARGV[1]) end
  end
end
return c
"""
)

# KEYS: entry -> nil (miss) | -1 (a foreign value under the key) | record (a hit) | {record} (a hit,
# soft-invalidated: rare, so the common reply is one bulk string, as cheap to parse as a GET's)
# The entry hash: d = record, k = JSON [hard mark keys..., soft mark keys...], s = started.
_GET_LUA = """
local e = redis.pcall('HMGET', KEYS[1], 'd', 'k', 's')
if e.err then return -1 end
if not e[1] then return nil end
local started = tonumber(e[3])
local ok, keys = pcall(cjson.decode, e[2])
if not started or not ok or type(keys) ~= 'table' or #keys == 0 then return -1 end
local m = redis.call('MGET', unpack(keys))
local n = #keys / 2
local soft = false
for i = 1, n do
  local h = tonumber(m[i])
  if not h or h > started then return nil end
  local s = tonumber(m[n + i])
  if s and s > started then soft = true end
end
if soft then return {e[1]} end
return e[1]
"""

# KEYS: entry, clock, hard mark keys... ARGV: mark_ttl_ms, entry_ttl_ms, record, keys JSON, started
# -> 1 stored | 0 refused (a tag invalidated after `started`, or without a mark: one is created)
#    | 2 valid but not stored (entry_ttl_ms <= 0: it would expire at once)
_SET_LUA = (
    _LUA_CLOCK
    + """
local started = tonumber(ARGV[5])
local stored = 1
local c = nil
local m = redis.call('MGET', unpack(KEYS, 3))
for i = 3, #KEYS do
  local h = tonumber(m[i - 2])
  if not h then
    c = c or read_clock(KEYS[2], ARGV[1])
    redis.call('SET', KEYS[i], fmt(c), 'PX', ARGV[1])
    stored = 0
  elseif h > started then
    stored = 0
  else
    redis.call('PEXPIRE', KEYS[i], ARGV[1])
  end
end
redis.call('DEL', KEYS[1])  -- what was there is no newer than this value
if stored == 1 and tonumber(ARGV[2]) <= 0 then return 2 end
if stored == 1 then
  redis.call('HSET', KEYS[1], 'd', ARGV[3], 'k', ARGV[4], 's', ARGV[5])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return stored
"""
)

# KEYS: clock, mark keys (all hard or all soft)... ARGV: mark_ttl_ms, channel, 'h' | 's', origin, tags...
# -> {the new clock, how many subscribers received the message}; published in the same script, with
# the clock as a string (cjson would round a 16-digit number) and the origin to acknowledge it to
_INVALIDATE_LUA = (
    _LUA_CLOCK
    + """
local c = tonumber(redis.call('MGET', KEYS[1])[1]) or 0
c = fmt(math.max(c + 1, now_us()))
redis.call('SET', KEYS[1], c, 'PX', ARGV[1])
for i = 2, #KEYS do
  redis.call('SET', KEYS[i], c, 'PX', ARGV[1])
end
local msg = cjson.encode({f = ARGV[3], t = {unpack(ARGV, 5)}, c = c, o = ARGV[4]})
local n = redis.call('PUBLISH', ARGV[2], msg)
return {tonumber(c), n}
"""
)

# KEYS: entry. ARGV: channel, key
_DELETE_LUA = """
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[1], cjson.encode({k = ARGV[2]}))
return 1
"""


_SET_RESULTS = {1: SetResult.STORED, 0: SetResult.REFUSED, 2: SetResult.NOT_STORED}


class _ErrorReply(StoreUnavailableError):
    """Redis answered with an error (OOM, WRONGTYPE ...): the link works, the call did not."""


def _is_real(x: object) -> bool:
    return type(x) is float or type(x) is int


@dataclass(frozen=True, slots=True)
class _Script:
    """A Lua script and its SHA1, for EVALSHA (redis-py's ``Script`` adds per-call overhead we avoid)."""

    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


_BEGIN = _Script(_BEGIN_LUA)
_GET = _Script(_GET_LUA)
_SET = _Script(_SET_LUA)
_INVALIDATE = _Script(_INVALIDATE_LUA)
_DELETE = _Script(_DELETE_LUA)
_SCRIPTS = (_BEGIN, _GET, _SET, _INVALIDATE, _DELETE)


def namespace_for(prefix: str) -> str:
    """The key namespace: ``prefix`` if it holds a ``{hash tag}``, else ``{prefix}`` (one cluster slot).

    An empty prefix is refused: ``{}`` is an empty hash tag, which Redis Cluster ignores (each key
    would then hash on its own, and a script's keys would span slots)."""
    if not isinstance(prefix, str) or not prefix:
        raise ConfigurationError(f"prefix must be a non-empty string, not {prefix!r}")
    start = prefix.find("{")
    if start != -1 and prefix.find("}", start + 2) != -1:
        return prefix
    return "{" + prefix + "}"


class RedisStore:
    """The ``Store`` contract on Redis (or Redis Cluster): one EVALSHA per read, CAS writes, a breaker.

    ``client`` is a URL (a client with short timeouts and no retries is built) or a ``redis.Redis`` /
    ``redis.cluster.RedisCluster`` created with ``decode_responses=False`` (give it short
    ``socket_timeout`` / ``socket_connect_timeout`` yourself). ``prefix`` namespaces every key.
    """

    def __init__(
        self,
        client: redis.Redis | RedisCluster | str,
        *,
        prefix: str = "etagkit:",
        serializer: SerializerName = "auto",
        pickle_key: bytes | None = None,
        socket_timeout: float = 0.05,
        connect_timeout: float = 0.05,
        mark_ttl: float = 7 * 24 * 3600,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        socket_timeout = number("socket_timeout", socket_timeout, positive=True)
        connect_timeout = number("connect_timeout", connect_timeout, positive=True)
        mark_ttl = number("mark_ttl", mark_ttl, positive=True)
        self.namespace = namespace_for(prefix)
        self._owns_client = isinstance(client, str)
        if isinstance(client, str):
            client = redis.Redis.from_url(
                client,
                socket_timeout=socket_timeout,
                socket_connect_timeout=connect_timeout,
                retry=Retry(NoBackoff(), 0),
            )
        if client.get_encoder().decode_responses:
            raise ConfigurationError("RedisStore needs a client with decode_responses=False")
        self.client = client
        self.channel = self.namespace + "inv"
        self.codec = Codec(serializer, pickle_key=pickle_key)
        self.breaker = breaker or CircuitBreaker()
        self._clock_key = self.namespace + "c"
        self._entries = self.namespace + "e:"
        self._hard = self.namespace + "h:"
        self._soft = self.namespace + "s:"
        self._global_keys = [self._hard + GLOBAL_TAG]
        self._mark_ttl_ms = max(1, int(mark_ttl * 1000))
        self._owed_global = False  # a mutation may not have reached Redis: invalidate everything first
        self._owed_lock = threading.Lock()
        self.restarts_detected = 0  # NOSCRIPT replies answered with a global invalidation

    def _eval(self, script: _Script, keys: list[str], args: Sequence[_Arg]) -> Any:
        """EVALSHA (one round trip). NOSCRIPT means the server restarted (maybe from a snapshot older
        than the last invalidations) or was flushed: invalidate everything, load the scripts, retry."""
        client: Any = self.client
        try:
            return client.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            pass
        keys_g, args_g = self._invalidate_call((GLOBAL_TAG,), soft=False)
        # no clock yet: a first start on an empty namespace, nothing to lose (so not a warning)
        first_use = not client.exists(self._clock_key)
        client.execute_command("EVAL", _INVALIDATE.source, len(keys_g), *keys_g, *args_g)  # before all else
        self.restarts_detected += 1
        log.log(
            logging.INFO if first_use else logging.WARNING,
            "Redis has no etagkit scripts (first use, restart, flush): invalidated all of %s",
            self.namespace,
        )
        for each in _SCRIPTS:  # so that other calls do not answer NOSCRIPT (and invalidate) again
            client.script_load(each.source)
        return client.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)

    # -- the breaker around every call ----------------------------------------------------------------

    def _call(self, fn: Callable[[], T], *, mutation: bool = False) -> T:
        """Run one Redis call through the breaker; unreachable -> StoreUnavailableError.

        After any call that could not reach Redis (a read too), this process owes a GLOBAL
        invalidation: while Redis was stalled or cut off from it, another process's invalidation may
        not have been delivered either, and that process may not be the first to call again. A
        mutation that Redis refused with an error reply is owed as well (it was not applied).
        """
        if self._owed_global:
            self._settle_owed()
        try:
            return self._guarded(fn)
        except StoreUnavailableError as exc:
            if mutation or not isinstance(exc, _ErrorReply):
                self._owed_global = True
            raise

    def _guarded(self, fn: Callable[[], T]) -> T:
        breaker = self.breaker
        if not breaker.allow():
            raise StoreUnavailableError("Redis circuit breaker is open")
        try:
            result = fn()
        except _UNREACHABLE as exc:
            breaker.record_failure()
            raise StoreUnavailableError(f"Redis unreachable: {exc}") from exc
        except redis.exceptions.RedisError as exc:
            breaker.record_success()  # Redis answered (an error reply): the link is fine
            log.warning("Redis refused a cache call: %s", exc)
            raise _ErrorReply(f"Redis error reply: {exc}") from exc
        except BaseException:
            breaker.record_success()
            raise
        breaker.record_success()
        return result

    def _settle_owed(self) -> None:
        """Deliver the owed GLOBAL invalidation before anything else may read or write."""
        with self._owed_lock:
            if not self._owed_global:
                return
            self._guarded(lambda: self._run_invalidate((GLOBAL_TAG,), soft=False))
            self._owed_global = False
            log.warning("Redis is back: invalidated everything written before the outage")

    def _invalidate_call(
        self, tags: Sequence[str], *, soft: bool, origin: str = ""
    ) -> tuple[list[str], list[_Arg]]:
        """The keys and arguments of the invalidation script for ``tags``."""
        marks = self._soft if soft else self._hard
        keys = [self._clock_key, *(marks + tag for tag in tags)]
        return keys, [self._mark_ttl_ms, self.channel, "s" if soft else "h", origin, *tags]

    def _run_invalidate(self, tags: Sequence[str], *, soft: bool, origin: str = "") -> tuple[int, int]:
        clock, receivers = self._eval(_INVALIDATE, *self._invalidate_call(tags, soft=soft, origin=origin))
        return int(clock), int(receivers)

    # -- the Store contract ---------------------------------------------------------------------------

    def begin(self, tags: Sequence[str]) -> int:
        """The clock now; creates missing marks (and the global mark) at that value. One round trip."""
        keys = [self._clock_key, *self._global_keys, *(self._hard + tag for tag in tags)]
        return int(self._call(lambda: self._eval(_BEGIN, keys, [self._mark_ttl_ms])))

    def get(self, key: str, now: float) -> Hit | None:
        """The entry if present, unexpired and valid: one EVALSHA. Foreign bytes -> miss, logged."""
        keys = [self._entries + key]
        reply = self._call(lambda: self._eval(_GET, keys, ()))
        if reply is None:
            return None
        soft = type(reply) is list
        if soft:
            reply = reply[0]
        if type(reply) is not bytes:
            log.warning("cache key %r holds a value that is not etagkit's: treated as a miss", key)
            return None
        try:
            entry = self._decode(reply)
        except SerializationError as exc:
            log.warning("cache key %r: unreadable record (%s): treated as a miss", key, exc)
            return None
        if not now < entry.error_until:
            return None
        return Hit(entry, soft_invalidated=soft)

    def set(self, key: str, entry: Entry, now: float) -> SetResult:
        """Compare-and-set in one script: REFUSED if a tag was invalidated after ``entry.started``,
        NOT_STORED if the marks allow it but it would expire within a millisecond."""
        ttl_ms = int((entry.error_until - now) * 1000)
        record = self.codec.dumps(
            [
                entry.value,
                list(entry.tags),
                entry.started,
                entry.fresh_until,
                entry.stale_until,
                entry.error_until,
                entry.delta,
            ]
        )
        tags = (*entry.tags, GLOBAL_TAG)
        hard = [self._hard + tag for tag in tags]
        marks = json.dumps([*hard, *(self._soft + tag for tag in tags)], ensure_ascii=False)
        keys = [self._entries + key, self._clock_key, *hard]
        args: list[_Arg] = [self._mark_ttl_ms, ttl_ms, record, marks, entry.started]
        return _SET_RESULTS[self._call(lambda: self._eval(_SET, keys, args))]

    def invalidate(self, tags: Sequence[str], *, soft: bool = False) -> None:
        """Advance the clock, set the marks and publish them: one script. Undelivered -> owed global."""
        if tags:
            self.invalidate_published(tags, soft=soft)

    def invalidate_published(
        self, tags: Sequence[str], *, soft: bool = False, origin: str = ""
    ) -> tuple[int, int]:
        """As :meth:`invalidate`; returns the invalidation's clock value and how many subscribers
        received its message. ``origin`` names the channel suffix to acknowledge it on (see
        :meth:`ack_channel`; two-level stores wait for those acknowledgements)."""
        return self._call(lambda: self._run_invalidate(tags, soft=soft, origin=origin), mutation=True)

    def ack_channel(self, origin: str) -> str:
        """The channel on which subscribers acknowledge the invalidations published by ``origin``."""
        return self.namespace + "ack:" + origin

    def delete(self, key: str) -> None:
        """Remove one entry (and tell two-level stores to drop their copy)."""
        keys, args = [self._entries + key], [self.channel, key]
        self._call(lambda: self._eval(_DELETE, keys, args), mutation=True)

    def clear(self) -> None:
        """Invalidate everything (``GLOBAL_TAG``); entries then expire by their TTLs."""
        self.invalidate((GLOBAL_TAG,))

    # -- introspection ----------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Breaker state, how often it opened, whether a global invalidation is still owed, and how
        many server restarts (lost script caches) were answered with one."""
        return {
            "breaker_state": self.breaker.state,
            "breaker_opened": self.breaker.opened_count,
            "owed_global_invalidation": self._owed_global,
            "redis_restarts_detected": self.restarts_detected,
        }

    def close(self) -> None:
        """Close the connections of a client this store built from a URL; a client you passed in
        stays yours to close (it may serve other code)."""
        if self._owns_client:
            self.client.close()

    def _decode(self, record: bytes) -> Entry:
        data = self.codec.loads(record)
        if not (type(data) is list and len(data) == 7 and type(data[1]) is list):
            raise SerializationError("record does not have the entry layout")
        value, tags, started, fresh_until, stale_until, error_until, delta = data
        times = (fresh_until, stale_until, error_until, delta)
        if not (type(started) is int and all(type(t) is str for t in tags) and all(map(_is_real, times))):
            raise SerializationError("record fields have the wrong types")
        return Entry(value, tuple(tags), started, fresh_until, stale_until, error_until, delta, len(record))

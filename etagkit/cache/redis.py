"""RedisStore: the tag-mark store contract (``_store.py``) on Redis, one round trip per read.

Layout, under a namespace ``B`` (see "Redis Cluster" below)::

    B c            the logical clock (string integer)
    B m:<tag>      the tag's mark: hash {h: hard mark, s: soft mark}
    B e:<key>      an entry: hash {d: the signed/self-describing record, t: JSON tag list, s: started}
    B inv          pub/sub channel: every invalidation and delete is published here (two-level mode)

Every operation is one Lua script (EVALSHA; redis-py's ``Script`` reloads it on NOSCRIPT), so each
is one round trip and atomic: a read fetches the entry and the marks of its tags plus ``GLOBAL_TAG``
and returns the record only if every hard mark exists and is ``<= started``; a write is the
compare-and-set of the contract; an invalidation advances the clock, sets the marks and PUBLISHes,
all in the same script. Every key has a TTL: entries live until ``error_until``; marks and the clock
get ``mark_ttl`` (long, refreshed on every write), so Redis may run ``allkeys-lru``. An evicted mark
reads as "invalidated now". The clock is a hybrid logical clock, ``max(clock + 1, server time in µs)``,
so even if the clock key itself is evicted, it restarts above every value it ever had.

A circuit breaker (``breaker.py``) wraps every call, with short socket timeouts. While it is open,
calls raise ``StoreUnavailableError`` without touching the network (``TagCache`` turns that into a
miss or a skipped write). A mutation that may not have reached Redis (timeout, refused by the
breaker) is remembered, and the first successful call afterwards first invalidates ``GLOBAL_TAG``,
so nothing written before the outage can be served once Redis is back.

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

import json
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from .._errors import ConfigurationError, SerializationError, StoreUnavailableError
from ._serialize import Codec, SerializerName
from ._store import GLOBAL_TAG, Entry, Hit
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

# Shared Lua: the hybrid clock, and marks that tolerate a foreign value under their key.
_LUA_LIB = """
local function fmt(n) return string.format('%.0f', n) end
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function read_clock(ck, ttl)
  local c = redis.call('GET', ck)
  if c and tonumber(c) then
    redis.call('PEXPIRE', ck, ttl)
    return tonumber(c)
  end
  c = now_us()
  redis.call('SET', ck, fmt(c), 'PX', ttl)
  return c
end
local function hard_mark(mk)
  local h = redis.pcall('HGET', mk, 'h')
  if type(h) == 'table' and h.err then
    redis.call('DEL', mk)
    return nil
  end
  return h and tonumber(h)
end
"""

# KEYS: clock. ARGV: namespace, mark_ttl_ms, tags... -> the clock
_BEGIN = (
    _LUA_LIB
    + """
local c = read_clock(KEYS[1], ARGV[2])
for i = 3, #ARGV do
  local mk = ARGV[1] .. 'm:' .. ARGV[i]
  if not hard_mark(mk) then
    redis.call('HSET', mk, 'h', fmt(c))
    redis.call('PEXPIRE', mk, ARGV[2])
  end
end
return c
"""
)

# KEYS: entry. ARGV: namespace -> nil (miss) | -1 (foreign value under the key) | {record, soft 0/1}
_GET = """
local e = redis.pcall('HMGET', KEYS[1], 'd', 't', 's')
if type(e) == 'table' and e.err then return -1 end
if not e[1] then return nil end
local started = tonumber(e[3])
local ok, tags = pcall(cjson.decode, e[2])
if not started or not ok or type(tags) ~= 'table' then return -1 end
local soft = 0
for _, tag in ipairs(tags) do
  local m = redis.pcall('HMGET', ARGV[1] .. 'm:' .. tag, 'h', 's')
  if type(m) == 'table' and m.err then return nil end
  local h = tonumber(m[1])
  if not h or h > started then return nil end
  if m[2] and tonumber(m[2]) > started then soft = 1 end
end
return {e[1], soft}
"""

# KEYS: entry, clock. ARGV: namespace, mark_ttl_ms, entry_ttl_ms, record, tags JSON, started, tags...
# -> 1 stored | 0 refused (a tag invalidated after `started`, or without a mark: one is created)
_SET = (
    _LUA_LIB
    + """
local started = tonumber(ARGV[6])
local stored = 1
local c = nil
for i = 7, #ARGV do
  local mk = ARGV[1] .. 'm:' .. ARGV[i]
  local h = hard_mark(mk)
  if not h then
    c = c or read_clock(KEYS[2], ARGV[2])
    redis.call('HSET', mk, 'h', fmt(c))
    redis.call('PEXPIRE', mk, ARGV[2])
    stored = 0
  elseif h > started then
    stored = 0
  else
    redis.call('PEXPIRE', mk, ARGV[2])
  end
end
redis.call('DEL', KEYS[1])  -- refused: what was there is no newer than this refused value
if stored == 1 then
  redis.call('HSET', KEYS[1], 'd', ARGV[4], 't', ARGV[5], 's', ARGV[6])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return stored
"""
)

# KEYS: clock. ARGV: namespace, mark_ttl_ms, field ('h' | 's'), channel, tags... -> clock
_INVALIDATE = (
    _LUA_LIB
    + """
local c = redis.call('GET', KEYS[1])
c = math.max((c and tonumber(c) or 0) + 1, now_us())
redis.call('SET', KEYS[1], fmt(c), 'PX', ARGV[2])
local tags = {}
for i = 5, #ARGV do
  local mk = ARGV[1] .. 'm:' .. ARGV[i]
  if redis.call('TYPE', mk).ok ~= 'hash' then redis.call('DEL', mk) end
  redis.call('HSET', mk, ARGV[3], fmt(c))
  redis.call('PEXPIRE', mk, ARGV[2])
  tags[#tags + 1] = ARGV[i]
end
redis.call('PUBLISH', ARGV[4], cjson.encode({f = ARGV[3], t = tags}))
return c
"""
)

# KEYS: entry. ARGV: channel, key
_DELETE = """
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[1], cjson.encode({k = ARGV[2]}))
return 1
"""


def namespace_for(prefix: str) -> str:
    """The key namespace: ``prefix`` if it holds a ``{hash tag}``, else ``{prefix}`` (one cluster slot)."""
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
        if isinstance(client, str):
            client = redis.Redis.from_url(
                client,
                socket_timeout=socket_timeout,
                socket_connect_timeout=connect_timeout,
                retry=Retry(NoBackoff(), 0),
            )
        if client.get_encoder().decode_responses:
            raise ConfigurationError("RedisStore needs a client with decode_responses=False")
        if mark_ttl <= 0:
            raise ConfigurationError("mark_ttl must be positive")
        self.client = client
        self.namespace = namespace_for(prefix)
        self.channel = self.namespace + "inv"
        self.codec = Codec(serializer, pickle_key=pickle_key)
        self.breaker = breaker or CircuitBreaker()
        self._clock_key = self.namespace + "c"
        self._mark_ttl_ms = max(1, int(mark_ttl * 1000))
        self._begin = client.register_script(_BEGIN)
        self._get = client.register_script(_GET)
        self._set = client.register_script(_SET)
        self._invalidate = client.register_script(_INVALIDATE)
        self._delete = client.register_script(_DELETE)
        self._owed_global = False  # a mutation may not have reached Redis: invalidate everything first
        self._owed_lock = threading.Lock()

    def _entry_key(self, key: str) -> str:
        return self.namespace + "e:" + key

    # -- the breaker around every call ----------------------------------------------------------------

    def _call(self, fn: Callable[[], T], *, mutation: bool = False) -> T:
        """Run one Redis call through the breaker; unreachable -> StoreUnavailableError."""
        if self._owed_global:
            self._settle_owed()
        try:
            return self._guarded(fn)
        except StoreUnavailableError:
            if mutation:
                self._owed_global = True
            raise

    def _guarded(self, fn: Callable[[], T]) -> T:
        if not self.breaker.allow():
            raise StoreUnavailableError("Redis circuit breaker is open")
        try:
            result = fn()
        except _UNREACHABLE as exc:
            self.breaker.record_failure()
            raise StoreUnavailableError(f"Redis unreachable: {exc}") from exc
        except redis.exceptions.RedisError as exc:
            self.breaker.record_success()  # Redis answered (an error reply): the link is fine
            log.warning("Redis refused a cache call: %s", exc)
            raise StoreUnavailableError(f"Redis error reply: {exc}") from exc
        except BaseException:
            self.breaker.record_success()
            raise
        self.breaker.record_success()
        return result

    def _settle_owed(self) -> None:
        """Deliver the owed GLOBAL invalidation before anything else may read or write."""
        with self._owed_lock:
            if not self._owed_global:
                return
            self._guarded(lambda: self._run_invalidate((GLOBAL_TAG,), "h"))
            self._owed_global = False
            log.warning("Redis is back: invalidated everything written before the outage")

    def _run_invalidate(self, tags: Sequence[str], field: str) -> int:
        args: list[_Arg] = [self.namespace, self._mark_ttl_ms, field, self.channel, *tags]
        return int(self._invalidate(keys=[self._clock_key], args=args))

    # -- the Store contract ---------------------------------------------------------------------------

    def begin(self, tags: Sequence[str]) -> int:
        """The clock now; creates missing marks (and the global mark) at that value. One round trip."""
        args: list[_Arg] = [self.namespace, self._mark_ttl_ms, GLOBAL_TAG, *tags]
        return int(self._call(lambda: self._begin(keys=[self._clock_key], args=args)))

    def get(self, key: str, now: float) -> Hit | None:
        """The entry if present, unexpired and valid: one EVALSHA. Foreign bytes -> miss, logged."""
        reply = self._call(lambda: self._get(keys=[self._entry_key(key)], args=[self.namespace]))
        if reply is None:
            return None
        if not isinstance(reply, list):
            log.warning("cache key %r holds a value that is not etagkit's: treated as a miss", key)
            return None
        try:
            entry = self._decode(reply[0])
        except SerializationError as exc:
            log.warning("cache key %r: unreadable record (%s): treated as a miss", key, exc)
            return None
        if now >= entry.error_until:
            return None
        return Hit(entry, soft_invalidated=bool(reply[1]))

    def set(self, key: str, entry: Entry, now: float) -> bool:
        """Compare-and-set in one script; False if a tag was invalidated after ``entry.started``."""
        ttl_ms = int((entry.error_until - now) * 1000)
        if ttl_ms <= 0:
            return False
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
        args: list[_Arg] = [
            self.namespace,
            self._mark_ttl_ms,
            ttl_ms,
            record,
            json.dumps(tags, ensure_ascii=False),
            entry.started,
            *tags,
        ]
        keys = [self._entry_key(key), self._clock_key]
        return bool(self._call(lambda: self._set(keys=keys, args=args)))

    def invalidate(self, tags: Sequence[str], *, soft: bool = False) -> None:
        """Advance the clock, set the marks and publish them: one script. Undelivered -> owed global."""
        if tags:
            self._call(lambda: self._run_invalidate(tags, "s" if soft else "h"), mutation=True)

    def delete(self, key: str) -> None:
        """Remove one entry (and tell two-level stores to drop their copy)."""
        args = [self.channel, key]
        self._call(lambda: self._delete(keys=[self._entry_key(key)], args=args), mutation=True)

    def clear(self) -> None:
        """Invalidate everything (``GLOBAL_TAG``); entries then expire by their TTLs."""
        self.invalidate((GLOBAL_TAG,))

    # -- introspection ----------------------------------------------------------------------------------

    @property
    def breaker_state(self) -> str:
        """``closed``, ``open`` or ``half_open``, for stats and metrics."""
        return self.breaker.state

    def stats(self) -> dict[str, Any]:
        """Breaker state, how often it opened, and whether a global invalidation is still owed."""
        return {
            "breaker_state": self.breaker.state,
            "breaker_opened": self.breaker.opened_count,
            "owed_global_invalidation": self._owed_global,
        }

    def close(self) -> None:
        """Close the client's connections."""
        self.client.close()

    def _decode(self, record: bytes) -> Entry:
        data = self.codec.loads(record)
        if not (isinstance(data, list) and len(data) == 7 and isinstance(data[1], list)):
            raise SerializationError("record does not have the entry layout")
        value, tags, started, fresh_until, stale_until, error_until, delta = data
        try:
            return Entry(
                value,
                tuple(str(t) for t in tags),
                int(started),
                float(fresh_until),
                float(stale_until),
                float(error_until),
                float(delta),
                size=len(record),
            )
        except (TypeError, ValueError) as exc:
            raise SerializationError(f"record fields have the wrong types: {exc}") from exc

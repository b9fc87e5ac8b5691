"""RedisStore: the tag-mark store contract (``_store.py``) on Redis, one round trip per read.

Layout, under a namespace ``B`` (see "Redis Cluster" below)::

    B c            the logical clock (string integer)
    B h:<tag>      the tag's hard mark; B s:<tag> its soft mark (string integers)
    B s            the latest soft mark of any tag (set with every soft mark)
    B e:<key>      an entry: hash {d: the self-describing record, s: started, m: its hard mark
                   keys and ``B s``, o: its soft mark keys} (m, o: concatenated MessagePack strings)
    B inv          pub/sub channel: every invalidation and delete is published here (two-level mode)
    B ack:<id>     pub/sub channel: acknowledgements of two-level store <id>'s invalidations

Every operation is one Lua script (EVALSHA), so each is one round trip and atomic: a read fetches
the entry, then its hard marks (its tags' plus ``GLOBAL_TAG``'s) and ``B s`` with one MGET inside
the script, and returns the record only if every hard mark exists and is ``<= started`` (its soft
marks are read too only when ``B s`` is newer than ``started``: a soft invalidation since then);
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
miss or a skipped write; an invalidation raises). Any call that could not reach Redis (reads too,
since another process's invalidation may have been lost in the same outage) leaves a GLOBAL
invalidation owed: paid before the next call, and by a background thread as soon as Redis answers.
An invalidation returns only once two-level subscribers acknowledged it (``_acks.py``).

Redis Cluster: a script runs on one node, so each shard of a namespace is one hash slot: the
namespace is ``{prefix}`` (or the prefix as given if it holds a ``{...}`` hash tag). On a cluster
the namespace spreads over ``shards`` slots (16 by default), each holding its entries and a copy
of the marks, so a read is still one script on one node; invalidations run in phases
(``_shards.py`` says why that is safe). Leases (distributed single-flight, ``_lease.py``) live
next to their entry.

Serialization is ``_serialize.Codec``: msgpack or JSON, pickle only with a ``pickle_key`` (HMAC-signed).
A record that is not etagkit's, or fails its HMAC, is a miss and a logged warning, never an exception.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

try:
    import redis
    from redis.cluster import RedisCluster
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without redis
    raise ImportError("etagkit.cache.redis needs redis-py: pip install 'etagkit[redis]'") from exc

from .._config import number, positive_int
from .._errors import ConfigurationError, SerializationError, StoreUnavailableError
from ._acks import AckWaiter
from ._redis_connect import connect
from ._redis_lua import (
    _BEGIN,
    _DELETE,
    _GET,
    _INVALIDATE,
    _RELEASE,
    _SCRIPTS,
    _SET,
    _Script,
)
from ._serialize import Codec, SerializerName
from ._shards import Router, ShardKeys, later_phases, shard_namespaces, shard_of
from ._store import GLOBAL_TAG, Entry, Hit, SetResult
from .breaker import CircuitBreaker

__all__ = ["RedisStore", "connect", "store_from_url"]

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

_SET_RESULTS = {1: SetResult.STORED, 0: SetResult.REFUSED, 2: SetResult.NOT_STORED}


class _ErrorReply(StoreUnavailableError):
    """Redis answered with an error (OOM, WRONGTYPE ...): the link works, the call did not."""


def _is_real(x: object) -> bool:
    return type(x) is float or type(x) is int


def store_from_url(url: str, **options: Any) -> RedisStore:
    """The one way the bookstore (``--redis``, ``ETAGKIT_REDIS_URL``) and apps build a store from a
    URL: a single server, ``redis+cluster://`` for a cluster, or a cluster detected behind a plain
    URL (``_redis_connect.py``). ``options`` go to :class:`RedisStore`."""
    return RedisStore(url, **options)


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

    ``client`` is a URL (``redis://``, ``rediss://``, ``unix://``, or ``redis+cluster://`` /
    ``rediss+cluster://`` for a cluster; a cluster behind a plain URL is detected at start-up, see
    :func:`connect`) or a ``redis.Redis`` / ``redis.cluster.RedisCluster`` created with
    ``decode_responses=False`` (give it short ``socket_timeout`` / ``socket_connect_timeout``
    yourself). ``prefix`` namespaces every key. ``mark_margin``: how long a tag mark outlives the
    longest-lived entry that carries it (and how long a mark without entries lives).
    ``ack_timeout``: how long an invalidation waits for two-level subscribers' acknowledgements
    (``_acks.py``; 0 turns read-after-invalidate for two-level readers off). ``retry_interval``: how
    often a background thread retries an owed global invalidation until Redis answers.
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
        mark_margin: float = 3600.0,
        breaker: CircuitBreaker | None = None,
        ack_timeout: float = 0.25,
        retry_interval: float = 0.1,
        shards: int | None = None,
    ) -> None:
        socket_timeout = number("socket_timeout", socket_timeout, positive=True)
        connect_timeout = number("connect_timeout", connect_timeout, positive=True)
        mark_margin = number("mark_margin", mark_margin, positive=True)
        if shards is not None:
            positive_int("shards", shards)
        self.ack_timeout = number("ack_timeout", ack_timeout)
        self.retry_interval = number("retry_interval", retry_interval, positive=True)
        self.namespace = namespace_for(prefix)
        self._owns_client = isinstance(client, str)
        if isinstance(client, str):
            client = connect(client, socket_timeout=socket_timeout, connect_timeout=connect_timeout)
        if client.get_encoder().decode_responses:
            raise ConfigurationError("RedisStore needs a client with decode_responses=False")
        self.client = client
        self.is_cluster = isinstance(client, RedisCluster)
        count = (16 if self.is_cluster else 1) if shards is None else positive_int("shards", shards)
        self.shards = [ShardKeys(ns) for ns in shard_namespaces(self.namespace, count)]
        self._router = Router(client)
        self.channel = self.namespace + "inv"
        self.id = uuid.uuid4().hex  # names this store's ack channel
        self.acks = AckWaiter(
            client, self.ack_channel(self.id), subscribe_timeout=max(0.2, 4 * socket_timeout)
        )
        self.codec = Codec(serializer, pickle_key=pickle_key)
        self.breaker = breaker or CircuitBreaker(name=f"Redis {self.namespace}")
        home = self.shards[0]
        self._clock_key, self._hard, self._soft = home.clock, home.hard, home.soft
        self._soft_latest = home.soft_latest
        self._margin_ms = max(1, int(mark_margin * 1000))
        self._owed_global = False  # a mutation may not have reached Redis: invalidate everything first
        self._owed_lock = threading.Lock()
        self._payer: threading.Thread | None = None  # retries the owed invalidation in the background
        self._closed = threading.Event()
        self._moved_logged = False
        self.restarts_detected = 0  # NOSCRIPT replies answered with a global invalidation

    def _eval(self, script: _Script, keys: list[str], args: Sequence[_Arg]) -> Any:
        """EVALSHA (one round trip). NOSCRIPT means the server restarted (maybe from a snapshot older
        than the last invalidations) or was flushed: invalidate everything, load the scripts, retry."""
        client: Any = self.client
        try:
            return self._router.evalsha(script.sha, keys, args)
        except redis.exceptions.NoScriptError:
            pass
        keys_g, args_g = self._invalidate_call((GLOBAL_TAG,), soft=False)
        # no clock yet: a first start on an empty namespace, nothing to lose (so not a warning)
        first_use = not client.exists(self._clock_key)
        clock, _ = client.execute_command("EVAL", _INVALIDATE.source, len(keys_g), *keys_g, *args_g)  # first
        if len(self.shards) > 1:  # a sharded namespace: every shard, then the message (_shards.py)
            self._later_phases((GLOBAL_TAG,), False, int(clock), "", plain=True)
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
        not have been delivered either. A mutation that Redis refused with an error reply is owed as
        well (it was not applied). The debt is paid before the next call and, meanwhile, by a
        background thread every ``retry_interval`` seconds: as soon as Redis answers again.
        """
        if self._owed_global:
            self._settle_owed()
        try:
            return self._guarded(fn)
        except StoreUnavailableError as exc:
            if mutation or not isinstance(exc, _ErrorReply):
                self._owe()
            raise

    def _guarded(self, fn: Callable[[], T], *, probe: bool = False) -> T:
        breaker = self.breaker
        if not probe and not breaker.allow():
            raise StoreUnavailableError("Redis circuit breaker is open")
        try:
            result = fn()
        except _UNREACHABLE as exc:
            breaker.record_failure()
            raise StoreUnavailableError(f"Redis unreachable: {exc}") from exc
        except redis.exceptions.RedisError as exc:
            breaker.record_success()  # Redis answered (an error reply): the link is fine
            self._log_error_reply(exc)
            raise _ErrorReply(f"Redis error reply: {exc}") from exc
        except BaseException:
            breaker.record_success()
            raise
        breaker.record_success()
        return result

    def _log_error_reply(self, exc: redis.exceptions.RedisError) -> None:
        if "MOVED" in str(exc) and not self.is_cluster:
            if not self._moved_logged:  # one clear line, not one per call
                self._moved_logged = True
                log.error(
                    "Redis at %s is a Redis Cluster node (MOVED): use a redis+cluster:// URL; the cache "
                    "misses until then",
                    self.namespace,
                )
            return
        log.warning("Redis refused a cache call: %s", exc)

    def _owe(self) -> None:
        """Remember the owed global invalidation and start the background thread that pays it."""
        with self._owed_lock:
            self._owed_global = True
            if self._payer is None and not self._closed.is_set():
                self._payer = threading.Thread(
                    target=self._pay_in_background, name="etagkit-owed", daemon=True
                )
                self._payer.start()

    def _pay_in_background(self) -> None:
        try:
            while self._owed_global and not self._closed.wait(self.retry_interval):
                try:
                    self._settle_owed(probe=True)  # bypasses the breaker: one call per interval
                except StoreUnavailableError:
                    continue
        finally:
            with self._owed_lock:
                self._payer = None
            if self._owed_global and not self._closed.is_set():
                self._owe()  # owed again between the loop's check and here

    def _settle_owed(self, *, probe: bool = False) -> None:
        """Deliver the owed GLOBAL invalidation before anything else may read or write."""
        with self._owed_lock:
            if not self._owed_global:
                return
            self._guarded(lambda: self._publish_invalidation((GLOBAL_TAG,), soft=False), probe=probe)
            self._owed_global = False
        log.warning("Redis answers again: invalidated everything written before the outage")

    @property
    def healthy(self) -> bool:
        """True when the breaker is closed and no global invalidation is owed: an invalidation now
        will most likely be recorded (it still raises if it is not)."""
        return not self._owed_global and self.breaker.state == "closed"

    def _invalidate_call(
        self, tags: Sequence[str], *, soft: bool, origin: str = ""
    ) -> tuple[list[str], list[_Arg]]:
        """The keys and arguments of the invalidation script for ``tags``."""
        marks = self._soft if soft else self._hard
        keys = [self._clock_key, *(marks + tag for tag in tags)]
        if soft:
            keys.append(self._soft_latest)
        channel = self.channel if len(self.shards) == 1 else ""  # sharded: published after the phases
        return keys, [self._margin_ms, channel, "s" if soft else "h", origin, *tags]

    def _publish_invalidation(self, tags: Sequence[str], *, soft: bool) -> int:
        """Run the invalidation script, then wait until every two-level subscriber that received
        it acknowledged it (``_acks.py``); the new clock value."""
        waiting = bool(self.ack_timeout) and self.acks.ready()
        origin = self.id if waiting else ""
        keys, args = self._invalidate_call(tags, soft=soft, origin=origin)
        clock, receivers = self._eval(_INVALIDATE, keys, args)
        clock, receivers = int(clock), int(receivers)
        if len(self.shards) > 1:
            receivers = self._later_phases(tags, soft, clock, origin, plain=False)
        published_at = time.monotonic()  # the message was published before this
        if (
            receivers
            and self.ack_timeout
            and not self.acks.wait(clock, receivers, published_at, self.ack_timeout)
        ):
            log.warning(
                "cache invalidation %d: not every one of %d subscribers acknowledged it within %ss",
                clock,
                receivers,
                self.ack_timeout,
            )
        return clock

    def _shard(self, key: str) -> ShardKeys:
        shards = self.shards
        return shards[0] if len(shards) == 1 else shards[shard_of(key, len(shards))]

    def _later_phases(self, tags: Sequence[str], soft: bool, clock: int, origin: str, *, plain: bool) -> int:
        """A sharded invalidation after its home phase: ``_shards.later_phases``."""
        margin = self._margin_ms
        shards, channel = self.shards, self.channel
        return later_phases(
            self.client,
            shards,
            channel,
            tags,
            soft=soft,
            clock=clock,
            origin=origin,
            margin_ms=margin,
            plain=plain,
        )

    # -- the Store contract ---------------------------------------------------------------------------

    def begin(self, tags: Sequence[str]) -> int:
        """The clock now; creates missing marks (and the global mark) at that value. One round trip."""
        keys = [self._clock_key, self._hard + GLOBAL_TAG, *(self._hard + tag for tag in tags)]
        return int(self._call(lambda: self._eval(_BEGIN, keys, [self._margin_ms])))

    def get(self, key: str, now: float) -> Hit | None:
        """The entry if present, unexpired and valid: one EVALSHA. Foreign bytes -> miss, logged."""
        keys = [self._shard(key).entries + key]
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
        shard = self._shard(key)
        keys = [shard.entries + key, shard.clock, *(shard.hard + tag for tag in tags)]
        relaxed = "1" if shard is not self.shards[0] else "0"
        args: list[_Arg] = [self._margin_ms, ttl_ms, record, entry.started, relaxed, shard.soft_latest]
        args += [shard.soft + tag for tag in tags]
        return _SET_RESULTS[self._call(lambda: self._eval(_SET, keys, args))]

    def invalidate(self, tags: Sequence[str], *, soft: bool = False) -> None:
        """Advance the clock, set the marks and publish them (one script), then wait for two-level
        subscribers' acknowledgements. Raises ``StoreUnavailableError`` if it may not have been
        recorded (a global invalidation is then owed and retried in the background)."""
        if tags:
            self._call(lambda: self._publish_invalidation(tags, soft=soft), mutation=True)

    def ack_channel(self, origin: str) -> str:
        """The channel on which subscribers acknowledge the invalidations published by ``origin``."""
        return self.namespace + "ack:" + origin

    # -- distributed single-flight ----------------------------------------------------------------

    def acquire_lease(self, key: str, ttl: float) -> str | None:
        """Take the compute lease of ``key`` for ``ttl`` seconds (SET NX PX, one round trip): a token
        if this caller got it, None if another process holds it."""
        token = uuid.uuid4().hex
        lease, ttl_ms = self._shard(key).leases + key, max(1, int(ttl * 1000))
        got = self._call(lambda: self.client.set(lease, token, nx=True, px=ttl_ms))
        return token if got else None

    def release_lease(self, key: str, token: str) -> None:
        """Give the lease back if it is still ours (it may have expired and been taken over)."""
        self._call(lambda: self._eval(_RELEASE, [self._shard(key).leases + key], [token]))

    def lease_held(self, key: str) -> bool:
        """Whether some process holds the compute lease of ``key`` now."""
        return bool(self._call(lambda: self.client.exists(self._shard(key).leases + key)))

    def delete(self, key: str) -> None:
        """Remove one entry (and tell two-level stores to drop their copy)."""
        keys, args = [self._shard(key).entries + key], [self.channel, key]
        self._call(lambda: self._eval(_DELETE, keys, args), mutation=True)

    def clear(self) -> None:
        """Invalidate everything (``GLOBAL_TAG``); entries then expire by their TTLs."""
        self.invalidate((GLOBAL_TAG,))

    # -- introspection ----------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Breaker state, how often it opened, whether a global invalidation is still owed, how
        many server restarts (lost script caches) were answered with one, and ack timeouts."""
        return {
            "breaker_state": self.breaker.state,
            "breaker_opened": self.breaker.opened_count,
            "owed_global_invalidation": self._owed_global,
            "redis_restarts_detected": self.restarts_detected,
            "ack_timeouts": self.acks.timeouts,
        }

    def close(self) -> None:
        """Stop the background payer, close the ack subscription, and close the connections of a
        client this store built from a URL (a client you passed in stays yours to close)."""
        self._closed.set()
        payer = self._payer
        if payer is not None:
            payer.join(timeout=5)
        self.acks.close()
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

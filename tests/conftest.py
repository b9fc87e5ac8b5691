"""Shared fixtures: a real Redis (the machine's, or one started here), per-test key prefixes."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import CONFORMANCE, REQUIRE_REDIS, LocalRedisCluster, RedisServer, redis_answers


def _no_redis(reason: str) -> None:
    if REQUIRE_REDIS:
        pytest.fail(f"Redis required (ETAGKIT_REQUIRE_REDIS is set) but unavailable: {reason}")
    pytest.skip(f"no Redis: {reason}")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a Redis that answers: ETAGKIT_REDIS_URL (default db 15 on :6379) or one started here."""
    import os

    url = os.environ.get("ETAGKIT_REDIS_URL", "redis://127.0.0.1:6379/15")
    if redis_answers(url):
        yield url
        return
    if shutil.which("redis-server") is None:
        _no_redis(f"nothing answers at {url} and redis-server is not on PATH")
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix unique to this test; every key under it is deleted afterwards."""
    import redis

    prefix = f"etagkit-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        # RedisStore wraps its prefix in a cluster hash tag: "{prefix}..." (etagkit/cache/redis.py)
        patterns = (prefix + "*", "{" + prefix + "}*")
        keys = [k for pattern in patterns for k in client.scan_iter(match=pattern, count=1000)]
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def start_redis(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """``start_redis(*redis_server_args)``: a started Redis process of this test's own, stopped when the
    test ends. Without redis-server on PATH the test is skipped with the reason (failed when
    ETAGKIT_REQUIRE_REDIS is set), never an error."""
    started: list[RedisServer] = []

    def start(*args: str) -> RedisServer:
        if shutil.which("redis-server") is None:
            _no_redis("redis-server is not on PATH (needed for a private server)")
        server = RedisServer(tmp_path / f"redis{len(started)}", *args)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def private_redis(start_redis: Callable[..., RedisServer]) -> RedisServer:
    """A Redis process of this test's own, which the test may kill, pause or restart."""
    return start_redis()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedisCluster]:
    """A local three-master Redis Cluster on free loopback ports, started once per session."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        _no_redis("redis-server and redis-cli are needed on PATH for the local cluster")
    with LocalRedisCluster(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def conformance_dir() -> Path:
    """The shared RFC conformance vectors; missing means a broken checkout, so fail, never skip."""
    if not (CONFORMANCE / "preconditions.json").is_file():
        pytest.fail(f"conformance vectors not found at {CONFORMANCE}")
    return CONFORMANCE


# -- the store contract suite (tests/test_store_contract.py) ------------------------------------------
# One factory per store kind: factory(request, timer, **options) -> a fresh, empty store that is
# cleaned up by the test's end (use request.getfixturevalue / request.addfinalizer for that).
# To run the whole contract suite on another store, add one entry here.


def _memory_store(request: pytest.FixtureRequest, timer: Callable[[], float], **options: Any) -> Any:
    from etagkit.cache import MemoryStore

    return MemoryStore(timer=timer, **options)


def _redis_store(request: pytest.FixtureRequest, timer: Callable[[], float], **options: Any) -> Any:
    from etagkit.cache.redis import RedisStore

    # generous timeouts: the contract suite tests semantics; tests/test_redis_faults.py tests timeouts
    url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
    store = RedisStore(url, prefix=prefix, socket_timeout=5, connect_timeout=5, **options)
    request.addfinalizer(store.close)
    return store


def _twolevel_store(request: pytest.FixtureRequest, timer: Callable[[], float], **options: Any) -> Any:
    from etagkit.cache.twolevel import TwoLevelStore

    store = TwoLevelStore(_redis_store(request, timer), timer=timer, resubscribe_interval=0.05, **options)
    request.addfinalizer(store.close)
    if not store.wait_subscribed(10):
        pytest.fail("the two-level store did not subscribe to its invalidation channel")
    return store


def _cluster_store(request: pytest.FixtureRequest, timer: Callable[[], float], **options: Any) -> Any:
    from redis.cluster import ClusterNode, RedisCluster

    from etagkit.cache.redis import RedisStore

    cluster = request.getfixturevalue("redis_cluster")
    client = RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in cluster.startup_nodes],
        socket_timeout=5,
        socket_connect_timeout=5,
    )
    store = RedisStore(client, prefix=f"contract:{uuid.uuid4().hex[:12]}:", **options)
    request.addfinalizer(store.close)
    return store


STORE_FACTORIES: dict[str, Callable[..., Any]] = {
    "memory": _memory_store,
    "redis": _redis_store,
    "twolevel": _twolevel_store,
    "cluster": _cluster_store,
}


_KIND_MARKS = {
    "redis": [pytest.mark.redis],
    "twolevel": [pytest.mark.redis],
    "cluster": [pytest.mark.redis, pytest.mark.cluster],
}


@pytest.fixture(params=[pytest.param(kind, marks=_KIND_MARKS.get(kind, [])) for kind in STORE_FACTORIES])
def make_store(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """``make_store(timer=..., **options)``: a new store of the kind under test (one param per kind)."""
    import time

    factory = STORE_FACTORIES[request.param]

    def make(timer: Callable[[], float] = time.time, **options: Any) -> Any:
        return factory(request, timer, **options)

    return make

"""Shared fixtures: a real Redis (the machine's, or one started here), per-test key prefixes."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import REQUIRE_REDIS, RedisServer, redis_answers

CONFORMANCE = Path(__file__).resolve().parent.parent.parent / "shared" / "conformance"


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
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis process of this test's own, which the test may kill, pause or restart."""
    if shutil.which("redis-server") is None:
        _no_redis("redis-server is not on PATH (needed for a private server)")
    with RedisServer(tmp_path / "redis") as server:
        yield server


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


STORE_FACTORIES: dict[str, Callable[..., Any]] = {
    "memory": _memory_store,
}


@pytest.fixture(params=list(STORE_FACTORIES))
def make_store(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """``make_store(timer=..., **options)``: a new store of the kind under test (one param per kind)."""
    import time

    factory = STORE_FACTORIES[request.param]

    def make(timer: Callable[[], float] = time.time, **options: Any) -> Any:
        return factory(request, timer, **options)

    return make

"""Issue 12's fault test: nothing stale across processes whatever Redis does (frozen and thawed,
killed and restarted, flushed) while writes happen.

* Cache level: a writer (this process) follows the write protocol the request flow uses:
  invalidate, write the database, invalidate again; a write counts as acknowledged only if both
  invalidations returned (when one raises, the caller knows and does not acknowledge it). Two
  reader processes (tests/cache_peer.py: a plain RedisStore and a TwoLevelStore) read through
  ``get_or_set`` from the same database file while background threads race computes. After every
  acknowledged write, no reader may answer an older version.
* HTTP level: the bookstore under gunicorn (2 worker processes, one SQLite file, a private Redis)
  through the same faults (``benchmarks/load/chaos.py``): 0 stale 304s, 0 stale bodies, 0 5xx on
  reads.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from support import RedisServer
from test_redis_processes import Peer

from etagkit import StoreUnavailableError
from etagkit.cache import TagCache
from etagkit.cache.breaker import CircuitBreaker
from etagkit.cache.redis import RedisStore

pytestmark = [pytest.mark.redis, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent


class ChaosPeer(Peer):
    """A reader process with short socket timeouts (0.1 s), as a server would have."""

    def __init__(self, kind: str, url: str) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).with_name("cache_peer.py")),
                kind,
                url,
                "chaos:",
                "0.5",
                "0.1",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lock = threading.Lock()
        assert self._read() == "ready"


@pytest.fixture
def readers(private_redis: RedisServer, tmp_path: Path) -> Iterator[tuple[list[ChaosPeer], Path]]:
    db = tmp_path / "db"
    db.write_text("0")
    peers = [ChaosPeer("plain", private_redis.url), ChaosPeer("twolevel", private_redis.url)]
    try:
        yield peers, db
    finally:
        for peer in peers:
            peer.close()


def _write_db(db: Path, version: int) -> None:
    tmp = db.with_suffix(".tmp")
    tmp.write_text(str(version))
    tmp.replace(db)  # atomic: a concurrent compute reads the old or the new version, never half


def test_no_reader_process_answers_older_than_an_acknowledged_write_whatever_redis_does(
    private_redis: RedisServer, readers: tuple[list[ChaosPeer], Path]
) -> None:
    peers, db = readers
    for peer in peers:
        assert peer.ask(f"bg k db={db}") == "ok"
    store = RedisStore(
        private_redis.url,
        prefix="chaos:",
        socket_timeout=0.1,
        connect_timeout=0.1,
        ack_timeout=0.5,
        retry_interval=0.05,
        breaker=CircuitBreaker(failure_threshold=3, reset_timeout=0.2),
    )
    cache = TagCache(store)
    admin: Callable[[], redis.Redis] = lambda: redis.Redis.from_url(private_redis.url, socket_timeout=5)  # noqa: E731
    outcomes = {"acknowledged": 0, "refused": 0, "written_not_acknowledged": 0}
    stale: list[tuple[str, int, Any]] = []
    errors: list[Any] = []
    version = 0

    def write() -> None:
        nonlocal version
        try:
            cache.invalidate_tags("t")  # before: if it cannot be recorded, do not write
        except StoreUnavailableError:
            outcomes["refused"] += 1
            return
        version += 1
        _write_db(db, version)
        try:
            cache.invalidate_tags("t")  # after: a compute that overlapped the write is gone
        except StoreUnavailableError:
            outcomes["written_not_acknowledged"] += 1
            return
        outcomes["acknowledged"] += 1
        for peer in peers:  # the write is acknowledged: every later read shows it
            seen = peer.ask(f"read k {db}")
            if not isinstance(seen, int):
                errors.append(seen)
            elif seen < version:
                stale.append((f"pid {peer.proc.pid}", version, seen))

    def writes(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            write()
            time.sleep(0.02)

    def frozen(seconds: float) -> None:
        assert private_redis.proc is not None
        os.kill(private_redis.proc.pid, signal.SIGSTOP)
        try:
            writes(seconds)
        finally:
            os.kill(private_redis.proc.pid, signal.SIGCONT)

    writes(1.0)
    frozen(1.0)
    writes(1.0)
    private_redis.stop()
    writes(0.5)
    private_redis.restart()
    writes(1.0)
    client = admin()
    client.flushall()
    client.close()
    writes(1.0)
    frozen(2.0)
    writes(1.5)
    store.close()
    assert errors == [], (errors, outcomes)
    assert stale == [], (stale, outcomes)
    assert outcomes["acknowledged"] >= 5, outcomes  # writes did happen around the faults...
    assert outcomes["refused"] >= 1, outcomes  # ...and some were refused while Redis was away


def test_the_bookstore_on_two_processes_serves_nothing_stale_whatever_redis_does(tmp_path: Path) -> None:
    """The chaos load run over real HTTP: gunicorn with 2 workers, one SQLite file, a private Redis."""
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks.load.chaos import chaos
    finally:
        sys.path.remove(str(ROOT))
    result = chaos(18.0, tmp_path)
    assert result["writes"]["acknowledged"] > 0 and result["reads_checked"] > 100, result
    assert (result["stale_304"], result["stale_bodies"], result["read_5xx"]) == (0, 0, 0), result

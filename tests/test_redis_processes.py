"""TagCaches in real separate processes sharing one Redis (a single server, and the local
three-master cluster through a ``redis+cluster://`` URL): read-after-invalidate for two-level readers
whatever kind of store invalidates (issue 12 item 2), and one compute per key across processes
(distributed single-flight, issue 12 item 3). The peers are tests/cache_peer.py."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from support import LocalRedisCluster

pytestmark = pytest.mark.redis

PEER = Path(__file__).resolve().parent / "cache_peer.py"


class Peer:
    """One tests/cache_peer.py process: ``ask("get k")`` sends a command and returns its answer."""

    def __init__(self, kind: str, url: str, prefix: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(PEER), kind, url, prefix],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lock = threading.Lock()
        assert self._read() == "ready"

    def _read(self) -> Any:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"peer exited ({self.proc.wait()})")
        return json.loads(line)

    def ask(self, command: str) -> Any:
        assert self.proc.stdin is not None
        with self.lock:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
            return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(params=["single", pytest.param("cluster", marks=pytest.mark.cluster)])
def target(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(url, prefix): the shared Redis (db 15) or the local cluster (a cluster URL); keys cleaned."""
    if request.param == "single":
        url = request.getfixturevalue("redis_url")
        yield url, request.getfixturevalue("redis_prefix")
        return
    cluster: LocalRedisCluster = request.getfixturevalue("redis_cluster")
    host, port = cluster.startup_nodes[0]
    yield f"redis+cluster://{host}:{port}", f"procs:{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def peers(target: tuple[str, str]) -> Iterator[Callable[[str], Peer]]:
    started: list[Peer] = []
    url, prefix = target

    def start(kind: str) -> Peer:
        peer = Peer(kind, url, prefix)
        started.append(peer)
        return peer

    yield start
    for peer in started:
        peer.close()


def test_a_two_level_reader_never_serves_what_a_plain_store_invalidated(peers: Callable[[str], Peer]) -> None:
    """Issue 12: right after a plain RedisStore's invalidate_tags returned in another process, the
    two-level reader still read its old local copy 8 of 10 times. Now 0 of 10."""
    reader, writer = peers("twolevel"), peers("plain")
    stale = []
    for i in range(10):
        assert writer.ask(f"put k v{i} t") is True
        assert reader.ask("get k") == f"v{i}"  # copied into the reader's local layer
        assert reader.ask("get k") == f"v{i}"  # a local hit
        assert writer.ask("inv t") == "ok"
        if reader.ask("get k") is not None:
            stale.append(i)
    assert stale == []


def test_stress_two_level_readers_under_a_stream_of_plain_invalidations(
    peers: Callable[[str], Peer],
) -> None:
    """Two two-level readers keep their local layers hot from background threads while a plain
    store writes and invalidates 150 times; after every invalidation neither reads the old value."""
    readers = [peers("twolevel"), peers("twolevel")]
    writer = peers("plain")
    keys = [f"k{n}" for n in range(3)]
    for reader in readers:
        assert reader.ask("bg " + " ".join(keys)) == "ok"
    stale, checked = [], 0
    for i in range(150):
        key = keys[i % 3]
        tag = f"t{i % 3}"
        assert writer.ask(f"put {key} v{i} {tag}") in (True, False)  # False: a reader's copy raced
        for reader in readers:
            reader.ask(f"get {key}")
        assert writer.ask(f"inv {tag}") == "ok"
        for reader in readers:
            seen = reader.ask(f"get {key}")
            checked += 1
            if seen == f"v{i}":
                stale.append((i, seen))
    assert checked == 300
    assert stale == []


def test_one_compute_per_key_across_processes(peers: Callable[[str], Peer], target: tuple[str, str]) -> None:
    """Issue 12: 4 processes missing the same key computed it 4 times. With the lease: once."""
    url, prefix = target
    workers = [peers("plain") for _ in range(4)]
    # Warm the namespace first: each process reads and writes on every shard (so no first-use
    # NOSCRIPT on a node answers with a global invalidation mid-test), and the store has seen tag "t"
    # (a first-seen tag's first store is refused, the race-safe rule). Either would refuse the
    # leader's write: its lease is then handed on and a second process computes, by design.
    for peer in workers:
        for k in range(16):
            assert peer.ask(f"compute warm{k} 0") == f"value of warm{k}"
    assert workers[0].ask("inv t") == "ok"
    before = _computes(url, prefix)
    answers: list[Any] = []

    def miss(peer: Peer) -> None:
        answers.append(peer.ask("compute cold 1.0"))

    threads = [threading.Thread(target=miss, args=(peer,)) for peer in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == ["value of cold"] * 4
    assert _computes(url, prefix) - before == 1


def _computes(url: str, prefix: str) -> int:
    if url.startswith("redis+cluster://"):
        from redis.cluster import RedisCluster

        client: Any = RedisCluster.from_url(url.replace("redis+cluster://", "redis://"))
    else:
        client = redis.Redis.from_url(url)
    try:
        return int(client.get(prefix + "computes") or 0)  # the prefix is the test's own
    finally:
        client.close()

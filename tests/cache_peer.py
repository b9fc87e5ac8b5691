"""A TagCache in a process of its own, driven line by line over stdin/stdout by the tests
(tests/test_redis_processes.py): another process, really, as gunicorn workers are.

    python tests/cache_peer.py KIND URL PREFIX [ACK_TIMEOUT [SOCKET_TIMEOUT]]   KIND: plain | twolevel

Commands (one per line; one JSON answer line each):
    get KEY                   -> the cached value or null (one TagCache.get)
    read KEY DBFILE           -> get_or_set(KEY) under tag "t" whose compute reads DBFILE's integer
                                 (the shared "database"); "error: ..." if anything raised
    put KEY VALUE TAG         -> true if stored (TagCache.set with a fresh ticket)
    inv TAG                   -> "ok", or "raised: <message>" (TagCache.invalidate_tags)
    compute KEY SECONDS       -> the value: get_or_set whose compute INCRs "<PREFIX>computes" in
                                 Redis and sleeps SECONDS (so tests count computes across processes)
    bg KEY... [db=DBFILE]     -> "ok": 2 threads read the keys in a loop until quit (hot local layer;
                                 with db=, through get_or_set computing from DBFILE: racing computes)
    stats                     -> TagCache.stats()
    quit
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

from etagkit.cache import TagCache
from etagkit.cache.redis import store_from_url
from etagkit.cache.twolevel import TwoLevelStore


def _background_reader(cache: TagCache, keys: list[str], dbs: list[Path]) -> None:
    """Read ``keys`` forever: TagCache.get, or (with a database file) get_or_set computing from it,
    so computes race with the test's writes and invalidations."""
    while True:
        for key in keys:
            try:
                if dbs:
                    cache.get_or_set(key, lambda db=dbs[0]: int(db.read_text()), tags=["t"], ttl=300)
                else:
                    cache.get(key)
            except Exception:  # keep racing; the test judges only the answers it asks for
                time.sleep(0.01)


def main() -> None:
    kind, url, prefix = sys.argv[1:4]
    ack_timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 1.0
    timeout = float(sys.argv[5]) if len(sys.argv) > 5 else 5.0
    remote = store_from_url(
        url, prefix=prefix, socket_timeout=timeout, connect_timeout=timeout, ack_timeout=ack_timeout
    )
    store: Any = remote
    if kind == "twolevel":
        store = TwoLevelStore(remote, resubscribe_interval=0.05, trust_window=0.5)
        if not store.wait_subscribed(20):
            raise SystemExit("two-level store did not subscribe")
    cache = TagCache(store)
    counter = remote.client
    print(json.dumps("ready"), flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        command, args = words[0], words[1:]
        answer: Any
        if command == "get":
            answer = cache.get(args[0])
        elif command == "read":
            key, db = args[0], Path(args[1])
            try:
                answer = cache.get_or_set(key, lambda db=db: int(db.read_text()), tags=["t"], ttl=300)
            except Exception as exc:
                answer = f"error: {type(exc).__name__}: {exc}"
        elif command == "put":
            answer = cache.set(args[0], args[1], tags=[args[2]], ttl=300)
        elif command == "inv":
            try:
                cache.invalidate_tags(args[0])
                answer = "ok"
            except Exception as exc:
                answer = f"raised: {exc}"
        elif command == "compute":
            key, seconds = args[0], float(args[1])

            def compute(key: str = key, seconds: float = seconds) -> str:
                counter.incr(prefix + "computes")
                time.sleep(seconds)
                return f"value of {key}"

            answer = cache.get_or_set(key, compute, tags=["t"], ttl=300)
        elif command == "bg":
            keys = [a for a in args if not a.startswith("db=")]
            dbs = [Path(a[3:]) for a in args if a.startswith("db=")]
            for _ in range(2):
                threading.Thread(target=_background_reader, args=(cache, keys, dbs), daemon=True).start()
            answer = "ok"
        elif command == "stats":
            answer = {k: v for k, v in cache.stats().items() if isinstance(v, int | float | str | bool)}
        elif command == "quit":
            break
        else:
            answer = f"unknown command {command!r}"
        print(json.dumps(answer), flush=True)
    if isinstance(store, TwoLevelStore):
        store.close()
    else:
        remote.close()


if __name__ == "__main__":
    main()

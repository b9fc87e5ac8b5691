"""The ``chaos`` load run: writes and revalidations across two server processes while Redis is frozen
and thawed, killed and restarted, and flushed (issue 12's fault test, over real HTTP).

gunicorn runs the bookstore with 2 worker processes over one SQLite file and a private Redis.
Writer threads PUT their own book (If-Match) in a loop; reader threads revalidate the books and the
list on new connections (so both workers answer everything). Meanwhile Redis is, in turn: frozen
for 1.5 s (SIGSTOP/SIGCONT), killed and restarted 1 s later (empty: no persistence), flushed
(FLUSHALL), and frozen for 3 s. A read that started after a write returned and shows an older
version is stale: a 304 for an older validator, or a 200 with an older body. Must be 0: stale 304s,
stale bodies, 5xx on reads. Writes answered 503 (refused because their invalidation could not be
recorded) are counted, not judged: they were not acknowledged.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import redis

from .run_load import WORKERS, Gunicorn, Ledger, Reader, RedisServer, bookstore_spec, put_book

BOOKS = [1, 2, 3]


def _faults(server: RedisServer, stop: threading.Event, timeline: list[str], t0: float) -> None:
    """Freeze/thaw, kill/restart, flush, long freeze: 2 s of normal service between each."""

    def mark(event: str) -> None:
        timeline.append(f"{time.monotonic() - t0:.1f} s: {event}")

    def pause(seconds: float) -> bool:
        return not stop.wait(seconds)

    def freeze(seconds: float) -> None:
        assert server.proc is not None
        os.kill(server.proc.pid, signal.SIGSTOP)
        mark(f"Redis frozen (SIGSTOP) for {seconds} s")
        time.sleep(seconds)
        os.kill(server.proc.pid, signal.SIGCONT)
        mark("Redis thawed (SIGCONT)")

    if not pause(2):
        return
    freeze(1.5)
    if not pause(2):
        return
    server.stop()
    mark("Redis killed (SIGKILL)")
    time.sleep(1)
    server.restart()
    mark("Redis restarted (empty)")
    if not pause(2):
        return
    client = redis.Redis.from_url(server.url)
    client.flushall()
    client.close()
    mark("Redis flushed (FLUSHALL)")
    if not pause(2):
        return
    freeze(3)
    pause(2)


def chaos(seconds: float, work: Path) -> dict[str, Any]:
    """Writes and revalidations while Redis is frozen, killed, restarted and flushed (module doc)."""
    ledger = Ledger()
    stop = threading.Event()
    timeline: list[str] = []
    writes = {"acknowledged": 0, "refused_503": 0, "other": 0}
    read_errors: list[str] = []
    run_s = max(seconds, 18.0)  # the fault sequence takes about 16 s
    with (
        RedisServer(work / "redis") as server,
        Gunicorn(bookstore_spec(work, server.url), work / "bookstore.log") as app,
    ):

        def client() -> httpx.Client:
            return httpx.Client(
                base_url=app.url, timeout=10, limits=httpx.Limits(max_keepalive_connections=0)
            )

        def writer(book_id: int) -> None:
            with client() as c:
                n = 0
                while not stop.is_set():
                    n += 1
                    try:
                        _, write = put_book(c, book_id, f"Book {book_id} chaos {n}")
                    except httpx.HTTPError:
                        writes["other"] += 1
                        continue
                    if write.status_code == 200:
                        ledger.acknowledged(book_id, int(write.json()["version"]))
                        writes["acknowledged"] += 1
                    elif write.status_code == 503:
                        writes["refused_503"] += 1
                    else:
                        writes["other"] += 1
                    time.sleep(0.05)

        def reader(path: str) -> None:
            revalidating = Reader(path, ledger)
            with client() as c:
                while not stop.is_set():
                    try:
                        revalidating.read(c, "reader")
                    except httpx.HTTPError as exc:
                        read_errors.append(f"GET {path}: {type(exc).__name__}")

        paths = [f"/books/{b}" for b in BOOKS for _ in range(2)] + ["/books"] * 2
        threads = [threading.Thread(target=writer, args=(b,)) for b in BOOKS]
        threads += [threading.Thread(target=reader, args=(p,)) for p in paths]
        t0 = time.monotonic()
        faults = threading.Thread(target=_faults, args=(server, stop, timeline, t0))
        for thread in [*threads, faults]:
            thread.start()
        faults.join(timeout=run_s + 30)
        time.sleep(max(0.0, run_s - (time.monotonic() - t0)))
        stop.set()
        for thread in threads:
            thread.join(timeout=30)

    fivexx = [e for e in ledger.errors if e.rsplit(": ", 1)[-1].startswith("5")]
    return {
        "what": f"{len(BOOKS)} writer threads (PUT with If-Match) and {len(paths)} reader threads "
        f"(revalidating the books and GET /books) on new connections to gunicorn's {WORKERS} workers for "
        f"{run_s:.0f} s while Redis was frozen, killed and restarted, flushed, and frozen again; a read is "
        "stale if it started after a write returned and shows an older version",
        "timeline": timeline,
        "writes": writes,
        "reads_checked": ledger.reads,
        "of_which_304": ledger.revalidated,
        "stale_304": sum(1 for s in ledger.stale if "304 for" in s),
        "stale_bodies": sum(1 for s in ledger.stale if "200 with" in s),
        "stale_examples": ledger.stale[:5],
        "read_5xx": len(fivexx),
        "read_other_errors": len(ledger.errors) - len(fivexx) + len(read_errors),
        "error_examples": (ledger.errors + read_errors)[:5],
    }

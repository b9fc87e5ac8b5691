"""Load and fault runs against the bookstore under gunicorn, on loopback, bounded in time.

    python -m benchmarks.load.run_load [throughput|fault|stall|ryw|chaos|all] [--seconds S]

Every run starts what it needs and stops it again: a PRIVATE ``redis-server`` on a free port (never
the shared one), gunicorn with 2 workers over an SQLite file in a temporary folder, and the load
tool. Results are merged into ``benchmarks/results/load.json`` and rendered as ``load.md``.

* ``throughput``: wrk revalidates ``GET /books`` (If-None-Match = the current ETag) against the
  bookstore (etagkit, stored ETags in Redis) and against ``werkzeug_bookstore`` (the same data with
  werkzeug's ``add_etag()`` + ``make_conditional()``) and a constant-304 app, in alternating rounds
  of the same run. Requests/s of each; the bookstore's over the constant-304 app's (goal >= 0.8,
  issue 15); every status that is not a 304 or a socket error (must be 0); and the bookstore's 304s
  that did not come from its stored validator (must be 0: one that outlived its TTL was re-stored).
* ``fault``: under wrk load, Redis is shut down (saving its data, so the stored validators come
  back with it), a book is changed while it is down, and Redis is started again. Reported: 5xx
  (must be 0), requests served statelessly while the breaker was open (the bookstore's /stats),
  and, after recovery, any response that still carries a validator from before the write (must be 0).
* ``stall``: the same with Redis frozen (SIGSTOP) and thawed (SIGCONT) instead: the same server
  comes back with its data and scripts, so nothing but the store's own catch-up can help.
* ``ryw``: writer threads change books (PUT with If-Match) while reader threads revalidate them,
  every request on a new connection so the two workers share the traffic; a read that starts after
  a write returned and shows an older version is a stale read (must be 0).
* ``chaos``: the same kind of writers and readers while Redis is frozen and thawed, killed and
  restarted, and flushed (``chaos.py``): stale 304s, stale bodies and 5xx on reads must be 0.

Needs ``wrk`` (Debian: ``apt-get install -y wrk``), ``redis-server`` and gunicorn (``pip install
'etagkit[examples]'``).
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import redis

from etagkit.cache import TagCache

from ._report import MUST_BE_ZERO, render
from ._tools import (
    ROOT,
    WORKERS,
    Gunicorn,
    Probe,
    RedisServer,
    Stats,
    WrkResult,
    bookstore_spec,
    current_etag,
    parse_wrk,
    put_book,
    require_tools,
    shutdown_saving,
    stats,
    werkzeug_spec,
    wrk,
    wrk_background,
    wrk_wait,
)

__all__ = [
    "MUST_BE_ZERO",
    "RUNS",
    "WORKERS",
    "Gunicorn",
    "Ledger",
    "Reader",
    "RedisServer",
    "Stats",
    "WrkResult",
    "bookstore_spec",
    "main",
    "parse_wrk",
    "put_book",
    "render",
    "stats",
]

RESULTS = ROOT / "benchmarks" / "results"
# How long the bookstore's stored validators live: TagCache's default TTL (it sets no ETAGKIT_TTL).
VALIDATOR_TTL: float = inspect.signature(TagCache).parameters["default_ttl"].default


# --------------------------------------------------------------------------------------------------
# The runs
# --------------------------------------------------------------------------------------------------


def throughput(seconds: float, work: Path) -> dict[str, Any]:
    """Revalidation requests/s: etagkit's stored ETags vs werkzeug's add_etag+make_conditional vs a floor."""
    rounds = 3
    per_round = max(2.0, seconds / (3 * rounds))
    specs = {
        "etagkit": "",
        "etagkit_early": "",
        "etagkit_early_local": "",
        "werkzeug": werkzeug_spec(work),
        "floor": "benchmarks.load.constant_304:app",
    }
    results: dict[str, list[WrkResult]] = {name: [] for name in specs}
    with RedisServer(work / "redis") as server, contextlib.ExitStack() as stack:
        specs["etagkit"] = bookstore_spec(work, server.url)  # first: it creates and seeds the SQLite file
        specs["etagkit_early"] = bookstore_spec(work, server.url, early_304=True)
        specs["etagkit_early_local"] = bookstore_spec(work, server.url, early_304=True, two_level=True)
        apps = {
            name: stack.enter_context(Gunicorn(spec, work / f"{name}.log")) for name, spec in specs.items()
        }
        etags = {name: current_etag(app.url + "/books") for name, app in apps.items()}
        stored_at = time.monotonic()  # the bookstore's validator of GET /books is stored from here on
        for name, app in apps.items():  # warm all (imports, SQLite pages, stored validators)
            wrk(app.url + "/books", etags[name], 1)
        before = stats(apps["etagkit"].url)
        for round_no in range(rounds):
            names = list(apps)
            for name in names[round_no:] + names[:round_no]:  # rotate who goes first
                results[name].append(wrk(apps[name].url + "/books", etags[name], per_round))
        after = stats(apps["etagkit"].url)
        validator_age = time.monotonic() - stored_at

    def summary(runs: list[WrkResult]) -> dict[str, Any]:
        return {
            "requests_per_s_median": round(statistics.median(r.rps for r in runs), 1),
            "requests_per_s_rounds": [round(r.rps, 1) for r in runs],
            "requests": sum(r.requests for r in runs),
            "not_304": sum(r.count(lambda s: s != 304) for r in runs),
            "socket_errors": sum(sum(r.errors.values()) for r in runs),
            "p50_ms_median": round(statistics.median(r.p50_ms for r in runs), 2),
            "p99_ms_median": round(statistics.median(r.p99_ms for r in runs), 2),
        }

    figures = {name: summary(runs) for name, runs in results.items()}
    rate = {name: figure["requests_per_s_median"] for name, figure in figures.items()}
    # each round's ratio compares two wrk runs made back to back, under the same machine load
    floor_ratios = [e.rps / f.rps for e, f in zip(results["etagkit"], results["floor"], strict=True) if f.rps]

    def vs_floor(name: str) -> list[float]:
        return [e.rps / f.rps for e, f in zip(results[name], results["floor"], strict=True) if f.rps]

    early_ratios, local_ratios = vs_floor("etagkit_early"), vs_floor("etagkit_early_local")
    # Revalidations the bookstore answered by running the view instead of from its stored validator:
    # 304s counted by its metrics minus the stored ones. Its validators live VALIDATOR_TTL seconds
    # (TagCache's default: the bookstore sets no ETAGKIT_TTL); a run longer than that would re-store
    # them and silently mix the two paths, so the count is a must-be-0 check of the run.
    computed_304 = (after.responses("304") - before.responses("304")) - (after.stored_304 - before.stored_304)
    return {
        "what": "GET /books (1,000 books, 125 KB of JSON) with If-None-Match of the current ETag: "
        "wrk -t2 -c16, "
        f"{rounds} rotating rounds of {per_round:.0f} s per app, each under gunicorn with {WORKERS} sync "
        "workers; etagkit = the bookstore (SQLite file, stored ETags in a private local Redis), "
        "etagkit_early = the same bookstore with ETAGKIT_EARLY_304 (stored revalidations answered before "
        "Flask dispatches), etagkit_early_local = that with a two-level store (a local layer over Redis in "
        "each worker, invalidations over pub/sub), werkzeug = "
        "the same data and body with add_etag()+make_conditional(), floor = a raw WSGI app's constant 304; "
        "etagkit_vs_floor = the median over rounds of each round's bookstore / floor requests/s; "
        "etagkit_304_not_from_store counts the bookstore's 304s that ran the view (its stored "
        f"validators live {VALIDATOR_TTL:g} s, TagCache's default: a longer run would re-store them)",
        **figures,
        "etagkit_vs_werkzeug": round(rate["etagkit"] / rate["werkzeug"], 2),
        "etagkit_vs_floor": round(statistics.median(floor_ratios), 3) if floor_ratios else None,
        "etagkit_vs_floor_rounds": [round(r, 3) for r in floor_ratios],
        "etagkit_vs_floor_goal": ">= 0.8 (issue 15)",
        "etagkit_early_vs_floor": round(statistics.median(early_ratios), 3) if early_ratios else None,
        "etagkit_early_vs_floor_rounds": [round(r, 3) for r in early_ratios],
        "etagkit_early_local_vs_floor": round(statistics.median(local_ratios), 3) if local_ratios else None,
        "etagkit_early_local_vs_floor_rounds": [round(r, 3) for r in local_ratios],
        "etagkit_stored_304": after.stored_304 - before.stored_304,
        "etagkit_304_not_from_store": computed_304,
        "etagkit_200": after.responses("200") - before.responses("200"),
        "validator_ttl_s": VALIDATOR_TTL,
        "validator_age_at_end_s": round(validator_age, 1),
        "errors": sum(f["not_304"] + f["socket_errors"] for f in figures.values()),
    }


def fault(seconds: float, work: Path, *, stall: bool = False) -> dict[str, Any]:
    """Redis stopped and started again under load: no 5xx, stateless answers, no stale validator after.

    Two back-to-back wrk phases revalidate ``GET /books`` with the ETag it had before the outage.
    Phase 1 spans the start of the outage; between the phases ``PUT /books/1`` changes the catalog
    (its invalidation cannot reach Redis); phase 2 spans the rest of the outage, the return of
    Redis with the pre-outage stored validator and the recovery. Every 304 of phase 2 would be a
    stale validator served: it must be 0. Redis goes away by ``SHUTDOWN SAVE`` and comes back by a
    restart that loads the saved data; with ``stall`` it is frozen (SIGSTOP: connections hang, the
    socket timeouts fire) and thawed (SIGCONT): the same server, its data and scripts intact.
    """
    load_s = max(12.0, seconds)
    phase1_s, phase2_s = round(load_s * 0.4), round(load_s * 0.6)
    with (
        RedisServer(work / "redis") as server,
        Gunicorn(bookstore_spec(work, server.url), work / "bookstore.log") as app,
        httpx.Client(base_url=app.url, timeout=10) as client,
    ):
        old = {path: current_etag(app.url + path) for path in ("/books", "/books/1")}
        current_etag(app.url + "/books")  # the second revalidation surely comes from the stored validator
        before = stats(app.url)
        timeline: list[str] = []
        t0 = time.monotonic()

        def mark(event: str) -> None:
            timeline.append(f"{time.monotonic() - t0:.1f} s: {event}")

        load = wrk_background(app.url + "/books", old["/books"], phase1_s)
        mark(f"phase 1: wrk for {phase1_s} s")
        time.sleep(phase1_s * 0.5)
        if stall:
            os.kill(server.proc.pid, signal.SIGSTOP)
            mark("Redis frozen (SIGSTOP)")
        else:
            shutdown_saving(server)
            mark("Redis shut down (SHUTDOWN SAVE)")
        phase1 = wrk_wait(load, phase1_s)
        _, write = put_book(client, 1, f"Changed during the outage {time.time():.0f}")
        mark(f"PUT /books/1 during the outage: {write.status_code}")
        load = wrk_background(app.url + "/books", old["/books"], phase2_s)
        mark(f"phase 2: wrk for {phase2_s} s")
        probe = Probe(app.url + "/books", old["/books"], t0)
        probe.start()
        time.sleep(phase2_s * 0.3)
        outage = stats(app.url)
        if stall:
            os.kill(server.proc.pid, signal.SIGCONT)
        else:
            server.start()
        restarted = time.monotonic() - t0
        restored = redis.Redis.from_url(server.url)
        keys_back = int(restored.dbsize())  # a private server: every key is the bookstore's
        restored.close()
        mark(
            f"Redis {'thawed (SIGCONT)' if stall else 'started again with its saved data'}: {keys_back} keys"
        )
        phase2 = wrk_wait(load, phase2_s)
        probe.stop()
        mark("load stopped")

        stale: list[str] = []
        for _ in range(40):  # new connections: both workers answer
            for path, etag in old.items():
                fresh = httpx.get(app.url + path, timeout=10)
                revalidated = httpx.get(app.url + path, headers={"If-None-Match": etag}, timeout=10)
                if fresh.headers.get("ETag") == etag:
                    stale.append(f"GET {path} carried the pre-outage {etag}")
                if revalidated.status_code == 304:
                    stale.append(f"GET {path} If-None-Match {etag} got 304")
        book = client.get("/books/1").json()
        if not str(book.get("title", "")).startswith("Changed during the outage"):
            stale.append(f"/books/1 lost the write made during the outage: {book}")
        after = stats(app.url)

    def statuses(result: WrkResult) -> dict[str, int]:
        return {str(k): v for k, v in sorted(result.statuses.items())}

    return {
        "what": "wrk -t2 -c16 on GET /books with If-None-Match of its pre-outage ETag: "
        f"phase 1 ({phase1_s} s, Redis {'frozen by SIGSTOP' if stall else 'shut down'} halfway), "
        f"PUT /books/1 while Redis is away, phase 2 ({phase2_s} s, Redis "
        f"{'thawed by SIGCONT' if stall else 'started again with its saved data'}, see the timeline); "
        "then 80 requests per validator over new connections",
        "requests": phase1.requests + phase2.requests,
        "statuses_phase1": statuses(phase1),
        "statuses_phase2": statuses(phase2),
        "5xx": phase1.count(lambda s: s >= 500) + phase2.count(lambda s: s >= 500),
        "socket_errors": sum(phase1.errors.values()) + sum(phase2.errors.values()),
        "write_during_outage": write.status_code,
        "stateless_served": after.stateless - before.stateless,
        "keys_when_redis_came_back": keys_back,
        "breakers_during_outage": sorted(outage.breakers.values()),
        "breakers_after": sorted(after.breakers.values()),
        "stale_304_under_load_after_the_write": phase2.statuses.get(304, 0),
        "write_served_by_worker": write.headers.get("X-Worker-Pid"),
        "probe_after_the_write": probe.summary(restarted),
        "stale_after_recovery": len(stale),
        "stale_examples": stale[:5],
        "timeline": timeline,
    }


@dataclass
class Ledger:
    """Per book: (version, monotonic time the write returned) of every acknowledged write; verdicts."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    writes: dict[int, list[tuple[int, float]]] = field(default_factory=dict)
    reads: int = 0
    revalidated: int = 0
    stale: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def acknowledged(self, book_id: int, version: int) -> None:
        with self.lock:
            self.writes.setdefault(book_id, []).append((version, time.monotonic()))

    def judge(self, label: str, snapshot: dict[int, int], started: float, not_modified: bool) -> None:
        """A read that started at ``started`` showed ``snapshot``: stale if a book in it is older than
        a write that had returned by then."""
        with self.lock:
            self.reads += 1
            self.revalidated += not_modified
            for book_id, version in snapshot.items():
                floor = max((v for v, t in self.writes.get(book_id, []) if t < started), default=0)
                if version < floor:
                    how = "304 for" if not_modified else "200 with"
                    self.stale.append(
                        f"{label}: {how} book {book_id} v{version} after v{floor} was acknowledged"
                    )


@dataclass
class Reader:
    """Reads one path again and again, revalidating with the ETag of its last 200."""

    path: str
    ledger: Ledger
    etag: str | None = None
    snapshot: dict[int, int] = field(default_factory=dict)  # book id -> version the last 200 showed

    def read(self, client: httpx.Client, label: str) -> None:
        started = time.monotonic()
        headers = {"If-None-Match": self.etag} if self.etag else {}
        response = client.get(self.path, headers=headers)
        if response.status_code == 200:
            data = response.json()
            books = data if isinstance(data, list) else [data]
            self.snapshot = {int(b["id"]): int(b["version"]) for b in books}
            self.etag = response.headers.get("ETag")
        elif response.status_code != 304 or self.etag is None:
            with self.ledger.lock:
                self.ledger.errors.append(f"{label} GET {self.path}: {response.status_code}")
            return
        self.ledger.judge(f"{label} GET {self.path}", self.snapshot, started, response.status_code == 304)


def ryw(seconds: float, work: Path) -> dict[str, Any]:
    """Concurrent writers and readers across both workers; count reads older than an acknowledged write.

    Each writer changes its own book (PUT with If-Match) and, once the PUT returned, revalidates the
    book and the whole list with the ETags it held from before: a 304 there, or a 200 showing an
    older version, is a stale read. Readers revalidate the books and the list (stored ETags, tag
    ``books``) meanwhile and are judged the same way against writes that had returned when their
    request started. Every request uses a new connection, so both workers serve every kind.
    """
    written = [1, 2, 3, 4]
    ledger = Ledger()
    stop = threading.Event()
    with (
        RedisServer(work / "redis") as server,
        Gunicorn(bookstore_spec(work, server.url), work / "bookstore.log") as app,
    ):

        def client() -> httpx.Client:
            return httpx.Client(
                base_url=app.url, timeout=10, limits=httpx.Limits(max_keepalive_connections=0)
            )

        def writer(book_id: int) -> None:
            item, catalog = Reader(f"/books/{book_id}", ledger), Reader("/books", ledger)
            with client() as c:
                item.read(c, "writer")
                catalog.read(c, "writer")
                n = 0
                while not stop.is_set():
                    n += 1
                    _, write = put_book(c, book_id, f"Book {book_id} edit {n}")
                    if write.status_code != 200:
                        with ledger.lock:
                            ledger.errors.append(f"PUT /books/{book_id}: {write.status_code}")
                        continue
                    ledger.acknowledged(book_id, int(write.json()["version"]))
                    item.read(c, "writer read-back")
                    catalog.read(c, "writer read-back")

        def reader(path: str) -> None:
            revalidating = Reader(path, ledger)
            with client() as c:
                while not stop.is_set():
                    revalidating.read(c, "reader")

        paths = [f"/books/{b}" for b in written for _ in range(2)] + ["/books"] * 2
        threads = [threading.Thread(target=writer, args=(b,)) for b in written]
        threads += [threading.Thread(target=reader, args=(p,)) for p in paths]
        for thread in threads:
            thread.start()
        time.sleep(seconds)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)

    return {
        "what": f"{len(written)} writer threads (each PUTs its own book with If-Match, then revalidates the "
        f"book and GET /books with the ETags it held before) and {len(paths)} reader threads (revalidating "
        f"the 4 books and the list) for {seconds:.0f} s, every request on a new connection to gunicorn's "
        f"{WORKERS} workers; a read is stale if it started after a write returned and shows an older "
        "version (a 304 shows the version of the 200 its validator came from)",
        "writes_acknowledged": sum(len(v) for v in ledger.writes.values()),
        "reads_checked": ledger.reads,
        "of_which_304": ledger.revalidated,
        "stale_reads": len(ledger.stale),
        "stale_examples": ledger.stale[:5],
        "errors": len(ledger.errors),
        "error_examples": ledger.errors[:5],
    }


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


def _chaos(seconds: float, work: Path) -> dict[str, Any]:
    from .chaos import chaos  # chaos.py builds on this module's servers and ledger

    return chaos(seconds, work)


RUNS: dict[str, Callable[[float, Path], dict[str, Any]]] = {
    "throughput": throughput,
    "fault": fault,
    "stall": partial(fault, stall=True),
    "ryw": ryw,
    "chaos": _chaos,
}


def _commit() -> str:
    out = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return out.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.load.run_load", description=__doc__.splitlines()[0]
    )
    parser.add_argument("run", choices=[*RUNS, "all"], nargs="?", default="all")
    parser.add_argument("--seconds", type=float, default=20.0, help="load duration of each run (default 20)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    runs = list(RUNS) if args.run == "all" else [args.run]
    require_tools(runs)

    path = args.out / "load.json"
    results: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    failed = False
    for name in runs:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix=f"etagkit-load-{name}-") as tmp:
            try:
                run = RUNS[name](args.seconds, Path(tmp))
            except Exception as exc:
                logs = "".join(p.read_text(errors="replace")[-2000:] for p in Path(tmp).glob("*.log"))
                print(f"{name} failed: {type(exc).__name__}: {exc}\n{logs}", file=sys.stderr)
                failed = True
                continue
        run = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "commit": _commit(), **run}
        results[name] = run
        print(json.dumps(run, indent=2))
    args.out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    (args.out / "load.md").write_text(render(results), encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

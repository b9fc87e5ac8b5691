"""Load and fault runs against the bookstore under gunicorn, on loopback, bounded in time.

    python -m benchmarks.load.run_load [throughput|fault|stall|ryw|chaos|all] [--seconds S]

Every run starts what it needs and stops it again: a PRIVATE ``redis-server`` on a free port (never
the shared one), gunicorn with 2 workers over an SQLite file in a temporary folder, and the load
tool. Results are merged into ``benchmarks/results/load.json`` and rendered as ``load.md``.

* ``throughput``: wrk revalidates ``GET /books`` (If-None-Match = the current ETag) against the
  bookstore (etagkit, stored ETags in Redis) and against ``werkzeug_bookstore`` (the same data with
  werkzeug's ``add_etag()`` + ``make_conditional()``), in alternating rounds of the same run.
  Requests/s of each, their ratio, and every status that is not a 304 or a socket error (must be 0).
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
import importlib.util
import json
import os
import shutil
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

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "tests"))  # the test suite's real-server helpers: one implementation

from support import RedisServer, free_port, wait_for_port  # type: ignore[import-not-found]  # noqa: E402

WORKERS = 2


# --------------------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------------------


class Gunicorn:
    """gunicorn serving ``app_spec`` with 2 workers on a free loopback port, in its own session."""

    def __init__(self, app_spec: str, log: Path) -> None:
        self.app_spec = app_spec
        self.log = log
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Gunicorn:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "--workers",
                    str(WORKERS),
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    "--chdir",
                    str(ROOT),
                    "--log-level",
                    "warning",
                    "--graceful-timeout",
                    "5",
                    self.app_spec,
                ],
                stdout=log,
                stderr=log,
                start_new_session=True,  # its workers share its process group: stopped together
            )
        try:
            wait_for_port(self.port, timeout=30)
        except TimeoutError:
            self.__exit__()
            raise RuntimeError(f"gunicorn did not start; see {self.log}") from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)
        self.proc = None


def bookstore_spec(work: Path, redis_url: str) -> str:
    """The bookstore over ``work/books.db`` and Redis; /stats sums its workers' counters (metrics_dir)."""
    metrics = work / "metrics"
    metrics.mkdir(exist_ok=True)
    return (
        f"examples.bookstore:create_app(db={str(work / 'books.db')!r}, redis_url={redis_url!r}, "
        f"metrics_dir={str(metrics)!r})"
    )


def werkzeug_spec(work: Path) -> str:
    return f"benchmarks.load.werkzeug_bookstore:create_app(db={str(work / 'books.db')!r})"


def shutdown_saving(server: RedisServer) -> None:
    """Stop Redis the way an operator does (SHUTDOWN SAVE): its data, stored ETags included, come back."""
    client = redis.Redis.from_url(server.url)
    with contextlib.suppress(redis.ConnectionError):
        client.shutdown(save=True)
    client.close()
    if server.proc is not None:
        server.proc.wait(timeout=30)
    server.proc = None


# --------------------------------------------------------------------------------------------------
# wrk
# --------------------------------------------------------------------------------------------------


def require_tools(runs: list[str]) -> None:
    """Exit with instructions when a tool the runs need is missing (``chaos`` needs no wrk)."""
    missing = []
    if shutil.which("wrk") is None and set(runs) - {"chaos"}:
        missing.append("wrk: apt-get update && apt-get install -y wrk  (Debian/Ubuntu package 'wrk')")
    if shutil.which("redis-server") is None:
        missing.append("redis-server: apt-get install -y redis-server")
    if importlib.util.find_spec("gunicorn") is None:
        missing.append("gunicorn: pip install 'etagkit[examples]'")
    if missing:
        sys.exit("missing tools:\n  " + "\n  ".join(missing))


@dataclass
class WrkResult:
    """What one wrk run saw: status counts, socket errors, requests/s and latency percentiles."""

    statuses: dict[int, int]
    requests: int
    seconds: float
    errors: dict[str, int]
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def count(self, predicate: Callable[[int], bool]) -> int:
        return sum(n for status, n in self.statuses.items() if predicate(status))


def wrk_command(url: str, seconds: float, connections: int) -> list[str]:
    return [
        "wrk",
        "-t2",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "-s",
        str(HERE / "revalidate.lua"),
        url,
    ]


def parse_wrk(output: str) -> WrkResult:
    for line in output.splitlines():
        if line.startswith("WRK_RESULT "):
            data = json.loads(line.removeprefix("WRK_RESULT "))
            return WrkResult(
                statuses={int(k): v for k, v in data["statuses"].items()},
                requests=data["requests"],
                seconds=data["duration_us"] / 1e6,
                errors=data["errors"],
                p50_ms=data["latency_p50_us"] / 1000,
                p99_ms=data["latency_p99_us"] / 1000,
            )
    raise RuntimeError(f"wrk printed no result line:\n{output}")


def wrk(url: str, etag: str, seconds: float, connections: int = 16) -> WrkResult:
    out = subprocess.run(
        wrk_command(url, seconds, connections),
        env={**os.environ, "ETAG": etag},
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    return parse_wrk(out.stdout)


def current_etag(url: str) -> str:
    """GET ``url`` and return its ETag, after checking that revalidating with it gives a 304."""
    with httpx.Client(timeout=10) as client:
        first = client.get(url)
        etag: str | None = first.headers.get("ETag")
        if first.status_code != 200 or etag is None:
            raise RuntimeError(
                f"{url}: expected 200 with an ETag, got {first.status_code} {dict(first.headers)}"
            )
        again = client.get(url, headers={"If-None-Match": etag})
        if again.status_code != 304:
            raise RuntimeError(f"{url}: revalidation with {etag} gave {again.status_code}, not 304")
    return etag


# --------------------------------------------------------------------------------------------------
# The runs
# --------------------------------------------------------------------------------------------------


def throughput(seconds: float, work: Path) -> dict[str, Any]:
    """Revalidation requests/s: etagkit's stored ETags vs werkzeug's add_etag+make_conditional vs a floor."""
    rounds = 3
    per_round = max(2.0, seconds / (3 * rounds))
    specs = {"etagkit": "", "werkzeug": werkzeug_spec(work), "floor": "benchmarks.load.constant_304:app"}
    results: dict[str, list[WrkResult]] = {name: [] for name in specs}
    with RedisServer(work / "redis") as server, contextlib.ExitStack() as stack:
        specs["etagkit"] = bookstore_spec(work, server.url)  # first: it creates and seeds the SQLite file
        apps = {
            name: stack.enter_context(Gunicorn(spec, work / f"{name}.log")) for name, spec in specs.items()
        }
        etags = {name: current_etag(app.url + "/books") for name, app in apps.items()}
        for name, app in apps.items():  # warm all (imports, SQLite pages, stored validators)
            wrk(app.url + "/books", etags[name], 1)
        before = stats(apps["etagkit"].url)
        for round_no in range(rounds):
            names = list(apps)
            for name in names[round_no:] + names[:round_no]:  # rotate who goes first
                results[name].append(wrk(apps[name].url + "/books", etags[name], per_round))
        after = stats(apps["etagkit"].url)

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
    return {
        "what": "GET /books (1,000 books, 125 KB of JSON) with If-None-Match of the current ETag: "
        "wrk -t2 -c16, "
        f"{rounds} rotating rounds of {per_round:.0f} s per app, each under gunicorn with {WORKERS} sync "
        "workers; etagkit = the bookstore (SQLite file, stored ETags in a private local Redis), werkzeug = "
        "the same data and body with add_etag()+make_conditional(), floor = a raw WSGI app's constant 304",
        **figures,
        "etagkit_vs_werkzeug": round(rate["etagkit"] / rate["werkzeug"], 2),
        "etagkit_vs_floor": round(rate["etagkit"] / rate["floor"], 2),
        "etagkit_stored_304": after.stored_304 - before.stored_304,
        "errors": sum(f["not_304"] + f["socket_errors"] for f in figures.values()),
    }


@dataclass
class Stats:
    """The bookstore's /stats: counters summed over its workers, and each worker's breaker state."""

    totals: dict[str, Any]
    breakers: dict[int, str]

    @property
    def stateless(self) -> int:
        """Requests answered without the store (breaker open or lookup failed): run and hashed."""
        return int(self.totals["events"].get("stateless_fallback", 0))

    @property
    def stored_304(self) -> int:
        return int(self.totals["stored_304"])


def stats(url: str) -> Stats:
    """Read /stats over new connections until both workers answered (each read flushes its counters)."""
    breakers: dict[int, str] = {}
    doc: dict[str, Any] = {}
    for _ in range(50):
        response = httpx.get(url + "/stats", timeout=10)
        response.raise_for_status()
        doc = response.json()
        breakers[int(doc["pid"])] = str(doc["breaker"])
        if len(breakers) == WORKERS:
            break
    time.sleep(1.2)  # the counters a worker flushed on its last read reach the shared folder
    doc = httpx.get(url + "/stats", timeout=10).json()
    return Stats(totals=doc["totals"], breakers=breakers)


def put_book(client: httpx.Client, book_id: int, title: str) -> tuple[str, httpx.Response]:
    """Change a book's title with If-Match of its current ETag; return that ETag and the PUT's response."""
    current = client.get(f"/books/{book_id}")
    current.raise_for_status()
    book, etag = current.json(), current.headers["ETag"]
    body = {"title": title, "author": book["author"], "year": book["year"]}
    return etag, client.put(f"/books/{book_id}", json=body, headers={"If-Match": etag})


def wrk_background(url: str, etag: str, seconds: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        wrk_command(url, seconds, 16),
        env={**os.environ, "ETAG": etag},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wrk_wait(load: subprocess.Popen[str], seconds: float) -> WrkResult:
    out, err = load.communicate(timeout=seconds + 60)
    return parse_wrk(out + err)


class Probe(threading.Thread):
    """Revalidates one URL with an old ETag on new connections, recording when each request was sent,
    its status and the worker that answered (the bookstore's X-Worker-Pid)."""

    def __init__(self, url: str, etag: str, t0: float) -> None:
        super().__init__(daemon=True)
        self.url, self.etag, self.t0 = url, etag, t0
        self.seen: list[tuple[float, int, str]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            sent = time.monotonic() - self.t0
            try:
                response = httpx.get(self.url, headers={"If-None-Match": self.etag}, timeout=10)
            except httpx.HTTPError as exc:
                self.seen.append((sent, 0, type(exc).__name__))
                continue
            self.seen.append((sent, response.status_code, response.headers.get("X-Worker-Pid", "?")))

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=30)

    def summary(self, restarted: float) -> dict[str, Any]:
        """Requests, and the 304s (stale: they name the pre-write validator) by worker, in seconds
        relative to the moment Redis was started again."""
        stale = [(t - restarted, pid) for t, status, pid in self.seen if status == 304]
        return {
            "requests": len(self.seen),
            "stale_304": len(stale),
            "stale_304_by_worker": {
                pid: sum(1 for _, p in stale if p == pid) for pid in sorted({p for _, p in stale})
            },
            "stale_304_from_s_after_restart": round(min((t for t, _ in stale), default=0.0), 2),
            "stale_304_until_s_after_restart": round(max((t for t, _ in stale), default=0.0), 2),
            "errors": sum(1 for _, status, _ in self.seen if status == 0 or status >= 500),
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


# The figures that must be 0, per run: (key path, what it counts).
MUST_BE_ZERO: dict[str, list[tuple[str, str]]] = {
    "throughput": [("errors", "responses other than 304, and socket errors, in all three apps")],
    "fault": [
        ("5xx", "5xx responses while Redis was down and coming back"),
        ("socket_errors", "socket errors seen by wrk"),
        (
            "stale_304_under_load_after_the_write",
            "304s for the pre-write validator after the write returned (wrk)",
        ),
        ("probe_after_the_write.stale_304", "the same, seen by the timestamped probe"),
        ("stale_after_recovery", "responses carrying or matching a pre-outage validator after recovery"),
    ],
    "stall": [],  # the same checks as "fault", filled in below
    "ryw": [
        ("stale_reads", "reads older than a write that had returned when they started"),
        ("errors", "failed requests"),
    ],
}


MUST_BE_ZERO["stall"] = MUST_BE_ZERO["fault"]
MUST_BE_ZERO["chaos"] = [
    ("stale_304", "304s for a validator older than a write that had returned when the read started"),
    ("stale_bodies", "200s showing a version older than such a write"),
    ("read_5xx", "5xx answers to reads"),
]


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
        return [pair for key, inner in value.items() for pair in _flatten(inner, f"{prefix}{key}.")]
    return [(prefix.rstrip("."), value)]


def render(results: dict[str, Any]) -> str:
    """load.md: one section per run, the must-be-zero checks first, every figure under them."""
    lines = [
        "# etagkit load and fault runs",
        "",
        "Produced by `python -m benchmarks.load.run_load all` (see `benchmarks/README.md`). Loopback only, "
        "on a 2-core machine: the load tool, gunicorn and Redis share the same cores, so absolute rates are "
        "modest; compare within a run.",
        "",
    ]
    for name in RUNS:
        run = results.get(name)
        if run is None:
            continue
        figures = dict(_flatten({k: v for k, v in run.items() if k not in ("what", "date", "commit")}))
        lines += [f"## {name}", "", f"{run['date']}, commit {run['commit']}: {run['what']}.", ""]
        lines += ["| must be 0 | counts | value | met? |", "|---|---|---|---|"]
        for key, meaning in MUST_BE_ZERO[name]:
            value = figures.get(key)
            verdict = "-" if value is None else ("met" if value == 0 else "NOT met")
            lines.append(f"| `{key}` | {meaning} | {value if value is not None else '-'} | {verdict} |")
        lines += ["", "| figure | value |", "|---|---|"]
        lines += [f"| `{key}` | {json.dumps(value, ensure_ascii=False)} |" for key, value in figures.items()]
        lines.append("")
    return "\n".join(lines)


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

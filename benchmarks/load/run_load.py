"""Load and fault runs against the bookstore under gunicorn, on loopback, bounded in time.

    python -m benchmarks.load.run_load [throughput|fault|ryw|all] [--seconds S]

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
* ``ryw``: writer threads change books (PUT with If-Match) while reader threads revalidate them,
  every request on a new connection so the two workers share the traffic; a read that starts after
  a write returned and shows an older version is a stale read (must be 0).

Needs ``wrk`` (Debian: ``apt-get install -y wrk``), ``redis-server`` and gunicorn (``pip install
'etagkit[examples]'``).
"""

from __future__ import annotations

import argparse
import contextlib
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
from pathlib import Path
from typing import Any

import httpx
import redis

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "tests"))  # the test suite's real-server helpers: one implementation

from support import RedisServer, free_port, wait_for_port  # noqa: E402

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


def bookstore_spec(db: Path, redis_url: str) -> str:
    return f"examples.bookstore:create_app(db={str(db)!r}, redis_url={redis_url!r})"


def werkzeug_spec(db: Path) -> str:
    return f"benchmarks.load.werkzeug_bookstore:create_app(db={str(db)!r})"


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


def require_tools() -> None:
    """Exit with instructions when a tool the runs need is missing."""
    missing = []
    if shutil.which("wrk") is None:
        missing.append("wrk: apt-get update && apt-get install -y wrk  (Debian/Ubuntu package 'wrk')")
    if shutil.which("redis-server") is None:
        missing.append("redis-server: apt-get install -y redis-server")
    try:
        import gunicorn  # noqa: F401
    except ImportError:
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
        etag = first.headers.get("ETag")
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
    """Revalidation requests/s: etagkit's stored ETags vs werkzeug's add_etag+make_conditional."""
    db = work / "books.db"
    rounds = 3
    per_round = max(2.0, seconds / (2 * rounds))
    results: dict[str, list[WrkResult]] = {"etagkit": [], "werkzeug": []}
    with (
        RedisServer(work / "redis") as server,
        Gunicorn(bookstore_spec(db, server.url), work / "etagkit.log") as etagkit_app,
        Gunicorn(werkzeug_spec(db), work / "werkzeug.log") as werkzeug_app,
    ):
        apps = {"etagkit": etagkit_app, "werkzeug": werkzeug_app}
        etags = {name: current_etag(app.url + "/books") for name, app in apps.items()}
        for name, app in apps.items():  # warm both (imports, SQLite pages, stored validators)
            wrk(app.url + "/books", etags[name], 1)
        for round_no in range(rounds):
            order = list(apps) if round_no % 2 == 0 else list(apps)[::-1]
            for name in order:
                results[name].append(wrk(apps[name].url + "/books", etags[name], per_round))

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

    etagkit, werkzeug = summary(results["etagkit"]), summary(results["werkzeug"])
    return {
        "what": "GET /books (1,000 books) with If-None-Match of the current ETag: wrk -t2 -c16, "
        f"{rounds} alternating rounds of {per_round:.0f} s per app, gunicorn {WORKERS} sync workers each, "
        "SQLite file, private local Redis",
        "etagkit": etagkit,
        "werkzeug": werkzeug,
        "ratio": round(etagkit["requests_per_s_median"] / werkzeug["requests_per_s_median"], 2),
        "errors": etagkit["not_304"]
        + etagkit["socket_errors"]
        + werkzeug["not_304"]
        + werkzeug["socket_errors"],
    }


def stats(url: str) -> dict[str, Any]:
    """The bookstore's /stats document (counters aggregated over its workers)."""
    response = httpx.get(url + "/stats", timeout=10)
    response.raise_for_status()
    data: dict[str, Any] = response.json()
    return data


def stateless_served(doc: dict[str, Any]) -> int:
    """Requests the bookstore answered without its store (breaker open or lookup failed)."""
    return int(doc.get("stateless", 0))


def breaker_states(doc: dict[str, Any]) -> list[str]:
    return [str(doc.get("breaker", "unknown"))]


def put_book(client: httpx.Client, book_id: int, title: str) -> tuple[str, httpx.Response]:
    """Change a book's title with If-Match of its current ETag; return that ETag and the PUT's response."""
    current = client.get(f"/books/{book_id}")
    current.raise_for_status()
    book, etag = current.json(), current.headers["ETag"]
    body = {"title": title, "author": book["author"], "year": book["year"]}
    return etag, client.put(f"/books/{book_id}", json=body, headers={"If-Match": etag})


def fault(seconds: float, work: Path) -> dict[str, Any]:
    """Redis stopped and started again under load: no 5xx, stateless answers, no stale validator after."""
    db = work / "books.db"
    load_s = max(12.0, seconds)
    with (
        RedisServer(work / "redis") as server,
        Gunicorn(bookstore_spec(db, server.url), work / "bookstore.log") as app,
        httpx.Client(base_url=app.url, timeout=10) as client,
    ):
        old = {path: current_etag(app.url + path) for path in ("/books", "/books/1")}
        before = stats(app.url)
        load = subprocess.Popen(
            wrk_command(app.url + "/books", load_s, 16),
            env={**os.environ, "ETAG": old["/books"]},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        timeline: list[str] = []
        t0 = time.monotonic()

        def mark(event: str) -> None:
            timeline.append(f"{time.monotonic() - t0:5.1f} s  {event}")

        try:
            time.sleep(load_s * 0.25)
            shutdown_saving(server)
            mark("Redis shut down (SHUTDOWN SAVE)")
            time.sleep(load_s * 0.1)
            _, write = put_book(client, 1, f"Changed during the outage {time.time():.0f}")
            mark(f"PUT /books/1 during the outage: {write.status_code}")
            outage = stats(app.url)
            time.sleep(load_s * 0.25)
            server.start()
            mark("Redis started again (its saved data, old validators included, loaded)")
            outage_end = stats(app.url)
            time.sleep(load_s * 0.3)
        finally:
            out, err = load.communicate(timeout=load_s + 60)
        mark("load stopped")
        result = parse_wrk(out + err)

        stale: list[str] = []
        served: dict[str, int] = {}
        for _ in range(40):  # new connections: both workers answer
            for path, etag in old.items():
                fresh = httpx.get(app.url + path, timeout=10)
                revalidated = httpx.get(app.url + path, headers={"If-None-Match": etag}, timeout=10)
                served[str(fresh.status_code)] = served.get(str(fresh.status_code), 0) + 1
                if fresh.headers.get("ETag") == etag:
                    stale.append(f"GET {path} carried the pre-outage {etag}")
                if revalidated.status_code == 304:
                    stale.append(f"GET {path} If-None-Match {etag} got 304")
        book = client.get("/books/1").json()
        if not str(book.get("title", "")).startswith("Changed during the outage"):
            stale.append(f"/books/1 lost the write made during the outage: {book}")
        after = stats(app.url)

    return {
        "what": f"wrk -t2 -c16 on GET /books (If-None-Match) for {load_s:.0f} s; Redis shut down at 25%, "
        "PUT /books/1 during the outage, Redis restarted at ~60% with its saved data; then 80 checks "
        "per validator over new connections",
        "requests": result.requests,
        "statuses": {str(k): v for k, v in sorted(result.statuses.items())},
        "5xx": result.count(lambda s: s >= 500),
        "socket_errors": sum(result.errors.values()),
        "write_during_outage": write.status_code,
        "stateless_during_outage": stateless_served(outage_end) - stateless_served(before),
        "stateless_total": stateless_served(after) - stateless_served(before),
        "breaker_during_outage": breaker_states(outage),
        "breaker_after": breaker_states(after),
        "stale_after_recovery": len(stale),
        "stale_examples": stale[:5],
        "timeline": timeline,
    }


@dataclass
class Ledger:
    """Per book: (version, monotonic time the write returned) of every acknowledged write."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    writes: dict[int, list[tuple[int, float]]] = field(default_factory=dict)
    reads: int = 0
    stale: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def acknowledged(self, book_id: int, version: int) -> None:
        with self.lock:
            self.writes.setdefault(book_id, []).append((version, time.monotonic()))

    def floor(self, book_id: int, started: float) -> int:
        """The newest version whose write returned before ``started``: a later read must show it."""
        with self.lock:
            return max((v for v, t in self.writes.get(book_id, []) if t < started), default=0)


def ryw(seconds: float, work: Path) -> dict[str, Any]:
    """Concurrent writers and readers across both workers; count reads older than an acknowledged write."""
    db = work / "books.db"
    books = list(range(1, 9))
    ledger = Ledger()
    stop = threading.Event()
    with (
        RedisServer(work / "redis") as server,
        Gunicorn(bookstore_spec(db, server.url), work / "bookstore.log") as app,
    ):

        def check(book_id: int, started: float, response: httpx.Response, label: str) -> None:
            floor = ledger.floor(book_id, started)
            if response.status_code == 304:
                return  # judged by the caller, who knows which version its validator names
            if response.status_code != 200:
                ledger.errors.append(f"{label} /books/{book_id}: {response.status_code}")
                return
            version = int(response.json()["version"])
            with ledger.lock:
                ledger.reads += 1
            if version < floor:
                ledger.stale.append(
                    f"{label} /books/{book_id}: version {version} after v{floor} was acknowledged"
                )

        def writer(book_id: int) -> None:
            with httpx.Client(
                base_url=app.url, timeout=10, limits=httpx.Limits(max_keepalive_connections=0)
            ) as c:
                n = 0
                while not stop.is_set():
                    n += 1
                    old_etag, write = put_book(c, book_id, f"Book {book_id} edit {n}")
                    if write.status_code != 200:
                        ledger.errors.append(f"PUT /books/{book_id}: {write.status_code}")
                        continue
                    ledger.acknowledged(book_id, int(write.json()["version"]))
                    started = time.monotonic()
                    check(book_id, started, c.get(f"/books/{book_id}"), "read-back")
                    revalidated = c.get(f"/books/{book_id}", headers={"If-None-Match": old_etag})
                    if revalidated.status_code == 304:  # the validator from before the write still matched
                        ledger.stale.append(f"read-back /books/{book_id}: 304 for {old_etag} after the write")
                    check(book_id, started, revalidated, "revalidating read-back")

        def reader(book_id: int) -> None:
            etag_versions: dict[str, int] = {}
            last: str | None = None
            with httpx.Client(
                base_url=app.url, timeout=10, limits=httpx.Limits(max_keepalive_connections=0)
            ) as c:
                while not stop.is_set():
                    started = time.monotonic()
                    headers = {"If-None-Match": last} if last else {}
                    response = c.get(f"/books/{book_id}", headers=headers)
                    if response.status_code == 304 and last is not None:
                        with ledger.lock:
                            ledger.reads += 1
                        floor = ledger.floor(book_id, started)
                        if etag_versions[last] < floor:
                            seen = etag_versions[last]
                            ledger.stale.append(
                                f"reader /books/{book_id}: 304 for v{seen} after v{floor} was acknowledged"
                            )
                        continue
                    check(book_id, started, response, "reader")
                    if response.status_code == 200:
                        last = response.headers.get("ETag")
                        if last:
                            etag_versions[last] = int(response.json()["version"])

        threads = [threading.Thread(target=writer, args=(b,)) for b in books[:4]]
        threads += [threading.Thread(target=reader, args=(b,)) for b in books[:4] for _ in range(2)]
        for thread in threads:
            thread.start()
        time.sleep(seconds)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)

    writes = sum(len(v) for v in ledger.writes.values())
    return {
        "what": f"{len(books[:4])} writer threads (PUT with If-Match, then read back) and 8 reader threads "
        f"(revalidating with their last ETag) on 4 books for {seconds:.0f} s, every request on a new "
        f"connection to gunicorn's {WORKERS} workers; a read is stale if it started after a write "
        "returned and shows an older version (a 304 counts as the version its validator names)",
        "writes_acknowledged": writes,
        "reads_checked": ledger.reads,
        "stale_reads": len(ledger.stale),
        "stale_examples": ledger.stale[:5],
        "errors": len(ledger.errors),
        "error_examples": ledger.errors[:5],
    }


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------

RUNS: dict[str, Callable[[float, Path], dict[str, Any]]] = {
    "throughput": throughput,
    "fault": fault,
    "ryw": ryw,
}


def render(results: dict[str, Any]) -> str:
    """load.md: one section per run, the verdicts first, the raw figures under them."""
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
        lines += [f"## {name}", "", f"{run['date']}, commit {run['commit']}: {run['what']}.", ""]
        lines += ["| figure | value |", "|---|---|"]
        for key, value in run.items():
            if key not in ("what", "date", "commit"):
                lines.append(f"| {key} | {json.dumps(value, ensure_ascii=False)} |")
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
    require_tools()

    path = args.out / "load.json"
    results: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    failed = False
    for name in RUNS if args.run == "all" else [args.run]:
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

"""The load runs' tools: gunicorn on a free port, wrk and its result line, the bookstore's /stats.

Split from ``run_load.py`` (which re-exports these names) to keep each module short.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
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


def bookstore_spec(work: Path, redis_url: str, *, early_304: bool = False, two_level: bool = False) -> str:
    """The bookstore over ``work/books.db`` and Redis; /stats sums its workers' counters (metrics_dir).
    ``early_304``: stored revalidations answered before Flask dispatches; ``two_level``: a local layer
    over Redis in each worker (each variant counts in its own metrics dir)."""
    metrics = work / f"metrics-{int(early_304)}{int(two_level)}"
    metrics.mkdir(exist_ok=True)
    return (
        f"examples.bookstore:create_app(db={str(work / 'books.db')!r}, redis_url={redis_url!r}, "
        f"metrics_dir={str(metrics)!r}, early_304={early_304!r}, two_level={two_level!r})"
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

    def responses(self, status_class: str) -> int:
        """Responses of the conditional routes in one status class ("200", "304", "other", ...)."""
        return int(self.totals["responses"].get(status_class, 0))


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


def put_book(client: httpx.Client, book_id: int, title: str) -> tuple[str, httpx.Response]:
    """Change a book's title with If-Match of its current ETag; return that ETag and the PUT's response."""
    current = client.get(f"/books/{book_id}")
    current.raise_for_status()
    book, etag = current.json(), current.headers["ETag"]
    body = {"title": title, "author": book["author"], "year": book["year"]}
    return etag, client.put(f"/books/{book_id}", json=body, headers={"If-Match": etag})


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

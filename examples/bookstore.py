"""The book catalog: etagkit's flagship example (a Flask app over SQLite, cached with etagkit).

Run it with one command (waitress, a production WSGI server, on http://127.0.0.1:8000, an in-memory
SQLite seeded with 1,000 deterministic books and the in-process cache)::

    python examples/bookstore.py [--host H] [--port P] [--db FILE] [--redis URL] [--books N]

Several worker processes need shared data and a shared store: an SQLite file and Redis::

    gunicorn -w 2 -b 127.0.0.1:8000 \
        'examples.bookstore:create_app(db="/tmp/books.db", redis_url="redis://127.0.0.1:6379/0")'

(``create_app()`` without arguments reads ``BOOKSTORE_DB``, ``ETAGKIT_REDIS_URL``,
``BOOKSTORE_REDIS_PREFIX``, ``BOOKSTORE_BOOKS`` and ``BOOKSTORE_METRICS_DIR`` from the environment.)

Request bodies are JSON objects with ``title`` (string), ``author`` (string) and ``year``
(integer). A PUT also accepts the book's own representation back (what a GET gave, edited: the
read-modify-write every REST client does): ``id`` must then be the id in the URL (else 422), and
``version`` / ``updated_at`` are read-only, so their values are ignored (the server sets both on every
write; the ``If-Match`` header, not the body, says which version the client edited), though they must
still have their types. A POST creates a book, so the server's fields are refused there. Any other
field is **rejected** (422, listing it) so that a typo never silently drops data. Malformed JSON is
400; JSON that is not a valid book is 422. Every error body is an RFC 9457 problem document
(``application/problem+json``), the shape etagkit gives its own 412 and 428.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, urlsplit
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

import click
from flask import Flask, Response, g, jsonify, request, url_for
from werkzeug.exceptions import HTTPException

from etagkit import CacheControl, ETag, StoreUnavailableError, etag_from_version
from etagkit.cache import MemoryStore, Store, TagCache
from etagkit.flask import ETagKit
from etagkit.metrics import Metrics

__all__ = ["Book", "Catalog", "InvalidBook", "create_app", "main", "parse_book", "seed_books"]

DEFAULT_BOOKS = 1000
SEED = 20240101
MAX_BODY = 64 * 1024  # bytes; a book is a few hundred
DEFAULT_REDIS_TIMEOUT = 0.25  # seconds, socket and connect
_SQLITE_MAX_INT = 2**63 - 1

# ---------------------------------------------------------------------------------------------------
# Data: SQLite behind one connection and a lock (correct under a threaded server, and an in-memory
# database is private to its connection anyway). A file database is shared by worker processes; each
# write is one IMMEDIATE transaction, so nothing is ever half-written.
# ---------------------------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS books (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    title      TEXT    NOT NULL,
    author     TEXT    NOT NULL,
    year       INTEGER NOT NULL,
    version    INTEGER NOT NULL,
    updated_at TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_COLUMNS = "id, title, author, year, version, updated_at"

_FIRST = ["Ada", "Boris", "Chioma", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas",
          "Kemal", "Lena", "Mateo", "Nadia", "Oskar", "Priya"]  # fmt: skip
_LAST = ["Abe", "Brandt", "Costa", "Dube", "Eriksen", "Fontaine", "Gupta", "Halvorsen", "Ivanova",
         "Jansen", "Kowalski", "Lindqvist"]  # fmt: skip
_ADJ = ["Silent", "Crimson", "Hidden", "Last", "Distant", "Broken", "Golden", "Quiet", "Endless",
        "Forgotten", "Northern", "Paper", "Second", "Winter"]  # fmt: skip
_NOUN = ["River", "Garden", "Archive", "Lighthouse", "Orchard", "Machine", "Harbor", "Library",
         "Mountain", "Signal", "Atlas", "Kingdom", "Voyage", "Clockmaker"]  # fmt: skip


def seed_books(count: int) -> list[tuple[str, str, int, str]]:
    """``count`` deterministic books (title, author, year, updated_at): same seed, same catalog."""
    rng = random.Random(SEED)
    base = datetime(2024, 1, 1, tzinfo=UTC).timestamp()
    books = []
    for i in range(count):
        title = f"The {rng.choice(_ADJ)} {rng.choice(_NOUN)}"
        author = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
        books.append((title, author, rng.randint(1850, 2024), _iso(base + 3600 * i)))
    return books


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(int(timestamp), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Book:
    """One row; ``version`` grows by one on every write, so it is a strong validator."""

    id: int
    title: str
    author: str
    year: int
    version: int
    updated_at: str

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "author": self.author,
            "year": self.year,
            "version": self.version,
            "updated_at": self.updated_at,
        }


class Catalog:
    """The books table. Counts the SQL statements it runs (``queries``), so a test can see that a
    ``304`` answered from a stored validator never touched the database."""

    def __init__(
        self, db: str | None = None, *, books: int = DEFAULT_BOOKS, now: Callable[[], float] = time.time
    ) -> None:
        self._now = now
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            db or ":memory:", check_same_thread=False, isolation_level=None, timeout=30
        )
        self.queries = 0
        with self._lock:
            if db:
                self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.executescript(_SCHEMA)
        self.seeded = self._seed(books)
        self.epoch = self._read("SELECT value FROM meta WHERE key = 'epoch'")[0][0]

    def _seed(self, count: int) -> bool:
        """Seed a new database (once, even with several workers racing); True if this call did.

        The database also gets a random ``epoch``, part of every book ETag: ids are never reused
        within one database (AUTOINCREMENT), and the epoch keeps a new database's book 1001 v1
        from matching an ETag a client kept from an older one.
        """
        with self._transaction() as cur:
            if cur.execute("SELECT 1 FROM meta WHERE key = 'epoch'").fetchone() is not None:
                return False
            cur.executemany(
                "INSERT INTO books (title, author, year, version, updated_at) VALUES (?, ?, ?, 1, ?)",
                seed_books(count),
            )
            cur.execute("INSERT INTO meta (key, value) VALUES ('epoch', ?)", (uuid.uuid4().hex,))
            return True

    def etag(self, book_id: int, version: int) -> ETag:
        """A book's strong ETag from its version (its JSON is a function of the row, which changes
        with every version), without reading or serializing the row."""
        return etag_from_version(self.epoch, book_id, version)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")  # take the write lock now: no upgrade deadlock between workers
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            self.queries += 1
            return self._conn.execute(sql, params).fetchall()

    def _write(self, cur: sqlite3.Cursor, sql: str, params: tuple[Any, ...]) -> sqlite3.Cursor:
        self.queries += 1  # under the lock held by _transaction
        return cur.execute(sql, params)

    def all(self) -> list[Book]:
        return [Book(*row) for row in self._read(f"SELECT {_COLUMNS} FROM books ORDER BY id")]

    def get(self, book_id: int) -> Book | None:
        if not 0 < book_id <= _SQLITE_MAX_INT:
            return None
        rows = self._read(f"SELECT {_COLUMNS} FROM books WHERE id = ?", (book_id,))
        return Book(*rows[0]) if rows else None

    def version(self, book_id: int) -> int | None:
        """The cheap validator: one indexed lookup of one integer, no row to serialize."""
        if not 0 < book_id <= _SQLITE_MAX_INT:
            return None
        rows = self._read("SELECT version FROM books WHERE id = ?", (book_id,))
        return int(rows[0][0]) if rows else None

    def create(self, title: str, author: str, year: int) -> Book:
        with self._transaction() as cur:
            new_id = self._write(
                cur,
                "INSERT INTO books (title, author, year, version, updated_at) VALUES (?, ?, ?, 1, ?)",
                (title, author, year, _iso(self._now())),
            ).lastrowid
            row = self._write(cur, f"SELECT {_COLUMNS} FROM books WHERE id = ?", (new_id,)).fetchone()
        return Book(*row)

    def replace(self, book_id: int, expected_version: int, title: str, author: str, year: int) -> Book | None:
        """Compare-and-set on the version: None if the row is gone or moved on since it was checked."""
        with self._transaction() as cur:
            updated = self._write(
                cur,
                "UPDATE books SET title = ?, author = ?, year = ?, version = version + 1, updated_at = ?"
                " WHERE id = ? AND version = ?",
                (title, author, year, _iso(self._now()), book_id, expected_version),
            ).rowcount
            if updated != 1:
                return None
            row = self._write(cur, f"SELECT {_COLUMNS} FROM books WHERE id = ?", (book_id,)).fetchone()
        return Book(*row)

    def delete(self, book_id: int, expected_version: int) -> bool:
        with self._transaction() as cur:
            cur_rows = self._write(
                cur, "DELETE FROM books WHERE id = ? AND version = ?", (book_id, expected_version)
            )
            return cur_rows.rowcount == 1

    def top_authors(self, limit: int = 10) -> list[dict[str, Any]]:
        rows = self._read(
            "SELECT author, COUNT(*) AS n, MIN(year), MAX(year) FROM books"
            " GROUP BY author ORDER BY n DESC, author LIMIT ?",
            (limit,),
        )
        return [{"author": a, "books": n, "first_year": lo, "last_year": hi} for a, n, lo, hi in rows]


# ---------------------------------------------------------------------------------------------------
# Input: bodies come from strangers. Never a traceback; 400 for what is not JSON, 422 for JSON that is
# not a book.
# ---------------------------------------------------------------------------------------------------

_FIELDS = ("title", "author", "year")
_SERVER_FIELDS = ("id", "version", "updated_at")  # set by the server; a PUT may echo them back


class InvalidBook(ValueError):
    """A request body that cannot become a book; ``status`` is 400 (not JSON) or 422 (not a book)."""

    def __init__(self, status: int, message: str, fields: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.fields = dict(fields or {})


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_book(body: bytes, *, book_id: int | None = None) -> tuple[str, str, int]:
    """Decode and validate a book body into (title, author, year), or raise ``InvalidBook``.

    ``book_id`` is the id in a PUT's URL: the body may then be the book's GET representation (its
    ``id`` must be ``book_id``; ``version`` and ``updated_at`` are checked for type and ignored).
    Without it (a POST) the server's fields are refused like unknown ones.
    """
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidBook(400, f"malformed JSON body: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidBook(422, "a book is a JSON object with title, author and year")
    problems: dict[str, str] = {
        name: "unknown field" for name in data if name not in _FIELDS and name not in _SERVER_FIELDS
    }
    problems.update(_server_field_problems(data, book_id))
    for name in ("title", "author"):
        value = data.get(name)
        if name not in data:
            problems[name] = "required"
        elif not isinstance(value, str) or not value.strip():
            problems[name] = "must be a non-empty string"
        elif not _is_utf8(value):
            problems[name] = "must be valid Unicode (no lone surrogates)"
        elif len(value) > 500:
            problems[name] = "must be at most 500 characters"
    year = data.get("year")
    if "year" not in data:
        problems["year"] = "required"
    elif isinstance(year, bool) or not isinstance(year, int):
        problems["year"] = "must be an integer"
    elif not -3000 <= year <= 3000:
        problems["year"] = "must be between -3000 and 3000"
    if problems:
        raise InvalidBook(422, "invalid book", problems)
    return str(data["title"]).strip(), str(data["author"]).strip(), int(data["year"])


def _server_field_problems(data: Mapping[str, Any], book_id: int | None) -> dict[str, str]:
    """What is wrong with the server-managed fields a body carries (none of them is required)."""
    problems: dict[str, str] = {}
    present = [name for name in _SERVER_FIELDS if name in data]
    if book_id is None:
        return dict.fromkeys(present, "set by the server: not accepted when creating a book")
    if "id" in data:
        given = data["id"]
        if isinstance(given, bool) or not isinstance(given, int) or given != book_id:
            problems["id"] = f"must be this book's id, {book_id} (the id in the URL), or left out"
    version = data.get("version")
    if "version" in data and (isinstance(version, bool) or not isinstance(version, int)):
        problems["version"] = "must be an integer (read-only: its value is ignored)"
    if "updated_at" in data and not isinstance(data["updated_at"], str):
        problems["updated_at"] = "must be a string (read-only: its value is ignored)"
    return problems


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# ---------------------------------------------------------------------------------------------------
# The app: Flask + etagkit. Everything about ETags, preconditions, 304s and stored validators is the
# extension's; the views only read and write books and declare the tags their data carries.
# ---------------------------------------------------------------------------------------------------

# Browsers and proxies may reuse a response for a few seconds, then must revalidate (cheaply: 304).
CACHE_CONTROL = CacheControl(max_age=5, must_revalidate=True)
_BREAKER_GAUGE = {"closed": 0.0, "half_open": 1.0, "open": 2.0}


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


def _error(status: int, detail: str, **extra: Any) -> Response:
    """An RFC 9457 problem document: the same shape as etagkit's own 412 / 428 bodies."""
    body = {"status": status, "title": HTTPStatus(status).phrase, "detail": detail, **extra}
    return Response(json.dumps(body), status=status, mimetype="application/problem+json")


def create_app(
    db: str | None = None,
    redis_url: str | None = None,
    *,
    books: int | None = None,
    redis_prefix: str | None = None,
    redis_timeout: float | None = None,
    metrics_dir: str | None = None,
    early_304: bool | None = None,
    two_level: bool | None = None,
    now: Callable[[], float] = time.time,
) -> Flask:
    """The bookstore app; one code path for the in-process and the Redis store.

    Arguments left out are read from the environment (``BOOKSTORE_DB``, ``ETAGKIT_REDIS_URL``,
    ``BOOKSTORE_BOOKS``, ``BOOKSTORE_REDIS_PREFIX``, ``BOOKSTORE_REDIS_TIMEOUT``,
    ``BOOKSTORE_METRICS_DIR``, ``BOOKSTORE_EARLY_304``, ``BOOKSTORE_TWO_LEVEL``), so gunicorn can
    call ``create_app()`` bare.
    Defaults: in-memory SQLite with 1,000 books, in-process cache, 0.25 s Redis timeouts.
    ``metrics_dir`` makes /metrics and /stats sum the counters of every worker sharing it.
    ``early_304`` answers stored revalidations before Flask dispatches (``ETAGKIT_EARLY_304``): those
    304s then skip the ``after_request`` hook, so they carry no ``X-Worker-Pid``. ``two_level`` keeps
    a local layer over Redis in each process (``TwoLevelStore``: hits without a round trip).
    """
    db = db or _env("BOOKSTORE_DB")
    redis_url = redis_url or _env("ETAGKIT_REDIS_URL")
    books = books if books is not None else int(_env("BOOKSTORE_BOOKS") or DEFAULT_BOOKS)
    redis_prefix = redis_prefix or _env("BOOKSTORE_REDIS_PREFIX") or "bookstore:"
    if redis_timeout is None:
        redis_timeout = float(_env("BOOKSTORE_REDIS_TIMEOUT") or DEFAULT_REDIS_TIMEOUT)
    metrics_dir = metrics_dir or _env("BOOKSTORE_METRICS_DIR")
    if early_304 is None:
        early_304 = _env("BOOKSTORE_EARLY_304") in ("1", "true", "yes")
    if two_level is None:
        two_level = _env("BOOKSTORE_TWO_LEVEL") in ("1", "true", "yes")

    catalog = Catalog(db, books=books, now=now)
    metrics = Metrics(share_dir=metrics_dir)
    metrics.set_gauge("db_queries", lambda: catalog.queries)
    store: Store
    if redis_url:
        from etagkit.cache.redis import store_from_url

        # Short timeouts, so a hung Redis costs little before the breaker opens (after 3 failures),
        # yet not so short that a busy machine turns slow answers into store errors.
        redis_store = store_from_url(
            redis_url, prefix=redis_prefix, socket_timeout=redis_timeout, connect_timeout=redis_timeout
        )
        metrics.set_gauge("breaker_state", lambda: _BREAKER_GAUGE[redis_store.breaker.state])
        store = redis_store
        if two_level:
            from etagkit.cache.twolevel import TwoLevelStore

            store = TwoLevelStore(redis_store)
    else:
        store = MemoryStore()
    cache = TagCache(store, metrics=metrics)
    if catalog.seeded:
        # a new catalog: validators a shared store kept for an older one must go; with Redis down
        # now, the store owes this and pays it before it is trusted again
        with suppress(StoreUnavailableError):
            cache.clear()
    kit = ETagKit(cache=cache, metrics=metrics)

    app = Flask("bookstore")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.config["ETAGKIT_JSON_ERRORS"] = True  # 412 / 428 bodies are JSON, like every error here
    app.config["ETAGKIT_EARLY_304"] = early_304
    kit.init_app(app)

    def book_etag(book_id: int) -> ETag | None:
        """The current validator of one book, read before its view runs (one indexed lookup).
        The version read is kept so a write can insist on it (compare-and-set, no lost update)."""
        version = catalog.version(book_id)
        g.checked_version = version
        return None if version is None else catalog.etag(book_id, version)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        return _error(exc.code or 500, exc.description or exc.name)

    @app.errorhandler(InvalidBook)
    def invalid_book(exc: InvalidBook) -> Response:
        return _error(exc.status, exc.message, **({"fields": exc.fields} if exc.fields else {}))

    @app.after_request
    def worker_header(response: Response) -> Response:
        response.headers["X-Worker-Pid"] = str(os.getpid())  # which gunicorn worker answered
        return response

    # A revalidation of the list is answered from its stored ETag: no query, no JSON, no hashing.
    @app.get("/books")
    @kit.conditional(tags=["books"], cache_control=CACHE_CONTROL)
    def list_books() -> Response:
        return jsonify([book.as_json() for book in catalog.all()])

    # POST invalidates "books" (the decorator's tags) once the view succeeded.
    @app.post("/books")
    @kit.conditional(tags=["books"])
    def create_book() -> Response:
        book = catalog.create(*parse_book(request.get_data()))
        response = _book_response(book, 201)
        response.headers["Location"] = url_for("get_book", book_id=book.id)
        return response

    # The version validator answers a revalidation (304) before the view: one indexed lookup.
    @app.get("/books/<int:book_id>")
    @kit.conditional(etag=book_etag, tags=["book:{book_id}"], cache_control=CACHE_CONTROL)
    def get_book(book_id: int) -> Response:
        book = catalog.get(book_id)
        return _book_response(book) if book is not None else _error(404, f"no book {book_id}")

    # Writes need If-Match (428 without, 412 when stale); success invalidates both tags.
    @app.put("/books/<int:book_id>")
    @kit.conditional(etag=book_etag, tags=["books", "book:{book_id}"], require_precondition=True)
    def replace_book(book_id: int) -> Response:
        fields = parse_book(request.get_data(), book_id=book_id)
        if g.checked_version is None:
            return _error(404, f"no book {book_id}")
        book = catalog.replace(book_id, g.checked_version, *fields)
        if book is None:  # another writer won between the If-Match check and this transaction
            return _error(412, "the book changed while this request was checked; fetch it again")
        return _book_response(book)

    @app.delete("/books/<int:book_id>")
    @kit.conditional(etag=book_etag, tags=["books", "book:{book_id}"], require_precondition=True)
    def delete_book(book_id: int) -> Response:
        if g.checked_version is None:
            return _error(404, f"no book {book_id}")
        if not catalog.delete(book_id, g.checked_version):
            return _error(412, "the book changed while this request was checked; fetch it again")
        return Response(status=204)

    def _book_response(book: Book, status: int = 200) -> Response:
        response = jsonify(book.as_json())
        response.status_code = status
        response.headers["ETag"] = str(catalog.etag(book.id, book.version))
        return response

    # A computed result (not a row): cached under "books", so any write recomputes it once.
    @cache.cached(ttl=300, tags=["books"], key="bookstore:authors-top:{limit}")
    def top_authors(limit: int) -> list[dict[str, Any]]:
        return catalog.top_authors(limit)

    @app.get("/authors/top")
    @kit.conditional(tags=["books"], cache_control=CACHE_CONTROL)
    def authors_top() -> Response:
        return jsonify(top_authors(10))

    @app.get("/stats")
    def stats() -> Response:
        cache_stats = cache.stats()
        return jsonify(
            {
                "pid": os.getpid(),
                "db_queries": catalog.queries,
                "store": "redis" if redis_url else "memory",
                "breaker": cache_stats.get("breaker_state"),
                "cache": cache_stats,
                **metrics.snapshot(),
            }
        )

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(metrics.prometheus_text(), mimetype="text/plain; version=0.0.4")

    return app


# ---------------------------------------------------------------------------------------------------
# One command: waitress (a production WSGI server, threaded) on 127.0.0.1:8000, with an access log.
# ---------------------------------------------------------------------------------------------------


class AccessLog:
    """WSGI middleware: one line per request on ``log`` (the Common Log Format, the size from
    Content-Length), written when the response starts (waitress itself keeps no access log)."""

    def __init__(self, app: WSGIApplication, log: logging.Logger) -> None:
        self.app = app
        self.log = log

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        def logged(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            size = next((v for k, v in headers if k.lower() == "content-length"), "-")
            target = environ.get("REQUEST_URI") or quote(environ.get("PATH_INFO", ""), safe="/")
            line = f"{environ['REQUEST_METHOD']} {target} {environ.get('SERVER_PROTOCOL', '-')}"
            when = datetime.now(UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")
            # the request line is a stranger's: no control characters or quotes reach the log
            line = "".join(c if c.isprintable() and c != '"' else f"\\x{ord(c):02x}" for c in line)
            self.log.info(
                '%s - - [%s] "%s" %s %s', environ.get("REMOTE_ADDR", "-"), when, line, status[:3], size
            )
            return start_response(status, headers, exc_info)

        return self.app(environ, logged)


def _listening(server: Any) -> list[str]:
    """The URLs a waitress server listens on (one per address a host name resolved to)."""
    addresses = getattr(server, "effective_listen", None) or [(server.effective_host, server.effective_port)]
    return [f"http://{f'[{host}]' if ':' in host else host}:{port}" for host, port, *_ in addresses]


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--host", default="127.0.0.1", help="Interface to listen on.")
@click.option(
    "--port", default=8000, type=click.IntRange(0, 65535), help="Port to listen on (0: any free one)."
)
@click.option(
    "--db",
    envvar="BOOKSTORE_DB",
    show_envvar=True,
    help="SQLite file (shared by processes); default: in memory.",
)
@click.option(
    "--redis",
    "redis_url",
    envvar="ETAGKIT_REDIS_URL",
    show_envvar=True,
    help="Redis URL for the shared cache store.",
)
@click.option(
    "--redis-prefix",
    envvar="BOOKSTORE_REDIS_PREFIX",
    show_envvar=True,
    default="bookstore:",
    help="Redis key prefix.",
)
@click.option(
    "--redis-timeout",
    envvar="BOOKSTORE_REDIS_TIMEOUT",
    show_envvar=True,
    default=DEFAULT_REDIS_TIMEOUT,
    type=click.FloatRange(0, min_open=True),
    help="Redis socket and connect timeout, seconds.",
)
@click.option(
    "--books",
    default=DEFAULT_BOOKS,
    type=click.IntRange(0, 1_000_000),
    help="Books to seed an empty catalog with.",
)
@click.option("--threads", default=8, type=click.IntRange(1, 256), help="waitress worker threads.")
@click.option("--access-log/--no-access-log", default=True, help="One line per request on stderr.")
def main(
    *,
    host: str,
    port: int,
    db: str | None,
    redis_url: str | None,
    redis_prefix: str,
    redis_timeout: float,
    books: int,
    threads: int,
    access_log: bool,
) -> None:
    """Serve the bookstore with waitress. A busy port is one line and exit status 2; Ctrl-C stops it."""
    with suppress(KeyboardInterrupt):  # Ctrl-C before waitress's loop (which handles it)
        _serve(
            host=host,
            port=port,
            db=db,
            redis_url=redis_url,
            redis_prefix=redis_prefix,
            redis_timeout=redis_timeout,
            books=books,
            threads=threads,
            access_log=access_log,
        )
    click.echo("bookstore: stopped", err=True)


def _serve(
    *,
    host: str,
    port: int,
    db: str | None,
    redis_url: str | None,
    redis_prefix: str,
    redis_timeout: float,
    books: int,
    threads: int,
    access_log: bool,
) -> None:
    import waitress  # type: ignore[import-untyped]  # no stubs; only create_server() is used

    logging.basicConfig(format="bookstore: %(levelname)s %(name)s: %(message)s")  # warnings, e.g. Redis
    app: WSGIApplication = create_app(
        db, redis_url, books=books, redis_prefix=redis_prefix, redis_timeout=redis_timeout
    )
    if access_log:
        log = logging.getLogger("bookstore.access")
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
        app = AccessLog(app, log)
    try:
        server = waitress.create_server(app, host=host, port=port, threads=threads, ident="bookstore")
    except OSError as exc:  # the port is taken, the host is not this machine's, ...
        click.echo(f"bookstore: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        sys.exit(2)
    store = f"Redis at {urlsplit(redis_url).hostname}" if redis_url else "in-process memory"  # no password
    click.echo(f"bookstore: {books} books in {db or 'in-memory SQLite'}, cache store: {store}", err=True)
    for url in _listening(server):
        click.echo(f"bookstore: serving on {url} (Ctrl-C to stop)", err=True)
    server.run()


if __name__ == "__main__":
    main()

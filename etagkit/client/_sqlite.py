"""A persistent response store in one SQLite file (stdlib ``sqlite3``), so a CLI keeps its cache
across runs. Bounded by entries and bytes (least recently used first); a row that cannot be read
back (corrupt, or written by an incompatible version) is a miss, deleted and logged once."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

from ..core.freshness import Freshness
from ._model import Stored, StoreKey
from ._store import check_bounds

__all__ = ["SQLiteResponseStore"]

log = logging.getLogger("etagkit.client")
_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    used INTEGER NOT NULL,
    size INTEGER NOT NULL,
    meta TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_url ON responses (url);
CREATE INDEX IF NOT EXISTS responses_used ON responses (used);
"""


def _key_text(key: StoreKey) -> str:
    return json.dumps([key[0], key[1], [list(pair) for pair in key[2]]], separators=(",", ":"))


def _meta(stored: Stored) -> str:
    f = stored.freshness
    return json.dumps(
        {
            "v": _VERSION,
            "scope": stored.scope,
            "status": stored.status,
            "headers": [list(pair) for pair in stored.headers],
            "vary": list(stored.vary),
            "selection": [list(pair) for pair in stored.selection],
            "freshness": [
                f.lifetime,
                f.initial_age,
                f.response_time,
                f.no_cache,
                f.must_revalidate,
                f.stale_while_revalidate,
                f.stale_if_error,
            ],
        },
        separators=(",", ":"),
    )


def _decode(url: str, meta: str, body: Any) -> Stored:
    """A row back as a record; raises (ValueError, TypeError, KeyError) on anything malformed."""
    data = json.loads(meta)
    if data["v"] != _VERSION or not isinstance(body, bytes):
        raise ValueError("unknown row format")
    lifetime, initial_age, response_time, no_cache, must_revalidate, swr, sie = data["freshness"]
    freshness = Freshness(
        float(lifetime),
        float(initial_age),
        float(response_time),
        bool(no_cache),
        bool(must_revalidate),
        float(swr),
        float(sie),
    )
    headers = tuple((str(n), str(v)) for n, v in data["headers"])
    selection = tuple((str(n), None if v is None else str(v)) for n, v in data["selection"])
    vary = tuple(str(name) for name in data["vary"])
    status = data["status"]
    if not isinstance(status, int) or not 100 <= status <= 999:
        raise ValueError("bad status")
    return Stored.make((url, str(data["scope"]), selection), status, vary, headers, body, freshness)


class SQLiteResponseStore:
    """Responses in an SQLite file at ``path`` (created if missing), at most ``max_entries`` of them
    and ``max_bytes`` in total, least recently used evicted first. Several processes may share the
    file (SQLite locks it); one instance is thread-safe."""

    def __init__(
        self, path: str | Path, *, max_entries: int = 1024, max_bytes: int = 64 * 1024 * 1024
    ) -> None:
        check_bounds(max_entries, max_bytes)
        self.path = str(path)
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._logged = False
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT COALESCE(MAX(used), 0) FROM responses").fetchone()
            self._clock = int(row[0])

    def _tick(self) -> int:
        self._clock += 1
        return self._clock

    def variants(self, url: str) -> list[Stored]:
        found: list[Stored] = []
        with self._lock:
            rows = self._db.execute("SELECT key, meta, body FROM responses WHERE url = ?", (url,)).fetchall()
            for key, meta, body in rows:
                try:
                    found.append(_decode(url, meta, body))
                except (ValueError, TypeError, KeyError, IndexError) as exc:
                    self._db.execute("DELETE FROM responses WHERE key = ?", (key,))
                    if not self._logged:
                        self._logged = True
                        log.warning("etagkit: unreadable cache row in %s dropped (%s)", self.path, exc)
            if found:
                self._db.execute("UPDATE responses SET used = ? WHERE url = ?", (self._tick(), url))
        return found

    def put(self, stored: Stored) -> None:
        if stored.size > self.max_bytes:
            self.drop(stored.key)
            return
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses (key, url, used, size, meta, body)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (_key_text(stored.key), stored.url, self._tick(), stored.size, _meta(stored), stored.body),
            )
            self._evict()

    def _evict(self) -> None:
        count, total = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM responses").fetchone()
        while count > self.max_entries or total > self.max_bytes:
            row = self._db.execute("SELECT key, size FROM responses ORDER BY used LIMIT 1").fetchone()
            if row is None:
                return
            self._db.execute("DELETE FROM responses WHERE key = ?", (row[0],))
            count, total = count - 1, total - row[1]

    def drop(self, key: StoreKey) -> None:
        with self._lock:
            self._db.execute("DELETE FROM responses WHERE key = ?", (_key_text(key),))

    def drop_url(self, url: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM responses WHERE url = ?", (url,))

    def clear(self) -> None:
        with self._lock:
            self._db.execute("DELETE FROM responses")

    def usage(self) -> tuple[int, int]:
        with self._lock:
            count, total = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM responses"
            ).fetchone()
        return int(count), int(total)

    def close(self) -> None:
        with self._lock:
            self._db.close()

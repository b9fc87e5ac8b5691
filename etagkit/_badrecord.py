"""One warning for stored data that does not decode (issue 13.3), not one per request.

A record that fails :meth:`StoredValidator.from_value` / :meth:`CachedResponse.from_value` is a miss
(the core decodes purely and returns None); the reader reports it here. The first report logs one
WARNING at once; later ones within ``interval`` seconds are only counted, and the next report after
the interval logs one line with that count. A store full of garbage costs a line a minute, not a
line per request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["BadRecordLog", "report_bad_record"]

logger = logging.getLogger("etagkit.records")


class BadRecordLog:
    """A rate-limited warning about stored records that did not decode (thread-safe)."""

    def __init__(
        self,
        *,
        interval: float = 60.0,
        timer: Callable[[], float] = time.monotonic,
        log: logging.Logger = logger,
    ) -> None:
        self.interval = interval
        self.timer = timer
        self.log = log
        self._lock = threading.Lock()
        self._next_at: float | None = None
        self._quiet = 0  # reports since the last line

    def report(self, kind: str, key: str) -> bool:
        """Count one bad ``kind`` record (``"validator"``, ``"response"``) at ``key``; True when this
        report wrote the line."""
        now = self.timer()
        with self._lock:
            self._quiet += 1
            if self._next_at is not None and now < self._next_at:
                return False
            count, self._quiet, self._next_at = self._quiet, 0, now + self.interval
        self.log.warning(
            "etagkit: %d stored record(s) did not decode and were treated as misses (last: a %s record "
            "at key %s); the next store overwrites each one",
            count,
            kind,
            key[:120],
        )
        return True


_DEFAULT = BadRecordLog()


def report_bad_record(kind: str, key: str) -> bool:
    """Report a bad record to the process-wide :class:`BadRecordLog` (one line per minute at most)."""
    return _DEFAULT.report(kind, key)

"""Per-process counters that show whether revalidation pays off, as a dict and as Prometheus text.

The adapters count every response they answer (200 / 304 / 412 / 428 / other per route, bytes not
sent thanks to 304s, 304s answered from a stored validator without running the view) and the cache
counts its events (hits, misses, stale serves, refreshes, store errors, stateless fallbacks).
Everything is thread-safe and dependency-free; only :meth:`Metrics.prometheus_text` needs
``prometheus_client`` (the ``metrics`` extra), which renders text format 0.0.4.

Across processes (gunicorn workers): give every worker's ``Metrics`` the same ``share_dir``. Each
worker writes its counters to ``<share_dir>/<pid>.json`` (atomically, at most once per
``flush_interval`` seconds while it counts, at every read and at exit) and every read sums all the
files, so ``/metrics`` and ``/stats`` show the whole server whichever worker answers. Another
worker's counts may lag by up to ``flush_interval`` (or until its next response when it is idle).
Counts of exited workers stay in the sum, so counters never go backwards; start each deployment
with an empty directory, as with ``PROMETHEUS_MULTIPROC_DIR``. Gauges are always this process's.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import tempfile
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any

from ._errors import ConfigurationError

__all__ = ["Event", "Metrics", "StatusClass"]

# metric-name = [a-zA-Z_:][a-zA-Z0-9_:]*  (Prometheus data model); the prefix supplies the first char
_NAME = re.compile(r"[a-zA-Z0-9_:]+", re.ASCII)
_FILE_FORMAT = 1
# families rendered by prometheus_text(); a gauge may not take their names
_RESERVED = frozenset(
    {"responses", "bytes_saved", "stored_304", "events", "ratio_304_to_200", "cache_hit_ratio"}
    | {f"{n}_total" for n in ("responses", "bytes_saved", "stored_304", "events")}
)


class Event(StrEnum):
    """The cache and adapter events counted by :meth:`Metrics.event` (any valid name also works)."""

    CACHE_HIT = "cache_hit"
    CACHE_MISS = "cache_miss"
    STALE_SERVE = "stale_serve"
    REFRESH = "refresh"
    STORE_ERROR = "store_error"
    STATELESS_FALLBACK = "stateless_fallback"


class StatusClass(StrEnum):
    """How responses are bucketed: the statuses revalidation is about, and everything else."""

    OK = "200"
    NOT_MODIFIED = "304"
    PRECONDITION_FAILED = "412"
    PRECONDITION_REQUIRED = "428"
    OTHER = "other"


_STATUS_CLASSES = {int(s.value): s for s in StatusClass if s is not StatusClass.OTHER}

# A counter key: (kind, route, label). Kinds: "responses" (label = status class), "bytes_saved",
# "stored_304" (label ""), "events" (label = event name). Route "" means "not tied to a route".
_Key = tuple[str, str, str]
_Gauge = float | Callable[[], float]


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


class Metrics:
    """Thread-safe counters for one process; optionally shared across processes via ``share_dir``.

    ``timer`` (seconds, monotonic) only paces the writes to ``share_dir``; tests inject a fake one.
    """

    def __init__(
        self,
        *,
        share_dir: str | os.PathLike[str] | None = None,
        flush_interval: float = 1.0,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        if flush_interval < 0:
            raise ConfigurationError(f"flush_interval must be >= 0, not {flush_interval!r}")
        self._lock = threading.Lock()
        self._counts: Counter[_Key] = Counter()
        self._gauges: dict[str, _Gauge] = {}
        self._share_dir = Path(share_dir) if share_dir is not None else None
        self._flush_interval = flush_interval
        self._timer = timer
        self._next_flush = timer()
        if self._share_dir is not None:
            self._share_dir.mkdir(parents=True, exist_ok=True)
            atexit.register(_flush_at_exit, weakref.ref(self))
        self._register_fork_hook()

    # -- counting ---------------------------------------------------------------------------------

    def response(self, route: str, status: int, *, bytes_saved: int = 0, stored: bool = False) -> None:
        """Count one response on ``route``: the route's template (``/books/<id>``), not the raw path,
        so that the number of series stays bounded.

        ``bytes_saved`` is the body length a 304 did not send; ``stored`` says the 304 came from a
        stored validator without running the view.
        """
        status_class = _STATUS_CLASSES.get(status, StatusClass.OTHER)
        with self._lock:
            self._counts["responses", route, status_class.value] += 1
            if bytes_saved > 0:
                self._counts["bytes_saved", route, ""] += bytes_saved
            if stored:
                self._counts["stored_304", route, ""] += 1
        self._maybe_flush()

    def event(self, name: str, route: str | None = None) -> None:
        """Count one event (see :class:`Event`), optionally for a route."""
        if not _NAME.fullmatch(name):
            raise ConfigurationError(f"event name must match [a-zA-Z0-9_:]+, not {name!r}")
        with self._lock:
            self._counts["events", route or "", str(name)] += 1
        self._maybe_flush()

    def set_gauge(self, name: str, value: _Gauge) -> None:
        """Set gauge ``etagkit_<name>`` to a number, or to a callable read at every snapshot/scrape
        (e.g. breaker state: 0 closed, 1 half-open, 2 open)."""
        if not _NAME.fullmatch(name) or name in _RESERVED:
            raise ConfigurationError(f"gauge name must match [a-zA-Z0-9_:]+ and be free, not {name!r}")
        with self._lock:
            self._gauges[name] = value

    def reset(self) -> None:
        """Forget this process's counts and gauges (other workers' shared files are untouched)."""
        with self._lock:
            self._counts.clear()
            self._gauges.clear()
        if self._share_dir is not None:
            self._flush()

    # -- reading ----------------------------------------------------------------------------------

    def counts(self) -> dict[_Key, int]:
        """The raw counters ``{(kind, route, label): n}``, summed over ``share_dir`` when set."""
        with self._lock:
            own = Counter(self._counts)
        if self._share_dir is None:
            return dict(own)
        self._flush()
        total: Counter[_Key] = Counter()
        for path in self._share_dir.glob("*.json"):
            if path.name == _own_file_name():
                continue
            total.update(_read_counts(path))
        total.update(own)
        return dict(total)

    def gauges(self) -> dict[str, float]:
        """This process's gauges, callables evaluated now (one that raises is left out)."""
        with self._lock:
            gauges = dict(self._gauges)
        values: dict[str, float] = {}
        for name, gauge in gauges.items():
            try:
                values[name] = float(gauge() if callable(gauge) else gauge)
            except Exception:
                continue  # a broken probe must not break the scrape
        return values

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready summary: ``totals``, ``routes`` (same shape per route) and ``gauges``.

        Each summary holds ``responses`` per status class, ``ratio_304_to_200`` (None before any
        200), ``bytes_saved``, ``stored_304``, ``events`` and ``cache_hit_ratio``
        (hits / (hits + misses), None before any).
        """
        counts = self.counts()
        routes = sorted({route for _, route, _ in counts if route})
        return {
            "totals": _summary(counts, None),
            "routes": {route: _summary(counts, route) for route in routes},
            "gauges": self.gauges(),
        }

    def prometheus_text(self) -> str:
        """The metrics in Prometheus text format 0.0.4, names prefixed ``etagkit_``.

        Rendered by ``prometheus_client`` (``pip install "etagkit[metrics]"``).
        """
        try:
            from prometheus_client import CollectorRegistry, generate_latest
        except ImportError as exc:
            raise ImportError(
                'Prometheus text needs prometheus_client: pip install "etagkit[metrics]"'
            ) from exc
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(self.counts(), self.gauges()))
        return str(generate_latest(registry).decode("utf-8"))

    # -- sharing across processes -----------------------------------------------------------------

    def _maybe_flush(self) -> None:
        if self._share_dir is not None and self._timer() >= self._next_flush:
            self._flush()

    def _flush(self) -> None:
        """Write this process's counters to its file atomically (write a temp file, then rename)."""
        if self._share_dir is None:
            return
        with self._lock:
            rows = [[*key, n] for key, n in self._counts.items()]
            self._next_flush = self._timer() + self._flush_interval
        target = self._share_dir / _own_file_name()
        fd, tmp = tempfile.mkstemp(dir=self._share_dir, prefix=".tmp-", suffix=".part")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"format": _FILE_FORMAT, "counts": rows}, fh)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _register_fork_hook(self) -> None:
        """A forked child (gunicorn --preload) starts from zero with a fresh lock."""
        ref = weakref.ref(self)

        def after_fork() -> None:
            metrics = ref()
            if metrics is not None:
                metrics._lock = threading.Lock()
                metrics._counts = Counter()
                metrics._next_flush = metrics._timer()

        os.register_at_fork(after_in_child=after_fork)


def _flush_at_exit(ref: weakref.ref[Metrics]) -> None:
    metrics = ref()
    if metrics is not None:
        metrics._flush()


def _own_file_name() -> str:
    return f"{os.getpid()}.json"


def _read_counts(path: Path) -> Counter[_Key]:
    """Another worker's counters; an unreadable or foreign file counts as empty (never raises)."""
    result: Counter[_Key] = Counter()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("format") != _FILE_FORMAT:
            return result
        for kind, route, label, n in data["counts"]:
            if isinstance(n, int) and all(isinstance(s, str) for s in (kind, route, label)):
                result[kind, route, label] += n
    except (OSError, ValueError, TypeError, KeyError):
        return Counter()
    return result


def _summary(counts: dict[_Key, int], route: str | None) -> dict[str, Any]:
    """Totals (route None) or one route's figures from raw counters."""

    def total(kind: str, label: str | None = None) -> int:
        return sum(
            n
            for (k, r, lab), n in counts.items()
            if k == kind and (route is None or r == route) and (label is None or lab == label)
        )

    responses = {s.value: total("responses", s.value) for s in StatusClass}
    events = {
        lab: total("events", lab)
        for lab in sorted({lab for k, r, lab in counts if k == "events" and (route is None or r == route)})
    }
    hits, misses = events.get(Event.CACHE_HIT, 0), events.get(Event.CACHE_MISS, 0)
    return {
        "responses": responses,
        "ratio_304_to_200": _ratio(responses["304"], responses["200"]),
        "bytes_saved": total("bytes_saved"),
        "stored_304": total("stored_304"),
        "events": events,
        "cache_hit_ratio": _ratio(hits, hits + misses),
    }


class _Collector:
    """Feeds one snapshot of counters to prometheus_client at render time."""

    def __init__(self, counts: dict[_Key, int], gauges: dict[str, float]) -> None:
        self._counts = counts
        self._gauges = gauges

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        responses = CounterMetricFamily(
            "etagkit_responses", "Responses answered, by route and status class.", labels=["route", "status"]
        )
        saved = CounterMetricFamily(
            "etagkit_bytes_saved", "Body bytes not sent thanks to 304 responses.", labels=["route"]
        )
        stored = CounterMetricFamily(
            "etagkit_stored_304",
            "304 responses answered from a stored validator without running the view.",
            labels=["route"],
        )
        events = CounterMetricFamily(
            "etagkit_events", "Cache and adapter events, by route and event name.", labels=["route", "event"]
        )
        for (kind, route, label), n in sorted(self._counts.items()):
            if kind == "responses":
                responses.add_metric([route, label], n)
            elif kind == "bytes_saved":
                saved.add_metric([route], n)
            elif kind == "stored_304":
                stored.add_metric([route], n)
            elif kind == "events":
                events.add_metric([route, label], n)
        yield from (responses, saved, stored, events)

        ratio = GaugeMetricFamily(
            "etagkit_ratio_304_to_200",
            "304 responses per 200 response (absent before any 200).",
            labels=["route"],
        )
        hit_ratio = GaugeMetricFamily(
            "etagkit_cache_hit_ratio", "Cache hits / (hits + misses) (absent before any).", labels=["route"]
        )
        routes = sorted({route for _, route, _ in self._counts if route})
        for scope in (None, *routes):  # route="" is the whole process (or server, when shared)
            summary = _summary(self._counts, scope)
            if summary["ratio_304_to_200"] is not None:
                ratio.add_metric([scope or ""], summary["ratio_304_to_200"])
            if summary["cache_hit_ratio"] is not None:
                hit_ratio.add_metric([scope or ""], summary["cache_hit_ratio"])
        yield ratio
        yield hit_ratio
        for name, value in sorted(self._gauges.items()):
            yield GaugeMetricFamily(f"etagkit_{name}", f"Gauge {name!r}.", value=value)

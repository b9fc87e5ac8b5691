"""A revalidating HTTP client: a private RFC 9111 cache as httpx transports, async and sync.

``ETagClient`` (an ``httpx.AsyncClient``) and ``ETagSyncClient`` (an ``httpx.Client``) wrap every
transport httpx would use, proxies included, in one cache; ``ETagTransport`` /
``ETagSyncTransport`` put the same cache under any existing client. Both faces share one
implementation of the rules (:mod:`etagkit.client._cache` over the pure
:mod:`etagkit.core.freshness`); the faces only do I/O and single-flight waiting. Responses live in
a :class:`MemoryResponseStore` (default) or a :class:`SQLiteResponseStore` (kept across runs).

Every response says where it came from in ``response.extensions["etagkit"]`` (a :class:`Source`).
Per-request options are httpx request extensions: ``{NO_STORE: True}`` (do not store the
response), ``{REVALIDATE: True}`` (validate with the origin first, like ``Cache-Control: no-cache``
but without sending that header).
"""

from __future__ import annotations

try:
    import httpx  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "etagkit.client needs httpx, which comes with the 'client' extra: pip install 'etagkit[client]'"
    ) from exc

from ._async import ETagClient, ETagTransport
from ._model import EXTENSION, NO_STORE, REFRESH, REVALIDATE, ClientStats, Source
from ._sqlite import SQLiteResponseStore
from ._store import MemoryResponseStore, ResponseStore
from ._sync import ETagSyncClient, ETagSyncTransport

__all__ = [
    "EXTENSION",
    "NO_STORE",
    "REFRESH",
    "REVALIDATE",
    "ClientStats",
    "ETagClient",
    "ETagSyncClient",
    "ETagSyncTransport",
    "ETagTransport",
    "MemoryResponseStore",
    "ResponseStore",
    "SQLiteResponseStore",
    "Source",
]

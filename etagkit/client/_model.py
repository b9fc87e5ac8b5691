"""The client's values: where a response came from, its counters, a stored record, an answer.

Shared by the sync and async faces; nothing here does I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import httpx

from ..core.freshness import Freshness, Validators, age_value

__all__ = [
    "EXTENSION",
    "NO_STORE",
    "PASS",
    "REFRESH",
    "REVALIDATE",
    "Answer",
    "ClientStats",
    "Pairs",
    "Selection",
    "Source",
    "StoreKey",
    "Stored",
    "response_of",
    "wire_headers",
]

EXTENSION = "etagkit"  # response.extensions key holding the Source
REFRESH = "etagkit.refresh"  # request extension: "new" (own request) or "cancel" (also cancel older)
NO_STORE = "etagkit.no_store"  # request extension: True = do not store this request's response
REVALIDATE = "etagkit.revalidate"  # request extension: True = validate with the origin, like no-cache

Pairs = tuple[tuple[str, str], ...]
Selection = tuple[tuple[str, str | None], ...]  # the request headers named by Vary, normalized
StoreKey = tuple[str, str, Selection]  # url, auth scope, Vary selection
_ENTRY_OVERHEAD = 256  # bytes charged per entry on top of its body and headers


def wire_headers(pairs: Pairs | list[tuple[str, str]]) -> httpx.Headers:
    """Header fields in httpx's form. Values received as bytes outside ASCII (httpx decodes them as
    UTF-8 or Latin-1) are encoded as UTF-8, so that storing or replaying them never raises; the text
    the caller reads back is the text received."""
    try:
        return httpx.Headers(pairs)
    except UnicodeEncodeError:
        return httpx.Headers(pairs, encoding="utf-8")


class Source(enum.Enum):
    """Where a response came from."""

    NETWORK = "network"  # a full response from the origin
    REVALIDATED = "revalidated"  # the stored body, confirmed by a 304 from the origin
    CACHE = "cache"  # fresh from the cache; nothing was sent
    STALE = "stale"  # stale from the cache (max-stale, stale-while-revalidate or stale-if-error)


@dataclass(frozen=True, slots=True)
class ClientStats:
    """Counters since the cache was made (``ratio_304_to_200`` is 304s per network 200)."""

    requests_sent: int
    responses_200: int
    responses_304: int
    fresh_hits: int
    stale_hits: int
    bytes_not_downloaded: int
    entries: int
    stored_bytes: int
    ratio_304_to_200: float


@dataclass(eq=False, slots=True)
class Stored:
    """One stored response: its validators and its body are one record, stored and evicted together.

    ``wire`` is ``headers`` without ``Age``, already in httpx's form, so that a hit only copies it;
    ``aged`` keeps the last ``Age`` value and the headers with it (hits within one second reuse it).
    Treated as immutable once made (not frozen: a frozen dataclass is slower to build).
    """

    url: str
    scope: str
    status: int
    headers: Pairs
    body: bytes
    vary: tuple[str, ...]
    selection: Selection
    freshness: Freshness
    validators: Validators = field(compare=False)
    size: int = field(compare=False)
    wire: httpx.Headers = field(compare=False, repr=False)
    aged: tuple[str, httpx.Headers] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def make(  # noqa: PLR0917 - the record's parts, in their field order
        cls,
        key: StoreKey,
        status: int,
        vary: tuple[str, ...],
        headers: Pairs,
        body: bytes,
        freshness: Freshness,
        validators: Validators | None = None,
        wire: httpx.Headers | None = None,
    ) -> Stored:
        """A record for ``key`` from its stored headers, body, freshness and validators (read from
        ``headers`` unless given); ``wire`` is ``headers`` without Age in httpx's form, if known."""
        url, scope, selection = key
        size = len(body) + sum(len(n) + len(v) for n, v in headers) + _ENTRY_OVERHEAD
        if wire is None:
            wire = wire_headers([(n, v) for n, v in headers if n.lower() != "age"])
        if validators is None:
            validators = Validators.of(headers)
        return cls(url, scope, status, headers, body, vary, selection, freshness, validators, size, wire)

    @property
    def key(self) -> StoreKey:
        return self.url, self.scope, self.selection

    def answer(self, source: Source, now: float, *, head: bool = False) -> Answer:
        """This record as a response from the cache, with its current ``Age`` (RFC 9111 §5.1);
        ``head``: without its body (a HEAD answered from a stored GET, RFC 9110 §9.3.2)."""
        age = age_value(self.freshness.current_age(now))
        aged = self.aged
        if aged is None or aged[0] != age:
            headers = self.wire.copy()
            headers["Age"] = age
            self.aged = aged = (age, headers)
        return Answer(self.status, aged[1], b"" if head else self.body, source)


@dataclass(slots=True)
class Answer:
    """What one network exchange (or the cache) produced; shared by every waiter of a flight."""

    status: int
    headers: httpx.Headers  # never mutated: each waiter's response copies it
    body: bytes
    source: Source


class _Pass:
    """A flight's result that says: no shared answer (the body streamed past); send your own request."""

    __slots__ = ()


PASS = _Pass()


def response_of(answer: Answer, request: httpx.Request | None = None) -> httpx.Response:
    """A fresh httpx response for an answer (its body is read lazily, for both faces)."""
    return httpx.Response(
        answer.status,
        headers=answer.headers,
        stream=httpx.ByteStream(answer.body),
        extensions={EXTENSION: answer.source},
        request=request,
    )

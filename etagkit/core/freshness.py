"""The client's caching decisions (RFC 9111, private cache) as pure functions over plain values.

Nothing here does I/O or reads the clock: every time is a parameter, in POSIX seconds of the
client's ``now`` clock (wall clock by default, since ``Date`` and ``Expires`` are wall-clock dates).
Headers are sequences of ``(name, value)`` pairs; names compare case-insensitively. Input comes from
strangers (servers), so no function here raises on any header text: invalid values are treated as the
RFC says (usually ignored; an invalid ``Expires`` means "already expired", §5.3).
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urljoin, urlsplit

from .dates import parse_http_date
from .etag import ETag, etag_or_none, parse_etags
from .headers import Fields, fields_of, get_header
from .policy import delta_seconds, vary_names
from .policy import parse_cache_control as _parse_cache_control

__all__ = [
    "SAFE_METHODS",
    "Freshness",
    "Headers",
    "RequestDirectives",
    "Use",
    "Validators",
    "age_value",
    "answers_condition",
    "conditional_headers",
    "decide",
    "describe",
    "first_age",
    "freshen_headers",
    "freshens",
    "freshness_of",
    "headers_to_store",
    "invalidates_target",
    "invalidation_targets",
    "is_storable",
    "usable_on_error",
    "vary_selection",
]

Headers = Sequence[tuple[str, str]]

# Status codes that are "heuristically cacheable" (RFC 9110 §15.1), minus 206: this client never
# stores partial content.
HEURISTIC_STATUSES = frozenset({200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501})
HEURISTIC_CAP = 86_400.0  # a heuristic lifetime never exceeds one day (RFC 9111 §4.2.2 "typical")
STALE_IF_ERROR_STATUSES = frozenset({500, 502, 503, 504})  # RFC 5861 §4 "an error"
# Safe methods (RFC 9110 §9.2.1): every other method, unknown ones included, is unsafe (RFC 9111 §4.4).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

# Header fields a cache does not store (RFC 9111 §3.1: connection-specific and proxy fields) plus
# Set-Cookie, which is meant for one response and must never be replayed from a cache.
_NOT_STORED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "transfer-encoding",
        "upgrade",
        "proxy-authenticate",
        "proxy-authentication-info",
        "proxy-authorization",
        "set-cookie",
        "set-cookie2",
    }
)
# A 304 does not update these (RFC 9111 §3.2): they describe the stored body, not the new response.
_NOT_FRESHENED = _NOT_STORED | {"content-length", "content-encoding", "content-range", "content-type"}


# Memoized: a client sees the same few Cache-Control values and Date values again and again. The
# parsed dicts are shared, so nothing here may mutate them.
parse_cache_control = functools.lru_cache(maxsize=1024)(_parse_cache_control)


@functools.lru_cache(maxsize=1024)
def _seconds_of_date(value: str | None) -> float | None:
    parsed = parse_http_date(value)
    return None if parsed is None else parsed.timestamp()


@dataclass(frozen=True, slots=True)
class RequestDirectives:
    """What the request's own Cache-Control asks of the cache (RFC 9111 §5.2.1)."""

    no_cache: bool = False
    no_store: bool = False
    max_age: int | None = None
    min_fresh: int = 0
    stale_if_error: int | None = None
    only_if_cached: bool = False
    max_stale: float | None = None  # seconds of staleness accepted; inf for a bare max-stale (§5.2.1.2)

    @classmethod
    def parse(cls, request_headers: Headers) -> RequestDirectives:
        """Read Cache-Control (or, without it, ``Pragma: no-cache``, RFC 9111 §5.4)."""
        cache_control: list[str] = []
        pragma: list[str] = []
        for name, value in request_headers:  # one pass: this runs on every request, hits included
            lname = name.lower()
            if lname == "cache-control":
                cache_control.append(value)
            elif lname == "pragma":
                pragma.append(value)
        if not cache_control:
            return _NO_DIRECTIVES if not pragma else cls(no_cache="no-cache" in ",".join(pragma).lower())
        d = parse_cache_control(", ".join(cache_control))
        return cls(
            no_cache="no-cache" in d,
            no_store="no-store" in d,
            max_age=delta_seconds(d.get("max-age")),
            min_fresh=delta_seconds(d.get("min-fresh")) or 0,
            stale_if_error=delta_seconds(d.get("stale-if-error")),
            only_if_cached="only-if-cached" in d,
            max_stale=_max_stale(d),
        )


_NO_DIRECTIVES = RequestDirectives()


def _max_stale(directives: dict[str, str | None]) -> float | None:
    """``max-stale`` (RFC 9111 §5.2.1.2): no value accepts any staleness; an invalid value is ignored."""
    if "max-stale" not in directives:
        return None
    value = directives["max-stale"]
    if value is None:
        return float("inf")
    seconds = delta_seconds(value)
    return None if seconds is None else float(seconds)


def first_age(value: str | None) -> int | None:
    """The ``Age`` of a response (RFC 9111 §5.1): a list (``7200, 0``, or two Age lines joined) counts
    by its first member; an invalid first member makes the field invalid (ignored)."""
    if value is None:
        return None
    return delta_seconds(value.split(",", 1)[0].strip(" \t"))


@dataclass(frozen=True, slots=True)
class Freshness:
    """A stored response's freshness, pre-computed once when it is stored or freshened.

    ``current_age(now)`` is RFC 9111 §4.2.3's ``corrected_initial_age + resident_time``.
    """

    lifetime: float  # freshness_lifetime (§4.2.1); 0 when the response gives none
    initial_age: float  # corrected_initial_age (§4.2.3)
    response_time: float
    no_cache: bool  # must be validated before every use (§5.2.2.4)
    must_revalidate: bool  # never served stale (§5.2.2.2)
    stale_while_revalidate: float = 0.0  # RFC 5861 §3
    stale_if_error: float = 0.0  # RFC 5861 §4

    def current_age(self, now: float) -> float:
        """The response's age at ``now``: its initial age plus the time it has been stored."""
        return self.initial_age + max(0.0, now - self.response_time)


def describe(
    status: int,
    headers: Headers,
    request_time: float,
    response_time: float,
    *,
    heuristic: float | None = None,
) -> tuple[Freshness, Validators]:
    """What a cache keeps about a response received at ``response_time``, in one reading of its
    header list: its freshness lifetime (§4.2.1) and age (§4.2.3), and its validators.

    A private cache uses ``max-age`` (never ``s-maxage``), else ``Expires - Date``; an invalid
    ``Expires`` means already expired (§5.3). Without either, the lifetime is 0 unless
    ``heuristic`` (a fraction such as 0.1) asks for RFC 9111 §4.2.2's fraction of the time since
    ``Last-Modified``. A missing or invalid ``Date`` is taken as ``response_time`` (§6.6.1 of RFC 9110).
    """
    fields = fields_of(headers)
    return _freshness(status, fields, request_time, response_time, heuristic), Validators.of_fields(fields)


def freshness_of(
    status: int,
    headers: Headers,
    request_time: float,
    response_time: float,
    *,
    heuristic: float | None = None,
) -> Freshness:
    """:func:`describe` without the validators (for a 304 that brings none: the stored ones stay)."""
    return _freshness(status, fields_of(headers), request_time, response_time, heuristic)


def _freshness(
    status: int, fields: Fields, request_time: float, response_time: float, heuristic: float | None
) -> Freshness:
    cc = parse_cache_control(fields.get("cache-control"))
    date = _seconds_of_date(fields.get("date"))
    date_value = response_time if date is None else date
    lifetime = 0.0
    max_age = delta_seconds(cc.get("max-age"))
    expires_field = fields.get("expires")
    if max_age is not None:
        lifetime = float(max_age)
    elif expires_field is not None:
        expires = _seconds_of_date(expires_field)
        lifetime = 0.0 if expires is None else max(0.0, expires - date_value)
    elif heuristic is not None and status in HEURISTIC_STATUSES:
        last_modified = _seconds_of_date(fields.get("last-modified"))
        if last_modified is not None:
            lifetime = min(HEURISTIC_CAP, max(0.0, heuristic * (date_value - last_modified)))
    age_value = first_age(fields.get("age"))
    apparent_age = max(0.0, response_time - date_value)
    response_delay = max(0.0, response_time - request_time)
    corrected_age_value = (age_value or 0) + response_delay
    return Freshness(
        lifetime=lifetime,
        initial_age=max(apparent_age, corrected_age_value),
        response_time=response_time,
        no_cache="no-cache" in cc,
        must_revalidate="must-revalidate" in cc,
        stale_while_revalidate=float(delta_seconds(cc.get("stale-while-revalidate")) or 0),
        stale_if_error=float(delta_seconds(cc.get("stale-if-error")) or 0),
    )


def is_storable(method: str, status: int, response_headers: Headers, request: RequestDirectives) -> bool:
    """Whether a private cache may store this response (RFC 9111 §3).

    GET only, a final status other than 206/304, no ``no-store`` on either side, ``Vary`` not ``*``,
    and either explicit freshness (max-age, Expires, private, public) or a heuristically cacheable
    status (§4.2.2). ``private`` is fine: this is a private cache. A 5xx (but 501) is stored only with an
    explicit lifetime (``max-age`` or ``Expires``): §3 allows any final status then, and an origin that
    says "this 503 holds for 30 s" asks clients to stop retrying for 30 s; ``private`` / ``public``
    alone (lifetime 0) would only replace a stored success that ``stale-if-error`` could still serve.
    """
    if method != "GET" or request.no_store or status < 200 or status in (206, 304):
        return False
    fields = fields_of(response_headers)
    cc = parse_cache_control(fields.get("cache-control"))
    if "no-store" in cc or vary_names(fields.get("vary")) is None:
        return False
    lifetime = "max-age" in cc or "expires" in fields
    if status >= 500 and status not in HEURISTIC_STATUSES:  # 501 is heuristically cacheable
        return lifetime
    return lifetime or "public" in cc or "private" in cc or status in HEURISTIC_STATUSES


class Use(enum.Enum):
    """How a stored response may answer a request (RFC 9111 §4)."""

    FRESH = "fresh"  # serve it; send nothing
    STALE = "stale"  # stale, but within the request's max-stale: serve it; send nothing
    STALE_WHILE_REVALIDATE = "stale-while-revalidate"  # serve it; revalidate in the background
    REVALIDATE = "revalidate"  # send a conditional request first


def decide(freshness: Freshness, request: RequestDirectives, now: float) -> Use:
    """Fresh (§4.2), stale within the request's ``max-stale`` (§5.2.1.2), servable stale while
    revalidating (RFC 5861 §3), or needing validation (§4.3).

    ``no-cache`` on either side always validates; the request's ``max-age`` and ``min-fresh`` narrow
    what counts as fresh; ``must-revalidate`` and ``no-cache`` forbid serving stale (§4.2.4), even
    to a request that accepts it with ``max-stale``.
    """
    if request.no_cache or freshness.no_cache:
        return Use.REVALIDATE
    age = freshness.current_age(now)
    if request.max_age is not None and age > request.max_age:
        return Use.REVALIDATE
    if freshness.lifetime - age > request.min_fresh:
        return Use.FRESH
    if (
        request.max_stale is not None
        and not freshness.must_revalidate
        and age - freshness.lifetime <= request.max_stale
    ):
        return Use.STALE
    if (
        not freshness.must_revalidate
        and request.max_age is None
        and not request.min_fresh  # a request that asks for freshness is not served stale
        and freshness.lifetime <= age < freshness.lifetime + freshness.stale_while_revalidate
    ):
        return Use.STALE_WHILE_REVALIDATE
    return Use.REVALIDATE


def usable_on_error(freshness: Freshness, request: RequestDirectives, now: float) -> bool:
    """Whether a stale response may stand in for an error (RFC 5861 §4 stale-if-error).

    The window is the response's ``stale-if-error`` or the request's, whichever is longer;
    ``no-cache`` and ``must-revalidate`` forbid it (RFC 9111 §4.2.4).
    """
    if freshness.no_cache or freshness.must_revalidate:
        return False
    window = max(freshness.stale_if_error, float(request.stale_if_error or 0))
    return freshness.current_age(now) < freshness.lifetime + window


def _normalize(value: str | None) -> str | None:
    # RFC 9111 §4.1 allows normalizing: combine field lines, drop whitespace around list commas.
    if value is None:
        return None
    return ",".join(part.strip(" \t") for part in value.split(","))


def vary_selection(names: Iterable[str], request_headers: Headers) -> tuple[tuple[str, str | None], ...]:
    """The normalized values of the named request headers: a stored variant matches a request when
    the selection made from the original request equals the one made from the new request (§4.1)."""
    return tuple((name, _normalize(get_header(request_headers, name))) for name in names)


@dataclass(frozen=True, slots=True)
class Validators:
    """A response's validators (RFC 9110 §8.8): its ETag and its Last-Modified (the exact field
    text, and the date it means), each None when absent or invalid. Read once per response."""

    etag: ETag | None = None
    last_modified: str | None = None
    modified: datetime | None = None

    @classmethod
    def of(cls, headers: Headers) -> Validators:
        """The validators of a response's header list."""
        return cls.of_fields(fields_of(headers))

    @classmethod
    def of_fields(cls, fields: Fields) -> Validators:
        """The validators of a response's :func:`~etagkit.core.headers.fields_of` index."""
        return cls.of_values(fields.get("etag"), fields.get("last-modified"))

    @classmethod
    def of_values(cls, etag: str | None, last_modified: str | None) -> Validators:
        """The validators from a response's ``ETag`` and ``Last-Modified`` field values."""
        text = last_modified
        modified = parse_http_date(text)
        if modified is None:
            text = None
        return cls(etag_or_none(etag), None if text is None else text.strip(" \t"), modified)

    @property
    def present(self) -> bool:
        """Whether the response has any valid validator (an ETag or a Last-Modified date)."""
        return self.etag is not None or self.modified is not None


def conditional_headers(stored: Validators) -> tuple[tuple[str, str], ...]:
    """The validators to send for a stored response (RFC 9111 §4.3.1): If-None-Match from its
    ``ETag``, If-Modified-Since from its ``Last-Modified``. Empty when it has no valid validator."""
    result: list[tuple[str, str]] = []
    if stored.etag is not None:
        result.append(("If-None-Match", str(stored.etag)))
    if stored.last_modified is not None:
        result.append(("If-Modified-Since", stored.last_modified))
    return tuple(result)


def freshens(sent_from: Validators, response: Validators) -> bool:
    """Whether a 304 freshens the stored response whose validators the condition was sent from.

    RFC 9111 §4.3.4 selects stored responses by the 304's validators: a strong ETag selects those with
    the same strong ETag, a weak one (or a Last-Modified) the most recent match, and a 304 without
    validators the single stored response. This client sends each condition from exactly one stored
    response and only that response's validators, so the origin's 304 can only be about that one:
    it is freshened when the 304's ETag matches it (strongly if both are strong, else weakly), or,
    with no ETag, when its Last-Modified equals the stored one, or when the 304 carries no validator
    at all (as hishel, undici and browsers do; the RFC's "single stored response" rule read for the
    one response the request was made from). A 304 naming another validator freshens nothing: the
    client then asks again without a condition.
    """
    new, old = response.etag, sent_from.etag
    if new is not None:
        if old is None:
            return False
        return new.strong_match(old) if not (new.weak or old.weak) else new.weak_match(old)
    if response.modified is not None:
        return sent_from.modified == response.modified
    return True


def answers_condition(stored: Validators, request_headers: Headers) -> bool:
    """Whether a caller's own If-None-Match (else If-Modified-Since) is false for a stored response,
    so that a cache holding it fresh answers 304 itself (RFC 9111 §4.3.2, RFC 9110 §13.1.2-§13.1.3).

    ``If-None-Match`` compares weakly and ``*`` matches any stored response; ``If-Modified-Since``
    is used only without If-None-Match and only against a stored Last-Modified (one-second
    resolution). False means: send the stored response in full.
    """
    if_none_match = parse_etags(get_header(request_headers, "if-none-match"))
    if if_none_match is not None:
        if if_none_match == "*":
            return True
        current = stored.etag
        return current is not None and any(tag.weak_match(current) for tag in if_none_match)
    since = parse_http_date(get_header(request_headers, "if-modified-since"))
    return since is not None and stored.modified is not None and stored.modified <= since


def headers_to_store(headers: Headers) -> tuple[tuple[str, str], ...]:
    """The header fields worth storing: not connection-specific, not Set-Cookie (RFC 9111 §3.1)."""
    connection = get_header(headers, "connection")
    excluded = _NOT_STORED
    if connection is not None:
        excluded = excluded | {name.strip(" \t").lower() for name in connection.split(",")}
    return tuple((name, value) for name, value in headers if name.lower() not in excluded)


def freshen_headers(stored: Headers, response_304: Headers) -> tuple[tuple[str, str], ...]:
    """A stored response's headers updated by a 304 (RFC 9111 §3.2): each field the 304 carries
    replaces the stored one, except those that describe the stored body or the connection."""
    replacing = headers_to_store(response_304)
    replaced = {name.lower() for name, _ in replacing} - _NOT_FRESHENED
    kept = [(name, value) for name, value in stored if name.lower() not in replaced]
    return (*kept, *((name, value) for name, value in replacing if name.lower() in replaced))


def age_value(age: float) -> str:
    """The ``Age`` field value of a response served from the cache (RFC 9111 §5.1): whole
    seconds, saturating at 2**31 (§1.2.2)."""
    return str(min(int(age), 2**31))


def _origin(url: str) -> tuple[str, str, int | None] | None:
    try:
        parts = urlsplit(url)
        return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port
    except ValueError:
        return None


def invalidates_target(method: str, status: int) -> bool:
    """Whether this response makes stored responses of its target stale: a non-error (2xx, 3xx)
    answer to an unsafe method (RFC 9111 §4.4)."""
    return method.upper() not in SAFE_METHODS and 200 <= status < 400


def invalidation_targets(method: str, status: int, target: str, response_headers: Headers) -> tuple[str, ...]:
    """The URLs whose stored responses an unsafe request invalidates (RFC 9111 §4.4).

    Only non-error answers (2xx, 3xx) to unsafe methods invalidate: the target URI, and the
    ``Location`` and ``Content-Location`` URLs when they share the target's origin.
    """
    if not invalidates_target(method, status):
        return ()
    urls = [target]
    origin = _origin(target)
    for name in ("location", "content-location"):
        value = get_header(response_headers, name)
        if value is None:
            continue
        try:
            url = urljoin(target, value.strip(" \t"))
        except ValueError:
            continue
        if origin is not None and _origin(url) == origin and url not in urls:
            urls.append(url)
    return tuple(urls)

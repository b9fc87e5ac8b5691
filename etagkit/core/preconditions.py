"""Conditional requests (RFC 9110 §13): evaluate() in the §13.2.2 order, If-Range, 304 headers. Pure.

Call :func:`evaluate` only when the response to the same request without its conditions would be
2xx or 412 (§13.2.1): errors, redirects and 404s pass through untouched. Request headers come from
strangers, so nothing here raises on them; only the application's own inputs (its ETag, its
Last-Modified) are checked, and a mistake there raises ConfigurationError / InvalidETagError.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import Literal

from .._errors import InvalidETagError
from .dates import parse_http_date, to_utc_seconds
from .etag import ETag, coerce_etag, parse_etags
from .headers import OWS, HeaderSource, get_header
from .policy import DEFAULT_POLICY, ConditionalPolicy, RequestCacheControl

__all__ = ["Outcome", "evaluate", "not_modified_headers", "range_applies", "requires_precondition"]

# §13.2.1: methods that neither select nor modify a representation ignore all preconditions.
_NO_PRECONDITIONS = frozenset({"CONNECT", "OPTIONS", "TRACE"})
_GET_HEAD = frozenset({"GET", "HEAD"})
# §9.2.1 safe methods, CONNECT (no representation to guard) and POST (it creates or processes; a
# lost update is an overwrite of the target's representation, RFC 6585 §3): no 428 for them.
_NEED_NO_PRECONDITION = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "CONNECT", "POST"})
# §15.4.5: a 304 carries these fields when the 200 would have carried them.
_NOT_MODIFIED_FIELDS = frozenset({"cache-control", "content-location", "date", "etag", "expires", "vary"})
# Internet Explorer's legacy If-Modified-Since suffix: "<HTTP-date>; length=<octets>".
_IE_LENGTH_SUFFIX = re.compile(r";[ \t]*length=[0-9]*[ \t]*\Z")

_DEFAULT_POLICY = DEFAULT_POLICY


class Outcome(Enum):
    """The result of precondition evaluation; ``status`` is the code to answer with, or None to proceed."""

    PROCEED = "proceed"
    NOT_MODIFIED = "not_modified"
    PRECONDITION_FAILED = "precondition_failed"

    @property
    def status(self) -> int | None:
        """None (run the method), 304 or 412."""
        return _STATUS[self]


_STATUS: dict[Outcome, int | None] = {
    Outcome.PROCEED: None,
    Outcome.NOT_MODIFIED: 304,
    Outcome.PRECONDITION_FAILED: 412,
}


def _seconds(last_modified: datetime | None) -> int | None:
    return None if last_modified is None else to_utc_seconds(last_modified)


def _matches(
    members: tuple[ETag, ...] | Literal["*"], current: ETag | None, exists: bool, *, strong: bool
) -> bool:
    """Whether a parsed, present If-Match / If-None-Match list matches the current representation."""
    if members == "*":
        return exists
    if current is None:
        return False
    if strong:
        return any(member.strong_match(current) for member in members)
    return any(member.weak_match(current) for member in members)


def _date_header(headers: HeaderSource, name: str, *, ie_suffix: bool) -> int | None:
    value = get_header(headers, name)
    if value is not None and ie_suffix and len(value) <= 128:
        value = _IE_LENGTH_SUFFIX.sub("", value)
    moment = parse_http_date(value)
    return None if moment is None else to_utc_seconds(moment)


def _not_modified(headers: HeaderSource, policy: ConditionalPolicy) -> Outcome:
    if (
        policy.request_no_cache_forces_200
        and RequestCacheControl.parse(get_header(headers, "Cache-Control")).no_cache
    ):
        return Outcome.PROCEED
    return Outcome.NOT_MODIFIED


def evaluate(
    method: str,
    headers: HeaderSource,
    *,
    etag: ETag | str | None,
    last_modified: datetime | None = None,
    exists: bool = True,
    policy: ConditionalPolicy = _DEFAULT_POLICY,
) -> Outcome:
    """Evaluate a request's preconditions against the current representation (RFC 9110 §13.2.2).

    ``headers`` is a mapping or (name, value) pairs, read case-insensitively. ``etag`` is the current
    ETag (a value or its header string; a malformed string raises InvalidETagError), ``last_modified``
    an aware datetime (compared at one-second resolution), ``exists`` whether the target has a current
    representation at all (only ``*`` depends on it; when False, ``etag`` and ``last_modified`` are
    not consulted). The order is exact: If-Match, else If-Unmodified-Since (false: 412); then
    If-None-Match (false: 304 for GET/HEAD, 412 otherwise), else for GET/HEAD If-Modified-Since
    (false: 304). IMS/IUS are ignored when their date is invalid, when there is no Last-Modified and
    when If-None-Match / If-Match is present; IMS also for methods other than GET/HEAD. CONNECT,
    OPTIONS and TRACE ignore every precondition. If-Range is step 5: :func:`range_applies`.

    A failed If-Match or If-Unmodified-Since gives 412 even when the requested change happens to
    be applied already; the RFC allows answering 2xx then, but only the application can know it.
    Method names are compared upper-cased. The core never reads the clock, so a Last-Modified or an
    If-Modified-Since in the future is taken as given.
    """
    current = coerce_etag(etag)
    modified = _seconds(last_modified)
    method = method.upper()
    if method in _NO_PRECONDITIONS:
        return Outcome.PROCEED
    if policy.no_etag_means_no_representation and current is None:
        exists = False
    if not exists:
        current, modified = None, None

    if_match = parse_etags(get_header(headers, "If-Match"), policy=policy)
    if if_match is not None:  # step 1
        if not _matches(if_match, current, exists, strong=True):
            return Outcome.PRECONDITION_FAILED
    elif modified is not None:  # step 2
        unmodified_since = _date_header(headers, "If-Unmodified-Since", ie_suffix=False)
        if unmodified_since is not None and modified > unmodified_since:
            return Outcome.PRECONDITION_FAILED

    if_none_match = parse_etags(get_header(headers, "If-None-Match"), policy=policy)
    if if_none_match is not None:  # step 3
        if _matches(if_none_match, current, exists, strong=False):
            return _not_modified(headers, policy) if method in _GET_HEAD else Outcome.PRECONDITION_FAILED
    elif method in _GET_HEAD and modified is not None:  # step 4
        since = _date_header(headers, "If-Modified-Since", ie_suffix=policy.accept_ie_length_suffix)
        if since is not None and modified <= since:
            return _not_modified(headers, policy)
    return Outcome.PROCEED


def range_applies(
    headers: HeaderSource,
    *,
    etag: ETag | str | None,
    last_modified: datetime | None,
    method: str = "GET",
) -> bool:
    """Step 5 (§13.2.2, §13.1.5): whether to honour the request's Range, given If-Range.

    Call it after :func:`evaluate` returned PROCEED. False without a Range header or for a method
    other than GET (§14.2). Without If-Range the range applies. An entity-tag If-Range needs a
    strong match (a weak tag on either side never matches); a date must equal Last-Modified exactly
    at one-second resolution (no Last-Modified: False); anything else is False, so the full
    representation is sent.
    """
    current = coerce_etag(etag)
    modified = _seconds(last_modified)
    if method.upper() != "GET" or get_header(headers, "Range") is None:
        return False
    if_range = get_header(headers, "If-Range")
    if if_range is None:
        return True
    value = if_range.strip(OWS)
    # a weak entity-tag (W/"...") never matches strongly and is no HTTP-date: the date path says False
    if value.startswith('"'):
        try:
            tag = ETag.parse(value)
        except InvalidETagError:
            return False
        return current is not None and tag.strong_match(current)
    since = _date_header(headers, "If-Range", ie_suffix=False)
    return since is not None and since == modified


def not_modified_headers(headers: HeaderSource, *, set_cookie: bool = False) -> list[tuple[str, str]]:
    """The fields of the 200 that its 304 must carry (§15.4.5), in order, repeated fields kept.

    Cache-Control, Content-Location, Date, ETag, Expires and Vary; Last-Modified only when there is
    no ETag (it then guides cache updates); Set-Cookie only when ``set_cookie`` says so.
    """
    items = list(headers.items() if isinstance(headers, Mapping) else headers)
    keep = set(_NOT_MODIFIED_FIELDS)
    if not any(name.lower() == "etag" for name, _ in items):
        keep.add("last-modified")
    if set_cookie:
        keep.add("set-cookie")
    return [(name, value) for name, value in items if name.lower() in keep]


def requires_precondition(method: str, headers: HeaderSource) -> bool:
    """Whether the opt-in 428 policy (RFC 6585 §3) should refuse this request as unconditional.

    True for a method that may overwrite the target (PUT, PATCH, DELETE and other unsafe methods;
    not GET, HEAD, OPTIONS, TRACE, CONNECT or POST) that carries no usable
    lost-update guard: no If-Match, no valid If-Unmodified-Since, and no If-None-Match (``*`` on a
    PUT guards creation, §13.1.2).
    """
    if method.upper() in _NEED_NO_PRECONDITION:
        return False
    return (
        parse_etags(get_header(headers, "If-Match")) is None
        and parse_etags(get_header(headers, "If-None-Match")) is None
        and parse_http_date(get_header(headers, "If-Unmodified-Since")) is None
    )

"""Conditional replies from plain values (RFC 9110 §13): what to send instead of, or with, a response.

* :func:`check_preconditions` runs *before* the handler, when the current validator is already known
  (a cheap version callable, a stored validator): it answers 304 / 412 / 428, or ``None`` to run it.
* :func:`conditional_response` runs *after* the handler of a safe method, over its unconditional
  response: it adds the ETag and answers the same response, a 304 with exactly the RFC 9110 §15.4.5
  headers, or a small 412.

Pure: no clock, no socket, no framework.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from typing import NamedTuple

from .dates import format_http_date, parse_http_date
from .etag import ETag, HashAlgorithm, etag_or_none, generate_etag
from .freshness import SAFE_METHODS
from .headers import TOKEN, Fields, FieldView, HeaderSource, fields_of, get_header
from .memo import MEMO_MAX_CHARS, fields_chars
from .policy import parse_cache_control
from .preconditions import Outcome, evaluate, not_modified_headers, requires_precondition

__all__ = [
    "CONDITIONAL_FIELDS",
    "Reply",
    "Validator",
    "body_needed",
    "check_preconditions",
    "coded_etag",
    "conditional_response",
    "error_reply",
    "is_conditional",
    "wants_json",
]

# Methods that can create the target's representation (RFC 9110 §9.3.4; RFC 5789 §2 for PATCH).
_CREATING_METHODS = frozenset({"PUT", "PATCH"})
# Request fields that make a request conditional (RFC 9110 §13.1).
CONDITIONAL_FIELDS = ("If-None-Match", "If-Match", "If-Modified-Since", "If-Unmodified-Since")
_CONDITIONAL_SET = frozenset(name.lower() for name in CONDITIONAL_FIELDS)
_IDENTITY = frozenset({"", "identity"})
_READS = frozenset({"GET", "HEAD"})
_TOKEN = re.compile(TOKEN)


class Reply(NamedTuple):
    """What to send: a status, its header list and a body.

    ``body is None`` means "send the unconditional response's own body unchanged" (the response
    passes, possibly with an ETag added); otherwise ``body`` replaces it (304: ``b""``; 412 / 428:
    a small error document). A named tuple: one is made per request.
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes | None = None
    etag: ETag | None = None

    @property
    def status_line(self) -> str:
        """The status as WSGI and ``http.server`` want it, e.g. ``"304 Not Modified"``."""
        return _status_line(self.status)

    @property
    def replaces_body(self) -> bool:
        """True when the handler's body must not be sent (304, 412, 428 ...)."""
        return self.body is not None


@functools.lru_cache(maxsize=128)
def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"


@dataclass(frozen=True, slots=True)
class Validator:
    """The current validator of a target resource, known without producing its body.

    ``exists=False`` says there is no current representation (RFC 9110 §13.1.1-2: ``*`` then fails
    for If-Match and succeeds for If-None-Match).
    """

    etag: ETag | str | None = None
    last_modified: datetime | None = None
    exists: bool = True


# -- decisions ---------------------------------------------------------------------------------------


def wants_json(request_headers: HeaderSource, response_headers: HeaderSource = ()) -> bool:
    """Whether an error document should be JSON: the response or the request body is JSON, or the
    client accepts JSON (and not HTML)."""
    for source in (response_headers, request_headers):
        ctype = (get_header(source, "Content-Type") or "").lower()
        if "json" in ctype.split(";", 1)[0]:
            return True
    accept = (get_header(request_headers, "Accept") or "").lower()
    return "json" in accept and "text/html" not in accept


def error_reply(status: int, *, json_body: bool = False, detail: str | None = None) -> Reply:
    """A small error document (412, 428, 503) and no representation headers (RFC 9110 §15.5.13,
    RFC 6585 §3).

    JSON follows RFC 9457 (``application/problem+json``); otherwise one line of plain text.
    """
    title = HTTPStatus(status).phrase
    if detail is None:  # a 428 or a 412 (other statuses pass their own detail)
        detail = (
            "This request is required to be conditional: send If-Match with the current ETag."
            if status == 428
            else "The resource changed: a precondition in the request evaluated to false."
        )
    if json_body:
        body = json.dumps({"status": status, "title": title, "detail": detail}).encode()
        ctype = "application/problem+json"
    else:
        body = f"{status} {title}: {detail}\n".encode()
        ctype = "text/plain; charset=utf-8"
    headers = (("Content-Type", ctype), ("Content-Length", str(len(body))))
    return Reply(status, headers, body)


def check_preconditions(
    method: str,
    request_headers: HeaderSource,
    validator: Validator | None = None,
    *,
    response_headers: Iterable[tuple[str, str]] = (),
    require_precondition: bool = False,
    json_errors: bool | None = None,
) -> Reply | None:
    """Decide before running the handler: a 304 / 412 / 428 :class:`Reply`, or None to run it.

    ``validator`` is the current validator when it is known cheaply (``None``: unknown, only the
    428 rule applies). ``response_headers`` are headers the 200 would carry (Cache-Control, Vary
    ...); a 304 keeps those RFC 9110 §15.4.5 names. ``require_precondition`` answers 428 to an
    unsafe request other than POST that carries no lost-update guard: no If-Match, no valid
    If-Unmodified-Since, no If-None-Match (RFC 6585 §3; ``requires_precondition``).

    A target with no current representation (``validator.exists`` False) is decided only for the
    methods that can create one (PUT, PATCH): for any other method the handler's answer (a 404)
    passes untouched, since preconditions apply only where the response would be 2xx (§13.2.1).
    """
    if validator is not None and not validator.exists and method.upper() not in _CREATING_METHODS:
        return None
    if require_precondition and requires_precondition(method, request_headers):
        return error_reply(428, json_body=wants_json(request_headers) if json_errors is None else json_errors)
    if validator is None:
        return None
    etag = _as_etag(validator.etag)
    outcome = evaluate(
        method,
        request_headers,
        etag=etag,
        last_modified=validator.last_modified,
        exists=validator.exists,
    )
    if outcome is Outcome.PROCEED:
        return None
    if outcome is Outcome.NOT_MODIFIED:
        held = response_headers if isinstance(response_headers, tuple) else tuple(response_headers)
        return _not_modified(held, etag, validator.last_modified)
    return error_reply(412, json_body=wants_json(request_headers) if json_errors is None else json_errors)


def _not_modified(
    headers: tuple[tuple[str, str], ...],
    etag: ETag | None,
    last_modified: datetime | None,
    set_cookie: bool = False,
) -> Reply:
    """The 304 of a response with these headers and validators: exactly the RFC 9110 §15.4.5 fields
    (and the Set-Cookie the app set on it, with ``set_cookie``). Responses repeat (stored records, an
    app's fixed headers), so each one's 304 is built once: memoized by entries and in bytes, never
    one that carries a Set-Cookie (per client)."""
    key = (headers, etag, last_modified, set_cookie)
    try:
        return _NOT_MODIFIED[key]
    except KeyError:
        pass
    except TypeError:  # an unhashable header pair (a list): build it uncached
        return _build_not_modified(headers, etag, last_modified, set_cookie)
    reply = _build_not_modified(headers, etag, last_modified, set_cookie)
    if fields_chars(headers) <= MEMO_MAX_CHARS and not (
        set_cookie and any(k.lower() == "set-cookie" for k, _ in headers)
    ):
        if len(_NOT_MODIFIED) >= _NOT_MODIFIED_ENTRIES:
            _NOT_MODIFIED.clear()
        _NOT_MODIFIED[key] = reply
    return reply


def _build_not_modified(
    headers: Iterable[tuple[str, str]], etag: ETag | None, last_modified: datetime | None, set_cookie: bool
) -> Reply:
    with_validators = _with_validators(list(headers), etag, last_modified)
    return Reply(304, tuple(not_modified_headers(with_validators, set_cookie=set_cookie)), b"", etag)


_NOT_MODIFIED: dict[tuple[object, ...], Reply] = {}  # see _not_modified
_NOT_MODIFIED_ENTRIES = 4096


def conditional_response(
    method: str,
    request_headers: HeaderSource,
    status: int,
    response_headers: Iterable[tuple[str, str]],
    body: bytes | None = None,
    *,
    etag: ETag | str | None = None,
    last_modified: datetime | None = None,
    weak: bool = False,
    weaken_encoded: bool = False,
    json_errors: bool | None = None,
    fields: Fields | None = None,
    set_cookie: bool = False,
    algorithm: HashAlgorithm = "sha256",
) -> Reply:
    """Decide after the handler of a GET or HEAD ran, over its unconditional response.

    The validator is ``etag`` / ``last_modified`` if given, else the response's own ETag /
    Last-Modified, else a strong (``weak=False``) ETag of ``body``, which must be the identity body
    (what GET sends); a 200 whose ``body`` is given gets its Content-Length when it declares none.
    Only a 2xx is evaluated (RFC 9110 §13.2.1; unsafe methods are checked before they run, with
    :func:`check_preconditions`; OPTIONS and TRACE have no representation to tag); a body is hashed
    only for a 200, and never for ``Cache-Control: no-store``. An untagged 2xx still answers
    ``If-None-Match: *`` with 304 (§13.1.2: a current representation exists). A tag generated from a
    body with a Content-Encoding other than identity gets its own strong tag (``"<tag>-gzip"``) or,
    with ``weaken_encoded``, the weak tag: a gzip body and an identity body never share a strong ETag
    (§8.8.3.3). A tag the application chose (its ETag header, ``etag``) is its own and is never
    rewritten: its writes compare If-Match against exactly that tag. ``algorithm``: the hash of a
    generated tag (:func:`~etagkit.core.etag.generate_etag`). ``set_cookie``: a 304 keeps the
    response's Set-Cookie (the app set it for this client). ``fields`` may pass
    :func:`~etagkit.core.headers.fields_of` of the same headers when the caller already built it.
    """
    headers = response_headers if isinstance(response_headers, tuple) else tuple(response_headers)
    method = method.upper()
    if method not in _READS or not 200 <= status < 300:
        return Reply(status, headers)
    if fields is None:
        fields = fields_of(headers)
    tag = _as_etag(etag if etag is not None else fields.get("etag"))
    if tag is None and etag is None and "etag" in fields:
        return Reply(status, headers)  # the app's ETag is malformed: leave it alone
    if tag is None and body is not None and status == 200 and not _no_store(fields):
        # a tag etagkit makes is per coding; the app's own (or ``etag``) is sent exactly as given
        tag = coded_etag(
            generate_etag(body, weak=weak, algorithm=algorithm),
            fields.get("content-encoding"),
            weaken=weaken_encoded,
        )
    modified = parse_http_date(fields.get("last-modified")) if last_modified is None else last_modified
    conditional = is_conditional(request_headers)
    if tag is None and modified is None and not conditional:
        return Reply(status, headers)
    outcome = (
        evaluate(method, request_headers, etag=tag, last_modified=modified, exists=True)
        if conditional
        else Outcome.PROCEED  # nothing to evaluate: the common first visit
    )
    if outcome is Outcome.NOT_MODIFIED:
        return _not_modified(headers, tag, last_modified, set_cookie)
    if outcome is Outcome.PRECONDITION_FAILED:
        if json_errors is None:
            json_errors = wants_json(request_headers, fields)
        failed = error_reply(412, json_body=json_errors)
        return Reply(412, failed.headers, failed.body, tag)
    if tag is None and modified is None:
        return Reply(status, headers)
    if "etag" in fields or "last-modified" in fields:  # the view's own validators: replace them
        sent = _with_validators(list(headers), tag, last_modified)
    else:
        sent = [*headers, *_validator_fields(tag, last_modified)]
    if body is not None and status == 200 and "content-length" not in fields:
        # the buffered body's length, also for HEAD (RFC 9110 §8.6, §9.3.2): the server then never
        # frames a body-less HEAD reply as chunked (RFC 9112 §6.3)
        sent.append(("Content-Length", str(len(body))))
    return Reply(status, tuple(sent), None, tag)


def _no_store(fields: dict[str, str]) -> bool:
    value = fields.get("cache-control")
    return value is not None and "no-store" in parse_cache_control(value)


def body_needed(method: str, status: int, response_headers: HeaderSource) -> bool:
    """Whether :func:`conditional_response` needs the body to tag this response: a safe method's
    200 without ETag or Last-Modified and not ``no-store``. Anything else streams through as is."""
    if method.upper() not in SAFE_METHODS or status != 200:
        return False
    if isinstance(response_headers, Fields):
        fields = response_headers  # already indexed (fields_of)
    else:
        items = response_headers.items() if isinstance(response_headers, Mapping) else response_headers
        fields = fields_of(items)
    return "etag" not in fields and "last-modified" not in fields and not _no_store(fields)


def coded_etag(etag: ETag, content_encoding: str | None, *, weaken: bool = False) -> ETag:
    """The ETag of a content-coded body: strong per coding, or weak (RFC 9110 §8.8.3.3, §8.4).

    A weak tag stays as it is: weak tags already mean "semantically equivalent".
    """
    if content_encoding is None or etag.weak:
        return etag
    codings = [c.strip(" \t").lower() for c in content_encoding.split(",")]
    codings = [c for c in codings if c not in _IDENTITY and _TOKEN.fullmatch(c)]
    if not codings:
        return etag
    if weaken:
        return ETag(etag.tag, weak=True)
    return ETag(f"{etag.tag}-{'+'.join(codings)}")


def _as_etag(value: ETag | str | None) -> ETag | None:
    return value if isinstance(value, ETag) else etag_or_none(value)


def _with_validators(
    headers: list[tuple[str, str]], etag: ETag | None, last_modified: datetime | None
) -> list[tuple[str, str]]:
    """``headers`` with ETag (and Last-Modified when given) set, replacing earlier values."""
    drop = set()
    if etag is not None:
        drop.add("etag")
    if last_modified is not None:
        drop.add("last-modified")
    return [(k, v) for k, v in headers if k.lower() not in drop] + _validator_fields(etag, last_modified)


def _validator_fields(etag: ETag | None, last_modified: datetime | None) -> list[tuple[str, str]]:
    out = [] if etag is None else [("ETag", str(etag))]
    if last_modified is not None:
        out.append(("Last-Modified", format_http_date(last_modified)))
    return out


def is_conditional(request_headers: HeaderSource) -> bool:
    """Whether the request carries any precondition field (RFC 9110 §13.1)."""
    if isinstance(request_headers, Fields):
        return not _CONDITIONAL_SET.isdisjoint(request_headers)
    if isinstance(request_headers, FieldView):
        return any(name in request_headers for name in CONDITIONAL_FIELDS)
    return any(get_header(request_headers, name) is not None for name in CONDITIONAL_FIELDS)

"""Conditional responses from plain values: the one implementation behind every adapter.

A custom server (stdlib ``http.server``, a socket loop, another framework) and etagkit's own WSGI
middleware and Flask extension all go through the same few functions:

* :func:`check_preconditions` runs *before* the handler, when the current validator is already
  known (a cheap version callable, a stored validator): it answers 304 / 412 / 428 so the handler
  never runs, or ``None`` to run it.
* :func:`conditional_response` runs *after* the handler of a safe method, over its unconditional
  response (status, headers, identity body or a known validator): it adds the ETag and answers
  the same response, a 304 with exactly the RFC 9110 §15.4.5 headers, or a small 412.
* :func:`representation_key`, :func:`variant_key`, :func:`path_tag` and :class:`StoredValidator`
  derive and encode the stored ("stateful") ETag of a representation (DESIGN.md "Stored ETags").

Everything above is pure: no clock, no socket, no framework. :class:`ValidatorStore` is the one
piece that talks to a cache, and only through the object it is given (a ``TagCache``); it never
raises because of that cache.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode

from ._dates import format_http_date, parse_http_date
from ._errors import ConfigurationError
from ._etag import ETag, etag_or_none, generate_etag
from ._freshness import SAFE_METHODS, invalidates_target  # safe methods: RFC 9110 §9.2.1
from ._headers import TOKEN, Fields, FieldView, HeaderSource, fields_of, get_header
from ._policy import parse_cache_control, vary_names
from ._preconditions import Outcome, evaluate, not_modified_headers, requires_precondition
from .cache._config import number

__all__ = [
    "CachedResponse",
    "EnvironHeaders",
    "MetricsSink",
    "Reply",
    "RequestFields",
    "StoredValidator",
    "Validator",
    "ValidatorStore",
    "body_needed",
    "check_cache",
    "check_preconditions",
    "coded_etag",
    "conditional_response",
    "error_reply",
    "invalidates_target",
    "is_conditional",
    "path_tag",
    "representation_key",
    "request_fields",
    "request_origin",
    "shared_lookup_allowed",
    "split_tags",
    "variant_key",
    "wants_json",
]

# Methods that can create the target's representation (RFC 9110 §9.3.4; RFC 5789 §2 for PATCH).
_CREATING_METHODS = frozenset({"PUT", "PATCH"})
# Request fields that make a request conditional (RFC 9110 §13.1).
CONDITIONAL_FIELDS = ("If-None-Match", "If-Match", "If-Modified-Since", "If-Unmodified-Since")
_CONDITIONAL_SET = frozenset(name.lower() for name in CONDITIONAL_FIELDS)
_IDENTITY = frozenset({"", "identity"})
_TOKEN = re.compile(TOKEN)
_KEY_VERSION = "v2"
_RECORD_VERSION = "etagkit-validator-1"
_UNIT, _RECORD = "\x1f", "\x1e"  # ASCII unit / record separators: never in a field (RFC 9110 §5.5)
_SEPARATORS = frozenset(_UNIT + _RECORD)


@dataclass(frozen=True, slots=True)
class Reply:
    """What to send: a status, its header list and a body.

    ``body is None`` means "send the unconditional response's own body unchanged" (the response
    passes, possibly with an ETag added); otherwise ``body`` replaces it (304: ``b""``; 412 / 428:
    a small error document).
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


class EnvironHeaders(FieldView):
    """Request headers of a WSGI environ, looked up case-insensitively by field name (PEP 3333)."""

    __slots__ = ("_environ",)

    def __init__(self, environ: Mapping[str, Any]) -> None:
        self._environ = environ

    @staticmethod
    def _key(name: str) -> str:
        key = name.upper().replace("-", "_")
        return key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key

    def __getitem__(self, name: str) -> str:
        value = self._environ[self._key(name)]
        if not isinstance(value, str):
            raise KeyError(name)
        return value

    def get(self, name: str, default: Any = None) -> Any:  # fast path: one dict lookup
        value = self._environ.get(self._key(name))
        return value if isinstance(value, str) else default

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and isinstance(self._environ.get(self._key(name)), str)

    def __iter__(self) -> Iterator[str]:
        for key, value in self._environ.items():
            if not isinstance(value, str):
                continue
            if key.startswith("HTTP_"):
                yield key[5:].replace("_", "-").title()
            elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                yield key.replace("_", "-").title()

    def __len__(self) -> int:
        return sum(1 for _ in self)


# The request fields the decisions read (RFC 9110 §13.1 preconditions, the error format, the
# credentials that keep a request off shared stored validators).
_DECISION_FIELDS = (
    ("if-match", "HTTP_IF_MATCH"),
    ("if-none-match", "HTTP_IF_NONE_MATCH"),
    ("if-modified-since", "HTTP_IF_MODIFIED_SINCE"),
    ("if-unmodified-since", "HTTP_IF_UNMODIFIED_SINCE"),
    ("accept", "HTTP_ACCEPT"),
    ("content-type", "CONTENT_TYPE"),
    ("authorization", "HTTP_AUTHORIZATION"),
    ("cookie", "HTTP_COOKIE"),
)


class RequestFields(Fields):
    """The request fields the decisions read, under lower-cased names (see :func:`request_fields`)."""

    __slots__ = ()


def request_fields(environ: Mapping[str, Any]) -> RequestFields:
    """The few request fields the decisions read, from a WSGI environ: a small dict, so every lookup
    is cheap (use :class:`EnvironHeaders` for arbitrary fields, e.g. those named in Vary)."""
    fields = RequestFields()
    for name, key in _DECISION_FIELDS:
        value = environ.get(key)
        if value and isinstance(value, str):
            fields[name] = value
    return fields


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
    """A small 412 / 428 document and no representation headers (RFC 9110 §15.5.13, RFC 6585 §3).

    JSON follows RFC 9457 (``application/problem+json``); otherwise one line of plain text.
    """
    title = HTTPStatus(status).phrase
    if detail is None:
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
    unsafe request that carries neither If-Match nor If-Unmodified-Since (RFC 6585 §3).

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
    headers: tuple[tuple[str, str], ...], etag: ETag | None, last_modified: datetime | None
) -> Reply:
    """The 304 of a response with these headers and validators: exactly the RFC 9110 §15.4.5 fields.
    Responses repeat (stored records, an app's fixed headers), so each one's 304 is built once."""
    try:
        return _not_modified_reply(headers, etag, last_modified)
    except TypeError:  # an unhashable header pair (a list): build it uncached
        return _build_not_modified(headers, etag, last_modified)


def _build_not_modified(
    headers: Iterable[tuple[str, str]], etag: ETag | None, last_modified: datetime | None
) -> Reply:
    with_validators = _with_validators(list(headers), etag, last_modified)
    return Reply(304, tuple(not_modified_headers(with_validators)), b"", etag)


_not_modified_reply = functools.lru_cache(maxsize=4096)(_build_not_modified)


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
) -> Reply:
    """Decide after the handler of a safe method ran, over its unconditional response.

    The validator is ``etag`` / ``last_modified`` if given, else the response's own ETag /
    Last-Modified, else a strong (``weak=False``) ETag of ``body``, which must be the identity body
    (what GET sends); a 200 whose ``body`` is given gets its Content-Length when it declares none.
    Only a 2xx of a safe method is evaluated (RFC 9110 §13.2.1; unsafe methods are
    checked before they run, with :func:`check_preconditions`); a body is hashed only for a 200, and
    never for ``Cache-Control: no-store``. A tag generated from a body with a Content-Encoding other
    than identity gets its own strong tag (``"<tag>-gzip"``) or, with ``weaken_encoded``, the weak
    tag: a gzip body and an identity body never share a strong ETag (RFC 9110 §8.8.3.3). A tag the
    application chose (its ETag header, ``etag``) is its own and is never rewritten: its writes
    compare If-Match against exactly that tag. ``fields`` may pass
    :func:`~etagkit._headers.fields_of` of the same headers when the caller already built it.
    """
    headers = response_headers if isinstance(response_headers, tuple) else tuple(response_headers)
    method = method.upper()
    if method not in SAFE_METHODS or not 200 <= status < 300:
        return Reply(status, headers)
    if fields is None:
        fields = fields_of(headers)
    if _no_store(fields):
        return Reply(status, headers)
    tag = _as_etag(etag if etag is not None else fields.get("etag"))
    if tag is None and etag is None and "etag" in fields:
        return Reply(status, headers)  # the app's ETag is malformed: leave it alone
    if tag is None and body is not None and status == 200:
        # a tag etagkit makes is per coding; the app's own (or ``etag``) is sent exactly as given
        tag = coded_etag(
            generate_etag(body, weak=weak), fields.get("content-encoding"), weaken=weaken_encoded
        )
    modified = parse_http_date(fields.get("last-modified")) if last_modified is None else last_modified
    if tag is None and modified is None:
        return Reply(status, headers)
    outcome = (
        evaluate(method, request_headers, etag=tag, last_modified=modified, exists=True)
        if is_conditional(request_headers)
        else Outcome.PROCEED  # nothing to evaluate: the common first visit
    )
    if outcome is Outcome.NOT_MODIFIED:
        return _not_modified(headers, tag, last_modified)
    if outcome is Outcome.PRECONDITION_FAILED:
        if json_errors is None:
            json_errors = wants_json(request_headers, fields)
        failed = error_reply(412, json_body=json_errors)
        return Reply(412, failed.headers, failed.body, tag)
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


# -- stored validators: keys and records (pure) ------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def representation_key(
    method: str,
    path: str,
    query: str = "",
    *,
    scope: str | None = None,
    kind: str = "etag",
    origin: str = "",
) -> str:
    """The stored-validator key of a target before Vary: method class, origin, path, query, scope.

    ``origin`` is the request's scheme and authority (:func:`request_origin`): one app serving
    several hosts never answers one host's request with another's validator or response (the
    target URI, RFC 9110 §7.1, is part of the cache key, RFC 9111 §2). GET and HEAD share one class
    (HEAD gets GET's ETag); the query's parameters are ordered by name only (a stable sort), so
    ``?a=1&b=2`` and ``?b=2&a=1`` are one representation while ``?a=2&a=1`` and ``?a=1&a=2``,
    whose repeated values are ordered data, are two. Stable across processes (sha256). ``kind``
    separates what is stored for it (``"etag"``: validators, ``"response"``: whole responses).
    """
    method = method.upper()
    method_class = "GET" if method in ("GET", "HEAD") else method
    pairs = sorted(parse_qsl(query, keep_blank_values=True), key=_name) if query else []
    return _digest(kind, method_class, origin, path, urlencode(pairs), scope)


def _name(pair: tuple[str, str]) -> str:
    return pair[0]


def variant_key(base_key: str, request_headers: HeaderSource, vary: Sequence[str]) -> str:
    """The key of one variant: ``base_key`` plus the request's values of the fields named in Vary.

    Field values are compared after trimming and collapsing whitespace; an absent field differs
    from an empty one.
    """
    if not vary:
        return base_key
    parts: list[str | None] = []
    for name in sorted({n.lower() for n in vary}):
        value = get_header(request_headers, name)
        parts.append(name)
        parts.append(None if value is None else " ".join(value.split()))
    return _digest("variant", base_key, *parts)


@functools.lru_cache(maxsize=4096)
def path_tag(path: str, origin: str = "") -> str:
    """The implicit tag of every validator stored for ``origin`` + ``path``; a successful unsafe
    request to that target invalidates it (RFC 9111 §4.4: unsafe requests invalidate the target
    URI), and only on that origin (:func:`request_origin`)."""
    target = origin + path
    return "etagkit:path:" + hashlib.sha256(target.encode("utf-8", "surrogatepass")).hexdigest()[:24]


_DEFAULT_PORTS = {"http": "80", "https": "443"}


def request_origin(environ: Mapping[str, Any]) -> str:
    """The request's origin from a WSGI environ: ``scheme://host[:port]``, lower-cased, the scheme's
    default port dropped (RFC 9110 §4.2.3 normalization). The host is Host (``HTTP_HOST``), else
    ``SERVER_NAME:SERVER_PORT`` (PEP 3333 URL reconstruction)."""
    scheme = str(environ.get("wsgi.url_scheme") or "http").lower()
    host = environ.get("HTTP_HOST")
    if not isinstance(host, str) or not host:
        host = f"{environ.get('SERVER_NAME', '')}:{environ.get('SERVER_PORT', '')}"
    host = host.strip(" \t").lower()
    name, colon, port = host.rpartition(":")
    if colon and (not port or port == _DEFAULT_PORTS.get(scheme)):
        host = name
    return f"{scheme}://{host}"


def shared_lookup_allowed(request_headers: HeaderSource, scope: str | None) -> bool:
    """Whether a stored validator may answer this request: never a credentialed request (Authorization
    or Cookie) unless the route declared its scope (then the scope is part of the key)."""
    if scope is not None:
        return True
    if isinstance(request_headers, Fields):
        return "authorization" not in request_headers and "cookie" not in request_headers
    return (
        get_header(request_headers, "Authorization") is None and get_header(request_headers, "Cookie") is None
    )


def is_conditional(request_headers: HeaderSource) -> bool:
    """Whether the request carries any precondition field (RFC 9110 §13.1)."""
    if isinstance(request_headers, Fields):
        return not _CONDITIONAL_SET.isdisjoint(request_headers)
    if isinstance(request_headers, FieldView):
        return any(name in request_headers for name in CONDITIONAL_FIELDS)
    return any(get_header(request_headers, name) is not None for name in CONDITIONAL_FIELDS)


def split_tags(value: str | None) -> tuple[str, ...]:
    """Tags from a ``Cache-Tag`` style header: separated by spaces and/or commas, de-duplicated."""
    if not value:
        return ()
    return tuple(dict.fromkeys(t for t in value.replace(",", " ").split() if t and t != "*"))


def _digest(kind: str, *parts: str | None) -> str:
    # length-prefixed parts (None as "-"): no two part lists share an encoding
    raw = "|".join("-" if p is None else f"{len(p)}:{p}" for p in (_KEY_VERSION, kind, *parts))
    return f"etagkit:{kind}:" + hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:40]


@dataclass(frozen=True, slots=True)
class StoredValidator:
    """A representation's stored validator and the headers its 304 carries (RFC 9110 §15.4.5).

    ``vary`` names the request fields that select the variant (its key is :func:`variant_key`).
    """

    etag: ETag | None = None
    last_modified: datetime | None = None
    headers: tuple[tuple[str, str], ...] = ()
    vary: tuple[str, ...] = ()
    length: int = 0  # body bytes a 304 from this record does not send
    # what check_preconditions takes, made once per record (decoded records are shared: lru_cache)
    _validator: Validator = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_validator", Validator(self.etag, self.last_modified, True))

    @classmethod
    def from_response(
        cls,
        status: int,
        headers: Sequence[tuple[str, str]],
        etag: ETag | None = None,
        length: int | None = None,
    ) -> StoredValidator | None:
        """The record to store for a 2xx response to GET (None when it must not be stored).

        ``headers`` are the 200's, ``etag`` the tag it was sent with (default: its ETag header) and
        ``length`` its body size (default: Content-Length), counted as saved by each stored 304.
        Not stored: ``no-store``, ``Vary: *`` (no key can select it), no validator at all, and an
        ``Expires``: it is an absolute time that a stored 304 would replay frozen long after the
        app moved it on (RFC 9110 §15.4.5 makes the 304 carry it; RFC 9111 §5.3). Such a response
        is revalidated statelessly (the app runs and its fresh Expires goes out); the pure core
        reads no clock, so it does not rebase the date itself.
        """
        held = headers if isinstance(headers, tuple) else tuple(headers)
        try:
            return _record_of(status, held, etag, length)
        except TypeError:  # an unhashable header pair (a list): build it uncached
            return _build_record(status, held, etag, length)

    def to_value(self) -> str:
        """One compact string for the cache (cheap to size, to copy and to serialize anywhere)."""
        return _encode_record(self)

    def _encode(self) -> str:
        return _UNIT.join(
            (
                _RECORD_VERSION,
                "" if self.etag is None else str(self.etag),
                "" if self.last_modified is None else format_http_date(self.last_modified),
                str(self.length),
                ",".join(self.vary),
                _RECORD.join(f"{k}: {v}" for k, v in self.headers),
            )
        )

    @classmethod
    def from_value(cls, value: object) -> StoredValidator | None:
        """Decode :meth:`to_value`'s output; anything else (garbage, another version) is None."""
        if not isinstance(value, str):
            return None
        return _decode_validator(value)

    @classmethod
    def _decode(cls, value: str) -> StoredValidator | None:
        parts = value.split(_UNIT)
        if len(parts) != 6 or parts[0] != _RECORD_VERSION or not parts[3].isdigit():
            return None
        _, e, m, n, v, h = parts
        etag = _as_etag(e) if e else None
        last_modified = parse_http_date(m) if m else None
        if etag is None and last_modified is None:
            return None
        headers: list[tuple[str, str]] = []
        for line in h.split(_RECORD) if h else ():
            name, sep, field_value = line.partition(": ")
            if not sep:
                return None
            headers.append((name, field_value))
        vary = tuple(x for x in v.split(",") if x)
        return cls(etag, last_modified, tuple(headers), vary, int(n))

    def validator(self) -> Validator:
        """The record's validator, as :func:`check_preconditions` takes it."""
        return self._validator


def _build_record(
    status: int, headers: Sequence[tuple[str, str]], etag: ETag | None, length: int | None
) -> StoredValidator | None:
    """:meth:`StoredValidator.from_response`, uncached."""
    if not 200 <= status < 300:
        return None
    fields = fields_of(headers)
    if _no_store(fields) or "expires" in fields:
        return None
    vary = vary_names(fields.get("vary"))
    if vary is None:  # Vary: * - no later request can select it (RFC 9111 §4.1)
        return None
    if etag is None:
        etag = _as_etag(fields.get("etag"))
    last_modified = parse_http_date(fields.get("last-modified"))
    if etag is None and last_modified is None:
        return None
    if length is None:
        declared = fields.get("content-length", "")
        length = int(declared) if declared.isascii() and declared.isdigit() else 0
    with_tag = _with_validators(list(headers), etag, None)
    kept = tuple((k, v) for k, v in not_modified_headers(with_tag) if k.lower() != "date")
    if any(_SEPARATORS & set(k + v) for k, v in kept):
        return None  # control characters have no place in a field (RFC 9110 §5.5): do not store
    return StoredValidator(etag, last_modified, kept, vary, length)


# Revalidations read the same few records over and over: decode each one once (records are immutable).
_decode_validator = functools.lru_cache(maxsize=4096)(StoredValidator._decode)
# Each record is stored again and again (one per 200): encode it once.
_encode_record = functools.lru_cache(maxsize=4096)(StoredValidator._encode)
# A view answers the same headers again and again: build each one's record once.
_record_of = functools.lru_cache(maxsize=4096)(_build_record)


@dataclass(frozen=True, slots=True)
class CachedResponse:
    """A whole 200 response kept in the cache (response caching), served again with its ETag."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @classmethod
    def from_response(
        cls,
        status: int,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        etag: ETag | None = None,
        last_modified: datetime | None = None,
    ) -> CachedResponse | None:
        """The record for a response that may be served to other requests of the same key: a 200,
        not ``no-store`` / ``private``, no Set-Cookie (never replay one user's cookie), no ``Vary: *``,
        no ``Expires`` (an absolute time a replay would freeze, see :meth:`StoredValidator.from_response`),
        with a validator (``etag`` / ``last_modified`` replace the response's own), so that it is
        always served with one."""
        if status != 200 or get_header(headers, "Set-Cookie") is not None:
            return None
        if get_header(headers, "Expires") is not None:
            return None
        directives = parse_cache_control(get_header(headers, "Cache-Control"))
        if "no-store" in directives or "private" in directives:
            return None
        if vary_names(get_header(headers, "Vary")) is None:
            return None
        held = _with_validators(list(headers), etag, last_modified)
        if get_header(held, "ETag") is None and get_header(held, "Last-Modified") is None:
            return None
        return cls(status, tuple(held), bytes(body))

    @property
    def vary(self) -> tuple[str, ...]:
        """The request fields the response varies on (lower-cased, sorted: RFC 9111 §4.1)."""
        return vary_names(get_header(self.headers, "Vary")) or ()

    def to_value(self) -> dict[str, Any]:
        return {"s": self.status, "h": [[k, v] for k, v in self.headers], "b": self.body}

    @classmethod
    def from_value(cls, value: object) -> CachedResponse | None:
        """Decode :meth:`to_value`'s output; anything else is None."""
        if not isinstance(value, Mapping):
            return None
        try:
            status, raw_headers, body = int(value["s"]), value["h"], value["b"]
            headers = tuple((str(k), str(v)) for k, v in raw_headers)
        except (KeyError, TypeError, ValueError):
            return None
        if not isinstance(body, bytes):
            return None
        return cls(status, headers, body)


# -- the cache glue: calls only the cache object it is given -----------------------------------------


class CacheLike(Protocol):
    """The part of ``etagkit.cache.TagCache`` the adapters use."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def begin(self, tags: Iterable[str] = ()) -> Any: ...

    def set(
        self, key: str, value: Any, *, ticket: Any = None, tags: Iterable[str] = (), ttl: Any = None
    ) -> bool: ...

    def invalidate_tags(self, *tags: str, soft: bool = False) -> None: ...


def check_cache(cache: object) -> None:
    """ConfigurationError unless ``cache`` is None or offers what the adapters call (a ``TagCache``)."""
    if cache is not None and not all(
        callable(getattr(cache, m, None)) for m in ("get", "set", "begin", "invalidate_tags")
    ):
        raise ConfigurationError(f"cache must be an etagkit.cache.TagCache, not {cache!r}")


class MetricsSink(Protocol):
    """The part of ``etagkit.metrics.Metrics`` the adapters call."""

    def response(self, route: str, status: int, *, bytes_saved: int = 0, stored: bool = False) -> None: ...

    def event(self, name: str, route: str | None = None) -> None: ...


_MISSING = object()


class ValidatorStore:
    """Stored ETags over a ``TagCache``: look a representation's validator up, store it, drop it.

    Never raises because of the cache: a failing lookup is a miss and a failing write is skipped,
    each counted as a ``store_error`` / ``stateless_fallback`` event in ``metrics`` (the adapter then
    works statelessly: it runs the handler and hashes the body).

    Every 200 stores its validator, and most of those writes repeat the last one. A write is skipped
    when this object's last successful write for the key had the same value and tags, the store's
    logical clock has not moved since (no invalidation anywhere: the entry is still valid) and less
    than half its TTL has passed. A lookup that misses that entry (evicted, deleted) or finds another
    value forgets the skip, so the next write goes to the store again.
    """

    _MAX_WRITTEN = 4096  # keys remembered for skipping repeated writes (cleared when full)

    def __init__(
        self, cache: CacheLike, *, ttl: float | None = None, metrics: MetricsSink | None = None
    ) -> None:
        check_cache(cache)
        self.cache = cache
        self.ttl = None if ttl is None else number("ttl", ttl, positive=True)
        self.metrics = metrics
        # base key -> (key written, value, tags, clock, time) of the last successful write
        self._written: dict[str, tuple[str, Any, tuple[str, ...], Any, float]] = {}

    def _fault(self, route: str | None) -> None:
        if self.metrics is not None:
            self.metrics.event("store_error", route)
            self.metrics.event("stateless_fallback", route)

    def _get(self, key: str, route: str | None) -> Any:
        try:
            return self.cache.get(key, _MISSING)
        except Exception:  # a store that raises anyway must not break the request
            self._fault(route)
            return _MISSING

    def lookup_value(self, base_key: str, request_headers: HeaderSource, route: str | None = None) -> Any:
        """The stored value of the variant this request selects, or None. When the stored response
        varies, the base key holds an index ``{"vary-index": [field names]}`` (one more read)."""
        value = self._get(base_key, route)
        if not isinstance(value, str) and isinstance(value, Mapping) and "vary-index" in value:
            names = value["vary-index"]
            if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
                return None
            value = self._get(variant_key(base_key, request_headers, names), route)
        written = self._written.get(base_key)
        if written is not None and written[1] != value:  # not what we wrote: write it next time
            self._written.pop(base_key, None)
        return None if value is _MISSING else value

    def lookup(
        self, base_key: str, request_headers: HeaderSource, route: str | None = None
    ) -> StoredValidator | None:
        """The valid stored validator of the variant this request selects, or None."""
        return StoredValidator.from_value(self.lookup_value(base_key, request_headers, route))

    def begin(self, tags: Iterable[str], route: str | None = None) -> Any:
        """A ticket read BEFORE the handler runs, so an invalidation during it wins (race safety)."""
        try:
            ticket = self.cache.begin(tags=tuple(tags))
        except Exception:
            self._fault(route)
            return None
        if getattr(ticket, "started", 0) is None:  # the store is unreachable: this request is stateless
            if self.metrics is not None:
                self.metrics.event("stateless_fallback", route)
            return None
        return ticket

    def store_value(
        self,
        base_key: str,
        request_headers: HeaderSource,
        value: Any,
        *,
        vary: Sequence[str],
        ticket: Any,
        tags: Iterable[str],
        ttl: float | None = None,
        route: str | None = None,
    ) -> bool:
        """Store ``value`` (and the Vary index when it varies) under ``ticket``; False if refused."""
        if ticket is None:
            return False
        tags = tuple(tags)
        ttl = self.ttl if ttl is None else ttl
        key = variant_key(base_key, request_headers, vary) if vary else base_key
        clock, at = getattr(ticket, "started", None), getattr(ticket, "at", None)
        lifetime = ttl if ttl is not None else getattr(self.cache, "default_ttl", None)
        written = self._written.get(base_key)
        if (
            written is not None
            and written[:4] == (key, value, tags, clock)
            and isinstance(at, float | int)
            and isinstance(lifetime, float | int)
            and 0 <= at - written[4] < lifetime / 2
        ):
            return True  # the same entry is in the store and still valid: nothing to write
        try:
            if vary:
                index = {"vary-index": list(vary)}
                self.cache.set(base_key, index, ticket=ticket, tags=tags, ttl=ttl)
            stored = bool(self.cache.set(key, value, ticket=ticket, tags=tags, ttl=ttl))
        except Exception:
            self._fault(route)
            return False
        if stored and clock is not None and isinstance(at, float | int):
            if len(self._written) >= self._MAX_WRITTEN:
                self._written.clear()
            self._written[base_key] = (key, value, tags, clock, at)
        return stored

    def store(
        self,
        base_key: str,
        request_headers: HeaderSource,
        record: StoredValidator,
        *,
        ticket: Any,
        tags: Iterable[str],
        route: str | None = None,
    ) -> bool:
        """Store a validator record under ``ticket`` (taken before the handler ran)."""
        return self.store_value(
            base_key,
            request_headers,
            record.to_value(),
            vary=record.vary,
            ticket=ticket,
            tags=tags,
            route=route,
        )

    def invalidate(self, *tags: str, route: str | None = None) -> None:
        """Invalidate tags now (in every process sharing the store)."""
        if not tags:
            return
        try:
            self.cache.invalidate_tags(*tags)
        except Exception:
            self._fault(route)

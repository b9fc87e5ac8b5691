"""Stored records: a representation's validator and its 304 headers, or a whole cached response.

Each record encodes to a plain value any store can hold and decodes back. A store holds data anyone
with access to it may have written (or a bug, or a half-written value): decoding validates every
part (types, ranges, field syntax: RFC 9110 §5.1, §5.5) and anything that does not decode is
``None``, a miss, never an exception and never a header a server would refuse. Decoding is pure: the
reader logs the miss (:mod:`etagkit._badrecord`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .dates import format_http_date, parse_http_date
from .etag import ETag, etag_or_none
from .headers import fields_of, get_header, is_token, valid_field
from .memo import MEMO_MAX_CHARS, fields_chars
from .policy import parse_cache_control, vary_names
from .preconditions import not_modified_headers
from .reply import Validator, _as_etag, _no_store, _with_validators

__all__ = ["CachedResponse", "StoredValidator"]

_RECORD_VERSION = "etagkit-validator-1"
_UNIT, _RECORD = "\x1f", "\x1e"  # ASCII unit / record separators: never in a field (RFC 9110 §5.5)
# A record keeps a 304's fields (a few hundred characters); a value far larger is not one of ours.
_MAX_RECORD_CHARS = 16 * 1024
_MAX_COUNT = 2**63 - 1  # a byte count: Content-Length's range in practice (RFC 9110 §8.6)
# The fields a stored validator keeps: those of a 304 (RFC 9110 §15.4.5) but Date (stale at once)
# and Expires (never stored, see StoredValidator.from_response).
_VALIDATOR_FIELDS = frozenset({"cache-control", "content-location", "etag", "last-modified", "vary"})
# Never replayed from a stored response: connection-specific fields (RFC 9110 §7.6.1, which a WSGI
# server refuses from an app, PEP 3333), one user's cookie, and an absolute Expires.
_NOT_REPLAYED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "set-cookie",
        "expires",
    }
)


def _count(text: str) -> int | None:
    """A non-negative decimal count of at most 19 ASCII digits (``'²'.isdigit()`` is True: not one)."""
    if 0 < len(text) <= 19 and text.isascii() and text.isdigit():
        number = int(text)
        return number if number <= _MAX_COUNT else None
    return None


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
    # what check_preconditions takes, made once per record (decoded records are shared: memoized)
    _validator: Validator = field(init=False, repr=False, compare=False)
    # the characters the record holds: records above the memo bound are encoded without the memo
    _chars: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_validator", Validator(self.etag, self.last_modified, True))
        tag = 0 if self.etag is None else len(self.etag.tag)
        object.__setattr__(self, "_chars", fields_chars(self.headers) + sum(map(len, self.vary)) + tag)

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
        reads no clock, so it does not rebase the date itself. Nor is a record that would not
        decode (:meth:`from_value`): a field a server could not send, a Vary name that is no token.
        """
        held = headers if isinstance(headers, tuple) else tuple(headers)
        if fields_chars(held) + (0 if etag is None else len(etag.tag)) <= MEMO_MAX_CHARS:
            try:
                return _record_memo(status, held, etag, length)
            except TypeError:  # an unhashable header pair (a list): build it uncached
                pass
        return _build_record(status, held, etag, length)

    def to_value(self) -> str:
        """One compact string for the cache (cheap to size, to copy and to serialize anywhere)."""
        return _encode_memo(self) if self._chars <= MEMO_MAX_CHARS else self._encode()

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
        """Decode :meth:`to_value`'s output; anything else (garbage, another version, a field with a
        CR or LF, a count that is no ASCII number ...) is None: a miss. Never raises."""
        if not isinstance(value, str):
            return None
        return _decode_memo(value) if len(value) <= MEMO_MAX_CHARS else cls._decode(value)

    @classmethod
    def _decode(cls, value: str) -> StoredValidator | None:
        if len(value) > _MAX_RECORD_CHARS:
            return None
        parts = value.split(_UNIT)
        if len(parts) != 6 or parts[0] != _RECORD_VERSION:
            return None
        _, e, m, n, v, h = parts
        length = _count(n)
        etag = etag_or_none(e) if e else None
        last_modified = parse_http_date(m) if m else None
        if length is None or (e and (etag is None or str(etag) != e)) or (m and last_modified is None):
            return None
        if etag is None and last_modified is None:
            return None
        vary = tuple(v.split(",")) if v else ()
        if not all(is_token(name) and name.islower() for name in vary):
            return None
        headers: list[tuple[str, str]] = []
        for line in h.split(_RECORD) if h else ():
            name, sep, field_value = line.partition(": ")
            if not sep or not valid_field(name, field_value) or name.lower() not in _VALIDATOR_FIELDS:
                return None
            headers.append((name, field_value))
        return cls(etag, last_modified, tuple(headers), vary, length)

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
    if vary is None or not all(is_token(name) for name in vary):  # Vary: * - no later request can
        return None  # select it (RFC 9111 §4.1); a name that is no token selects nothing either
    if etag is None:
        etag = _as_etag(fields.get("etag"))
    last_modified = parse_http_date(fields.get("last-modified"))
    if etag is None and last_modified is None:
        return None
    if length is None:
        length = _count(fields.get("content-length", "")) or 0
    elif not 0 <= length <= _MAX_COUNT:
        length = 0
    with_tag = _with_validators(list(headers), etag, None)
    kept = tuple((k, v) for k, v in not_modified_headers(with_tag) if k.lower() != "date")
    if not all(valid_field(k, v) for k, v in kept):
        return None  # a field a server could not send (a CR, LF, NUL ...: RFC 9110 §5.5): do not store
    record = StoredValidator(etag, last_modified, kept, vary, length)
    return record if len(record._encode()) <= _MAX_RECORD_CHARS else None


def _encode(record: StoredValidator) -> str:
    return record._encode()


# Each memo keeps only inputs up to MEMO_MAX_CHARS (issue 13), so none holds more than 4,096 short
# records. Revalidations read the same few records over and over: decode each one once (records are
# immutable); each record is stored again and again (one per 200): encode it once; a view answers the
# same headers again and again: build each one's record once.
_decode_memo = functools.lru_cache(maxsize=4096)(StoredValidator._decode)
_encode_memo = functools.lru_cache(maxsize=4096)(_encode)
_record_memo = functools.lru_cache(maxsize=4096)(_build_record)


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
        always served with one; and only what :meth:`from_value` would accept back."""
        if status != 200:
            return None
        held = _with_validators(list(headers), etag, last_modified)
        return cls(status, tuple(held), bytes(body)) if _replayable(held, len(body)) else None

    @property
    def vary(self) -> tuple[str, ...]:
        """The request fields the response varies on (lower-cased, sorted: RFC 9111 §4.1)."""
        return vary_names(get_header(self.headers, "Vary")) or ()

    def to_value(self) -> dict[str, Any]:
        return {"s": self.status, "h": [[k, v] for k, v in self.headers], "b": self.body}

    @classmethod
    def from_value(cls, value: object) -> CachedResponse | None:
        """Decode :meth:`to_value`'s output; anything else is None (a miss), never an exception:
        a status other than 200, a body that is not bytes, a field a server could not send, one
        never replayed (Set-Cookie, a connection field), a Content-Length other than the body's."""
        if not isinstance(value, Mapping):
            return None
        status, raw_headers, body = value.get("s"), value.get("h"), value.get("b")
        if type(status) is not int or status != 200 or not isinstance(body, bytes):
            return None
        if not isinstance(raw_headers, (list, tuple)):
            return None
        headers: list[tuple[str, str]] = []
        for pair in raw_headers:
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                return None
            headers.append((pair[0], pair[1]))
        return cls(status, tuple(headers), body) if _replayable(headers, len(body)) else None


def _replayable(headers: Sequence[tuple[str, str]], length: int) -> bool:
    """Whether a 200 with these fields and a body of ``length`` bytes may be served from the cache
    to another request: every field sendable (RFC 9110 §5.5) and none of :data:`_NOT_REPLAYED`;
    shareable (not no-store / private, RFC 9111 §5.2.2), selectable (Vary not ``*``, each name a
    token), a validator (a valid ETag or Last-Modified) and any Content-Length equal to ``length``."""
    for name, value in headers:
        if not valid_field(name, value) or name.lower() in _NOT_REPLAYED:
            return False
        if name.lower() == "content-length" and _count(value) != length:
            return False
    directives = parse_cache_control(get_header(headers, "Cache-Control"))
    if "no-store" in directives or "private" in directives:
        return False
    vary = vary_names(get_header(headers, "Vary"))
    if vary is None or not all(is_token(name) for name in vary):
        return False
    return (
        etag_or_none(get_header(headers, "ETag")) is not None
        or parse_http_date(get_header(headers, "Last-Modified")) is not None
    )

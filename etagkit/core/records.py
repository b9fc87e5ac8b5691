"""Stored records: a representation's validator and its 304 headers, or a whole cached response.

Each record encodes to a plain value any store can hold and decodes back; anything that does not
decode is ``None`` (a miss), never an exception.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .dates import format_http_date, parse_http_date
from .etag import ETag
from .headers import fields_of, get_header
from .policy import parse_cache_control, vary_names
from .preconditions import not_modified_headers
from .reply import Validator, _as_etag, _no_store, _with_validators

__all__ = ["CachedResponse", "StoredValidator"]

_RECORD_VERSION = "etagkit-validator-1"
_UNIT, _RECORD = "\x1f", "\x1e"  # ASCII unit / record separators: never in a field (RFC 9110 §5.5)
_SEPARATORS = frozenset(_UNIT + _RECORD)


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

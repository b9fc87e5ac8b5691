"""A write's read-back, as plain values: the GET that reads a target's current validator when a
conditional write names none (RFC 9110 §13.1.1, §13.2.1: a false condition must stop the write before
it runs). The faces perform the GET (a WSGI sub-request, an ASGI sub-call); these say what it drops and
what its answer means."""

from __future__ import annotations

from collections.abc import Iterable

from .dates import parse_http_date
from .etag import etag_or_none
from .headers import fields_of
from .reply import Validator

__all__ = ["READ_BACK_DROPPED", "read_back_validator"]

# An unconditional, body-less GET of the write's target: these request fields are dropped from it.
READ_BACK_DROPPED = frozenset(
    {
        "if-match", "if-none-match", "if-modified-since", "if-unmodified-since", "if-range", "range",
        "content-length", "content-type", "transfer-encoding", "content-encoding",
    }
)  # fmt: skip
_GONE = frozenset({404, 410})


def read_back_validator(status: int, headers: Iterable[tuple[str, str]]) -> Validator | None:
    """What a read-back GET's status and headers say of the target's current validator: a 2xx gives
    its ETag / Last-Modified (none: it exists but matches no tag, §13.1.1); 404 / 410 mean no current
    representation; anything else (401, 405, 5xx ...) cannot be read: None, the write runs as is."""
    if status in _GONE:
        return Validator(exists=False)
    if not 200 <= status < 300:
        return None
    fields = fields_of(headers)
    return Validator(etag_or_none(fields.get("etag")), parse_http_date(fields.get("last-modified")), True)

"""The current validator of a target, read back through the WSGI app itself with a GET sub-request.

A conditional write (If-Match, If-Unmodified-Since, If-None-Match on PUT/PATCH/DELETE ...) must be
refused with 412 *before* it runs when its condition is false (RFC 9110 §13.1.1, §13.2.1). When the
application declared no cheap validator and no stored one is held (first write, eviction, store
outage), the only faithful source of the current validator is what a GET of the same target
answers right now: this module asks the app exactly that. The sub-request carries the original
request's target and credentials, no body and no conditions; its body is drained unread (the validator
comes from the tagged app's ETag / Last-Modified headers) and its iterable always closed (PEP 3333).

Status mapping: a 2xx gives the validator; 404 and 410 mean there is no current representation
(``exists=False``: ``If-Match`` fails, ``If-None-Match: *`` passes); anything else (401, 403, 405,
5xx ...) means the state cannot be read, and None is returned so the write proceeds to the app, which
answers as it would without conditions.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from wsgiref.types import WSGIApplication, WSGIEnvironment

from ._pep3333 import close_iterable, status_code
from .core.readback import READ_BACK_DROPPED, read_back_validator
from .core.reply import Validator

__all__ = ["READBACK_KEY", "read_current_validator"]

READBACK_KEY = "etagkit.readback"  # set in the sub-request's environ (adapters skip its metrics)

# the WSGI keys of the request fields the read-back GET drops (core.readback.READ_BACK_DROPPED)
_DROPPED = frozenset(
    name.upper().replace("-", "_") if name in ("content-length", "content-type") else
    "HTTP_" + name.upper().replace("-", "_")
    for name in READ_BACK_DROPPED
)  # fmt: skip


def read_environ(environ: WSGIEnvironment) -> WSGIEnvironment:
    """The environ of an unconditional, body-less GET of the same target, with the same credentials."""
    sub = {key: value for key, value in environ.items() if key not in _DROPPED}
    sub["REQUEST_METHOD"] = "GET"
    sub["wsgi.input"] = io.BytesIO(b"")
    sub[READBACK_KEY] = True
    return sub


def read_current_validator(app: WSGIApplication, environ: WSGIEnvironment) -> Validator | None:
    """Run a GET of ``environ``'s target through ``app`` and return its validator (see module doc).

    ``app`` should be the *tagged* app (the middleware itself, or Flask's ``wsgi_app`` with its
    decorators) so that the ETag read back is byte-for-byte the one a client's GET receives.
    """
    captured: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: object = None
    ) -> Callable[[bytes], object]:
        captured[:] = [(status, list(headers))]
        return lambda data: None

    result: Iterable[bytes] = app(read_environ(environ), start_response)
    try:
        for _ in result:  # drain: a lazily started app calls start_response while iterating
            pass
    finally:
        close_iterable(result)
    if not captured:
        return None
    status, headers = captured[0]
    return read_back_validator(status_code(status), headers)

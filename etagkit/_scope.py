"""Reading an ASGI HTTP scope (the ASGI spec, "HTTP Connection Scope"): the exchange's ``Request``.

Header names and values are bytes; names are lower-cased by servers ("should", so lowered here too)
and values decoded as latin-1, as PEP 3333 does for WSGI. The path is made the same string a WSGI
environ's ``SCRIPT_NAME + PATH_INFO`` holds (UTF-8 bytes as latin-1), so a WSGI and an ASGI process
sharing one store compute the same keys and path tags.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .core.exchange import Request
from .core.headers import Fields
from .core.keys import origin_of

__all__ = ["asgi_request", "raw_headers"]


def asgi_request(scope: Mapping[str, Any], method: str) -> Request:
    """The exchange's :class:`~etagkit.core.exchange.Request` of an ASGI HTTP scope: the fields in
    :class:`~etagkit.core.headers.Fields` (one pass; repeated fields joined, RFC 9110 §5.3), so each
    later lookup (preconditions, credentials, the fields Vary names) is one dict read."""
    headers = Fields()  # every field, empty ones too (a Cookie present at all is a credential)
    for name, value in scope.get("headers") or ():
        key, text = bytes(name).lower().decode("latin-1"), bytes(value).decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    # the decisions read non-empty fields only, as _environ.request_fields does for WSGI
    fields = headers if all(headers.values()) else Fields((k, v) for k, v in headers.items() if v)
    host = headers.get("host", "").split(",", 1)[0]
    if not host:
        server = scope.get("server")
        host = f"{server[0]}:{server[1]}" if server and server[1] is not None else (server or ("",))[0]
    root, path = scope.get("root_path", ""), scope.get("path", "")
    if root and not path.startswith(root):  # servers differ on whether path holds root_path
        path = root + path
    if not path.isascii():
        path = path.encode("utf-8", "surrogateescape").decode("latin-1")
    return Request(  # positional: a NamedTuple built from keywords costs twice as much (per request)
        method,
        path,
        bytes(scope.get("query_string", b"")).decode("latin-1"),  # query
        origin_of(str(scope.get("scheme") or "http"), host),  # origin
        fields,
        headers,
    )


def raw_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """A reply's header list as an ASGI message wants it: lower-cased byte names, byte values."""
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]

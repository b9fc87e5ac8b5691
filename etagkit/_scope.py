"""Reading an ASGI HTTP scope (the ASGI spec, "HTTP Connection Scope"): the exchange's ``Request``.

Header names and values are bytes; names are lower-cased by servers ("should", so lowered here too)
and values decoded as latin-1, as PEP 3333 does for WSGI. The path is made the same string a WSGI
environ's ``SCRIPT_NAME + PATH_INFO`` holds (UTF-8 bytes as latin-1), so a WSGI and an ASGI process
sharing one store compute the same keys and path tags.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from .core.exchange import Request
from .core.headers import Fields, FieldView
from .core.keys import origin_of

__all__ = ["ScopeHeaders", "asgi_request", "raw_headers"]

# The request fields the decisions read (the same ones _environ.request_fields reads from an environ).
_DECISION_FIELDS = frozenset(
    {
        b"if-match", b"if-none-match", b"if-modified-since", b"if-unmodified-since", b"accept",
        b"content-type", b"authorization", b"cookie", b"range", b"if-range",
    }
)  # fmt: skip


class ScopeHeaders(FieldView):
    """Every request header of a scope, looked up case-insensitively (for the fields Vary names);
    decoded only when asked, since most requests never need them."""

    __slots__ = ("_raw",)

    def __init__(self, raw: Iterable[tuple[bytes, bytes]]) -> None:
        self._raw = raw

    def get(self, name: str, default: Any = None) -> Any:
        key = name.lower().encode("latin-1", "replace")
        found = [bytes(v).decode("latin-1") for k, v in self._raw if bytes(k).lower() == key]
        return ", ".join(found) if found else default

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return str(value)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(bytes(k).decode("latin-1").lower() for k, _ in self._raw))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def asgi_request(scope: Mapping[str, Any], method: str) -> Request:
    """The exchange's :class:`~etagkit.core.exchange.Request` of an ASGI HTTP scope."""
    raw = scope.get("headers") or ()
    fields = Fields()
    host = ""
    for name, value in raw:
        key = bytes(name).lower()
        if key in _DECISION_FIELDS:
            text, field = bytes(value).decode("latin-1"), key.decode()
            fields[field] = f"{fields[field]}, {text}" if field in fields else text  # RFC 9110 §5.3
        elif key == b"host" and not host:
            host = bytes(value).decode("latin-1")
    if not host:
        server = scope.get("server")
        host = f"{server[0]}:{server[1]}" if server and server[1] is not None else (server or ("",))[0]
    root, path = scope.get("root_path", ""), scope.get("path", "")
    if root and not path.startswith(root):  # servers differ on whether path holds root_path
        path = root + path
    if not path.isascii():
        path = path.encode("utf-8", "surrogateescape").decode("latin-1")
    return Request(
        method=method,
        path=path,
        query=bytes(scope.get("query_string", b"")).decode("latin-1"),
        origin=origin_of(str(scope.get("scheme") or "http"), host),
        fields=fields,
        headers=ScopeHeaders(raw),
        remote_user=None,
    )


def raw_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """A reply's header list as an ASGI message wants it: lower-cased byte names, byte values."""
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]

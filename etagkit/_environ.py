"""Reading a WSGI environ (PEP 3333): request fields, the origin, and the exchange's ``Request``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .core.exchange import Request
from .core.headers import Fields, FieldView
from .core.keys import origin_of

__all__ = ["EnvironHeaders", "RequestFields", "request_fields", "request_origin", "wsgi_request"]


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
    ("range", "HTTP_RANGE"),
    ("if-range", "HTTP_IF_RANGE"),
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


def request_origin(environ: Mapping[str, Any]) -> str:
    """The request's origin from a WSGI environ (:func:`~etagkit.core.keys.origin_of`): the host is
    Host (``HTTP_HOST``), else ``SERVER_NAME:SERVER_PORT`` (PEP 3333 URL reconstruction)."""
    host = environ.get("HTTP_HOST")
    if not isinstance(host, str) or not host:
        host = f"{environ.get('SERVER_NAME', '')}:{environ.get('SERVER_PORT', '')}"
    return origin_of(str(environ.get("wsgi.url_scheme") or "http"), host)


def wsgi_path(environ: Mapping[str, Any]) -> str:
    """The request's path: ``SCRIPT_NAME`` + ``PATH_INFO`` (PEP 3333 URL reconstruction)."""
    return str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))


def wsgi_request(environ: Mapping[str, Any], method: str, *, keyed: bool = True) -> Request:
    """The exchange's :class:`~etagkit.core.exchange.Request` of a WSGI environ. Without ``keyed``
    (no store: nothing is looked up or stored) only the method and the decision fields are read."""
    if not keyed:
        return Request(method, "", "", "", request_fields(environ))
    user = environ.get("REMOTE_USER")
    return Request(  # positional: a NamedTuple built from keywords costs twice as much (per request)
        method,
        wsgi_path(environ),  # path
        str(environ.get("QUERY_STRING", "")),  # query
        request_origin(environ),  # origin
        request_fields(environ),  # fields
        EnvironHeaders(environ),  # headers
        user if isinstance(user, str) else None,  # remote_user: present at all counts (even empty)
    )

"""Keys and tags of stored representations (stored ETags): pure and stable across processes.

A stored validator is keyed by the representation: method class, origin, path, canonical query, the
request fields named in Vary and the auth scope; the implicit path tag lets a write invalidate every
variant of its target (RFC 9111 §4.4).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Sequence
from urllib.parse import parse_qsl, urlencode

from .._errors import ConfigurationError
from .headers import Fields, HeaderSource, get_header, is_token
from .memo import MEMO_MAX_CHARS

__all__ = [
    "credential_field_names",
    "origin_of",
    "path_tag",
    "read_key",
    "representation_key",
    "shared_lookup_allowed",
    "split_tags",
    "variant_key",
]

_KEY_VERSION = "v2"


# -- stored validators: keys and records (pure) ------------------------------------------------------


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
    # keys repeat (the same targets are read again and again) but the method, path, query and Host
    # are the client's: only short targets are memoized, so unique 100 KB queries are never held
    if len(method) + len(path) + len(query) + len(origin) + (len(scope) if scope else 0) <= MEMO_MAX_CHARS:
        return _key_memo(method, path, query, scope, kind, origin)
    return _key(method, path, query, scope, kind, origin)


def read_key(path: str, query: str, scope: str | None, origin: str, kind: str = "etag") -> str:
    """``representation_key("GET", path, query, scope=scope, origin=origin, kind=kind)``, positional:
    the exchange computes it per request."""
    if len(path) + len(query) + len(origin) + (len(scope) if scope else 0) + 3 <= MEMO_MAX_CHARS:  # + GET
        return _key_memo("GET", path, query, scope, kind, origin)
    return _key("GET", path, query, scope, kind, origin)


def _key(method: str, path: str, query: str, scope: str | None, kind: str, origin: str) -> str:  # noqa: PLR0917
    method = method.upper()
    method_class = "GET" if method in ("GET", "HEAD") else method
    pairs = sorted(parse_qsl(query, keep_blank_values=True), key=_name) if query else []
    return _digest(kind, method_class, origin, path, urlencode(pairs), scope)


_key_memo = functools.lru_cache(maxsize=4096)(_key)


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


def path_tag(path: str, origin: str = "") -> str:
    """The implicit tag of every validator stored for ``origin`` + ``path``; a successful unsafe
    request to that target invalidates it (RFC 9111 §4.4: unsafe requests invalidate the target
    URI), and only on that origin (:func:`request_origin`)."""
    if len(path) + len(origin) <= MEMO_MAX_CHARS:  # short targets only (see representation_key)
        return _tag_memo(path, origin)
    return _tag(path, origin)


def _tag(path: str, origin: str) -> str:
    target = origin + path
    return "etagkit:path:" + hashlib.sha256(target.encode("utf-8", "surrogatepass")).hexdigest()[:24]


_tag_memo = functools.lru_cache(maxsize=4096)(_tag)


_DEFAULT_PORTS = {"http": "80", "https": "443"}


def origin_of(scheme: str, host: str, port: int | str | None = None) -> str:
    """A request's origin, ``scheme://host[:port]``: lower-cased, the scheme's default port dropped
    (RFC 9110 §4.2.3 normalization). ``host`` is the Host field (it may carry the port) or a server
    name; ``port`` is added when ``host`` has none. Part of every key and path tag, so one app
    serving several hosts never answers one host's request with another's entries."""
    if port is None and len(host) <= _MAX_HOST:  # hosts repeat: memoized, bounded in bytes
        return _origin_memo(scheme, host)
    return _origin(scheme, host, port)


_MAX_HOST = 255  # a DNS name's limit (RFC 1035 §2.3.4); longer Host fields are not memoized


def _origin(scheme: str, host: str, port: int | str | None = None) -> str:
    scheme = scheme.lower()
    host = host.strip(" \t").lower()
    if port is not None and ":" not in host.rpartition("]")[2]:
        host = f"{host}:{port}"
    name, colon, number = host.rpartition(":")
    if colon and "]" not in number and (not number or number == _DEFAULT_PORTS.get(scheme)):
        host = name
    return f"{scheme}://{host}"


_origin_memo = functools.lru_cache(maxsize=1024)(_origin)


_CREDENTIAL_FIELDS = ("authorization", "cookie")  # always credentials (RFC 9110 §11.6.2, RFC 6265)


def credential_field_names(names: Iterable[str]) -> frozenset[str]:
    """The setting of further credential header fields (e.g. ``X-API-Key``) as lower-cased names, for
    :func:`shared_lookup_allowed`. Raises ConfigurationError for a name that is no field name (a
    token, RFC 9110 §5.1): a mistake at construction, never at request time."""
    if isinstance(names, str):
        raise ConfigurationError(f"credential fields: a list of field names, not the string {names!r}")
    checked = set()
    for name in names:
        if not is_token(name):
            raise ConfigurationError(f"credential fields: {name!r} is not a header field name (a token)")
        checked.add(name.lower())
    return frozenset(checked)


def shared_lookup_allowed(
    request_headers: HeaderSource,
    scope: str | None,
    *,
    credential_fields: frozenset[str] = frozenset(),
    remote_user: str | None = None,
) -> bool:
    """Whether a stored validator or response may answer this request: never a request that carries
    credentials unless the route declared its scope (then the scope is part of the key).

    Credentials are Authorization and Cookie, any of ``credential_fields`` (lower-cased names, see
    :func:`credential_field_names`) and an authenticated user the server established
    (``remote_user``: WSGI's ``REMOTE_USER``, RFC 3875 §4.1.11, set by mod_wsgi or an auth proxy;
    present at all, even empty, counts). A shared cache must not reuse a response to an
    authenticated request for another user (RFC 9111 §3.5).
    """
    if scope is not None:
        return True
    if remote_user is not None:
        return False
    if isinstance(request_headers, Fields):
        if "authorization" in request_headers or "cookie" in request_headers:
            return False
        return not credential_fields or not any(name in request_headers for name in credential_fields)
    return not any(
        get_header(request_headers, name) is not None for name in (*_CREDENTIAL_FIELDS, *credential_fields)
    )


def split_tags(value: str | None) -> tuple[str, ...]:
    """Tags from a ``Cache-Tag`` style header: separated by spaces and/or commas, de-duplicated."""
    if not value:
        return ()
    return tuple(dict.fromkeys(t for t in value.replace(",", " ").split() if t and t != "*"))


def _digest(kind: str, *parts: str | None) -> str:
    # length-prefixed parts (None as "-"): no two part lists share an encoding
    raw = "|".join("-" if p is None else f"{len(p)}:{p}" for p in (_KEY_VERSION, kind, *parts))
    return f"etagkit:{kind}:" + hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:40]

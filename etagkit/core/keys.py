"""Keys and tags of stored representations (stored ETags): pure and stable across processes.

A stored validator is keyed by the representation: method class, origin, path, canonical query, the
request fields named in Vary and the auth scope; the implicit path tag lets a write invalidate every
variant of its target (RFC 9111 §4.4).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from urllib.parse import parse_qsl, urlencode

from .headers import Fields, HeaderSource, get_header

__all__ = [
    "origin_of",
    "path_tag",
    "representation_key",
    "shared_lookup_allowed",
    "split_tags",
    "variant_key",
]

_KEY_VERSION = "v2"


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


def origin_of(scheme: str, host: str, port: int | str | None = None) -> str:
    """A request's origin, ``scheme://host[:port]``: lower-cased, the scheme's default port dropped
    (RFC 9110 §4.2.3 normalization). ``host`` is the Host field (it may carry the port) or a server
    name; ``port`` is added when ``host`` has none. Part of every key and path tag, so one app
    serving several hosts never answers one host's request with another's entries."""
    scheme = scheme.lower()
    host = host.strip(" \t").lower()
    if port is not None and ":" not in host.rpartition("]")[2]:
        host = f"{host}:{port}"
    name, colon, number = host.rpartition(":")
    if colon and "]" not in number and (not number or number == _DEFAULT_PORTS.get(scheme)):
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


def split_tags(value: str | None) -> tuple[str, ...]:
    """Tags from a ``Cache-Tag`` style header: separated by spaces and/or commas, de-duplicated."""
    if not value:
        return ()
    return tuple(dict.fromkeys(t for t in value.replace(",", " ").split() if t and t != "*"))


def _digest(kind: str, *parts: str | None) -> str:
    # length-prefixed parts (None as "-"): no two part lists share an encoding
    raw = "|".join("-" if p is None else f"{len(p)}:{p}" for p in (_KEY_VERSION, kind, *parts))
    return f"etagkit:{kind}:" + hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:40]

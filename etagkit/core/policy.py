"""Cache-Control and Vary: a policy object rendered to header values, and request parsing. Pure.

RFC 9111 §5.2 defines the directives; §5.2.3 says unknown ones are ignored. The policy refuses
contradictions (``public`` with ``private``, ``immutable`` without a lifetime ...) at construction.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .._errors import ConfigurationError
from .headers import TOKEN, split_list

__all__ = [
    "DEFAULT_POLICY",
    "CacheControl",
    "ConditionalPolicy",
    "RequestCacheControl",
    "delta_seconds",
    "merge_vary",
    "parse_cache_control",
    "vary_names",
]

_MAX_DIRECTIVES = 64
# cache-directive = token [ "=" ( token / quoted-string ) ]   (RFC 9111 §5.2; OWS around "=" tolerated)
_DIRECTIVE = re.compile(rf'({TOKEN})(?:[ \t]*=[ \t]*(?:({TOKEN})|"((?:[^"\\]|\\.)*)"))?', re.ASCII)
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class ConditionalPolicy:
    """How request preconditions are read and evaluated; the default is the RFC 9110 baseline.

    Each flag switches to an alternative reading that established servers use (the names follow
    the conformance vectors): ``strict_field`` (one malformed member voids the whole If-Match /
    If-None-Match list, so it matches nothing), ``permissive`` (bare unquoted tokens and lower-case
    ``w/`` accepted as entity-tags), ``request_no_cache_forces_200`` (a request ``Cache-Control:
    no-cache`` turns a 304 into a full response, like jshttp/fresh), ``no_etag_means_no_representation``
    (a resource without an ETag counts as absent for ``*``, like Django) and ``accept_ie_length_suffix``
    (strip old Internet Explorer's ``; length=N`` from If-Modified-Since). ``max_members`` and
    ``max_field_length`` cap the work spent on a stranger's list; members past a cap are not
    considered, which can only turn a match into a non-match (a 200 instead of a 304, a 412 instead
    of a write): the safe direction.
    """

    strict_field: bool = False
    permissive: bool = False
    request_no_cache_forces_200: bool = False
    no_etag_means_no_representation: bool = False
    accept_ie_length_suffix: bool = False
    max_members: int = 256
    max_field_length: int = 16384

    def __post_init__(self) -> None:
        for name in ("max_members", "max_field_length"):
            limit = getattr(self, name)
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise ConfigurationError(f"{name} must be a positive int, not {limit!r}")


DEFAULT_POLICY = ConditionalPolicy()
"""The RFC 9110 baseline, shared so hot paths can recognise it by identity."""


def parse_cache_control(value: str | None) -> dict[str, str | None]:
    """Parse a Cache-Control field value into ``{directive: argument-or-None}`` (RFC 9111 §5.2).

    Names are lower-cased; a quoted argument is unescaped; a member that does not parse is skipped;
    the first occurrence of a directive wins; at most 64 members are read. Never raises; linear time.
    """
    result: dict[str, str | None] = {}
    if not value:
        return result
    for member in split_list(value, limit=_MAX_DIRECTIVES, escapes=True):
        match = _DIRECTIVE.fullmatch(member)
        if match is None:
            continue
        token, quoted = match.group(2, 3)
        arg = _QUOTED_PAIR.sub(r"\1", quoted) if quoted is not None else token
        result.setdefault(match.group(1).lower(), arg)
    return result


def delta_seconds(value: str | None) -> int | None:
    """A delta-seconds argument (RFC 9111 §1.2.2) or None; huge values saturate at 2**31."""
    if value is None or not value.isascii() or not value.isdigit():
        return None
    digits = value.lstrip("0")
    return 2**31 if len(digits) > 10 else min(int(digits or "0"), 2**31)


@dataclass(frozen=True, slots=True)
class CacheControl:
    """A response's caching policy, rendered by ``str()`` to a Cache-Control value (RFC 9111 §5.2.2).

    The default (no arguments) is ``no-cache``: caches may store but must revalidate every use,
    which is exactly what cheap ETag revalidation is for.
    """

    max_age: int | None = None
    s_maxage: int | None = None
    public: bool = False
    private: bool = False
    no_cache: bool = False
    no_store: bool = False
    must_revalidate: bool = False
    proxy_revalidate: bool = False
    no_transform: bool = False
    immutable: bool = False
    stale_while_revalidate: int | None = None
    stale_if_error: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_age", "s_maxage", "stale_while_revalidate", "stale_if_error"):
            seconds = getattr(self, name)
            if seconds is not None and (
                isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 0
            ):
                raise ConfigurationError(f"{name} must be a non-negative int, not {seconds!r}")
        if self.public and self.private:
            raise ConfigurationError("a response cannot be both public and private")
        if self.no_store and (self.max_age or self.s_maxage or self.immutable or self.public):
            raise ConfigurationError("no-store contradicts max-age / s-maxage / immutable / public")
        if self.immutable and not self.max_age:
            raise ConfigurationError("immutable needs a max_age > 0 to mean anything")

    def __str__(self) -> str:
        parts: list[str] = []
        if self.public:
            parts.append("public")
        if self.private:
            parts.append("private")
        if self.no_store:
            parts.append("no-store")
        if self.no_cache or not (self.max_age is not None or self.s_maxage is not None or self.no_store):
            parts.append("no-cache")
        for name, seconds in (
            ("max-age", self.max_age),
            ("s-maxage", self.s_maxage),
            ("stale-while-revalidate", self.stale_while_revalidate),
            ("stale-if-error", self.stale_if_error),
        ):
            if seconds is not None:
                parts.append(f"{name}={seconds}")
        for name, flag in (
            ("must-revalidate", self.must_revalidate),
            ("proxy-revalidate", self.proxy_revalidate),
            ("no-transform", self.no_transform),
            ("immutable", self.immutable),
        ):
            if flag:
                parts.append(name)
        return ", ".join(parts)

    @classmethod
    def parse(cls, value: str | None) -> CacheControl:
        """Read a response Cache-Control value into a policy; unknown or invalid parts dropped."""
        d = parse_cache_control(value)
        no_store = "no-store" in d
        public = "public" in d and "private" not in d and not no_store
        max_age = None if no_store else delta_seconds(d.get("max-age"))
        return cls(
            max_age=max_age,
            s_maxage=None if no_store else delta_seconds(d.get("s-maxage")),
            public=public,
            private="private" in d,
            no_cache="no-cache" in d,
            no_store=no_store,
            must_revalidate="must-revalidate" in d,
            proxy_revalidate="proxy-revalidate" in d,
            no_transform="no-transform" in d,
            immutable="immutable" in d and bool(max_age) and not no_store,
            stale_while_revalidate=delta_seconds(d.get("stale-while-revalidate")),
            stale_if_error=delta_seconds(d.get("stale-if-error")),
        )


@dataclass(frozen=True, slots=True)
class RequestCacheControl:
    """The directives of a request's Cache-Control (RFC 9111 §5.2.1); invalid arguments dropped.

    ``max_stale`` without an argument means "any staleness" and reads as 2**31 seconds.
    """

    no_cache: bool = False
    no_store: bool = False
    max_age: int | None = None
    max_stale: int | None = None
    min_fresh: int | None = None
    no_transform: bool = False
    only_if_cached: bool = False

    @classmethod
    def parse(cls, value: str | None) -> RequestCacheControl:
        """Read a request Cache-Control field value; never raises."""
        d = parse_cache_control(value)
        max_stale = d.get("max-stale")
        return cls(
            no_cache="no-cache" in d,
            no_store="no-store" in d,
            max_age=delta_seconds(d.get("max-age")),
            max_stale=None
            if "max-stale" not in d
            else 2**31
            if max_stale is None
            else delta_seconds(max_stale),
            min_fresh=delta_seconds(d.get("min-fresh")),
            no_transform="no-transform" in d,
            only_if_cached="only-if-cached" in d,
        )


def merge_vary(*values: str | Iterable[str] | None) -> str:
    """Merge Vary values into one, case-insensitively de-duplicated, ``*`` absorbing all (§12.5.5)."""
    seen: dict[str, str] = {}
    for value in values:
        if value is None:
            continue
        items = value.split(",") if isinstance(value, str) else value
        for item in items:
            name = item.strip(" \t")
            if not name:
                continue
            if name == "*":
                return "*"
            seen.setdefault(name.lower(), name)
    return ", ".join(seen.values())


def vary_names(value: str | None) -> tuple[str, ...] | None:
    """The request field names a ``Vary`` value names: lower-cased, de-duplicated and sorted, so equal
    sets give equal keys; None for ``*``, which no later request can match (RFC 9111 §4.1)."""
    names: set[str] = set()
    for item in (value or "").split(","):
        name = item.strip(" \t").lower()
        if name == "*":
            return None
        if name:
            names.add(name)
    return tuple(sorted(names))

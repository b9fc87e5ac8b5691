"""Cache-Control and Vary: a policy object rendered to header values, and request parsing. Pure.

RFC 9111 §5.2 defines the directives; §5.2.3 says unknown ones are ignored. The policy refuses
contradictions (``public`` with ``private``, ``immutable`` without a lifetime ...) at construction.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ._errors import ConfigurationError

__all__ = ["CacheControl", "delta_seconds", "merge_vary", "parse_cache_control"]

_MAX_DIRECTIVES = 64
# token = 1*tchar  (RFC 9110 §5.6.2)
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
# cache-directive = token [ "=" ( token / quoted-string ) ]   (RFC 9111 §5.2)
_DIRECTIVE = re.compile(
    rf'[ \t]*({_TOKEN})[ \t]*(?:=[ \t]*(?:({_TOKEN})|"((?:[^"\\]|\\.)*)"))?[ \t]*(?:,|$)',
    re.ASCII,
)


def parse_cache_control(value: str | None) -> dict[str, str | None]:
    """Parse a Cache-Control field value into ``{directive: argument-or-None}`` (RFC 9111 §5.2).

    Names are lower-cased; a quoted argument is unescaped; a member that does not parse is skipped
    up to the next comma; the first occurrence of a directive wins. Never raises.
    """
    result: dict[str, str | None] = {}
    if not value:
        return result
    pos, end = 0, len(value)
    while pos < end and len(result) < _MAX_DIRECTIVES:
        match = _DIRECTIVE.match(value, pos)
        if match is None or match.end() == pos:
            comma = value.find(",", pos)  # garbage member: skip it
            if comma < 0:
                break
            pos = comma + 1
            continue
        name = match.group(1).lower()
        if match.group(2) is not None:
            arg: str | None = match.group(2)
        elif match.group(3) is not None:
            arg = re.sub(r"\\(.)", r"\1", match.group(3))
        else:
            arg = None
        result.setdefault(name, arg)
        pos = match.end()
    return result


def delta_seconds(value: str | None) -> int | None:
    """A delta-seconds argument (RFC 9111 §1.2.2) or None; huge values saturate at 2**31."""
    if value is None or not value.isascii() or not value.isdigit():
        return None
    return min(int(value), 2**31)


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

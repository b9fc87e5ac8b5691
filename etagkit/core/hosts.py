"""Allowed hosts: which Host values a deployment answers from stored validators and cached responses.

Every unknown Host would otherwise get its own keys and path-tag marks (issue 13: 30,000 random Hosts
made 60,000 Redis keys). The patterns mean what Django's ``ALLOWED_HOSTS`` means: an exact name
(case-insensitive), a leading dot for a domain and all its subdomains (``.example.com``), or ``*``
for any; the port is ignored, and a Host that is not a valid host name or IP literal matches nothing.
Pure: the adapters pass the request's Host (or origin) and their setting.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .._errors import ConfigurationError

__all__ = ["AllowedHosts", "host_allowed", "host_name"]

# Host = uri-host [ ":" port ]  (RFC 9110 §7.2); uri-host here: a reg-name of letters, digits, dots and
# hyphens, or an IPv6 literal in brackets (RFC 3986 §3.2.2); port = *DIGIT.
_HOST = re.compile(r"(?P<name>[a-z0-9.-]+|\[[a-f0-9]*:[a-f0-9.:]+\])(?::[0-9]*)?", re.ASCII)
_MAX_HOST = 255 + 6  # a DNS name (RFC 1035 §2.3.4) and a port


@dataclass(frozen=True, slots=True)
class AllowedHosts:
    """A compiled allowed-hosts setting: exact names, dot-prefixed domains, or any host (``*``)."""

    names: frozenset[str] = frozenset()
    domains: tuple[str, ...] = ()  # each with its leading dot: ".example.com"
    any_host: bool = False

    @classmethod
    def of(cls, patterns: Iterable[str]) -> AllowedHosts:
        """Compile a setting such as ``["example.com", ".example.org", "localhost"]``.

        Raises ConfigurationError for a bare string (a common slip for a one-item list) and for a
        pattern that is not a non-empty string.
        """
        if isinstance(patterns, str):
            raise ConfigurationError(f"allowed hosts: a list of host names, not the string {patterns!r}")
        names: set[str] = set()
        domains: list[str] = []
        any_host = False
        for pattern in patterns:
            if not isinstance(pattern, str) or not pattern.strip():
                raise ConfigurationError(f"allowed hosts: {pattern!r} is not a host name pattern")
            name = pattern.strip().lower()
            if name == "*":
                any_host = True
            elif name.startswith("."):
                domains.append(name)
                names.add(name[1:])
            else:
                names.add(name)
        return cls(frozenset(names), tuple(domains), any_host)

    def allows(self, origin_or_host: str) -> bool:
        """Whether a request for ``origin_or_host`` (a Host field value such as ``www.example.com:8080``
        or an origin such as ``https://www.example.com``) is for an allowed host."""
        if self.any_host:
            return True
        name = host_name(origin_or_host)
        if name is None:
            return False
        return name in self.names or name.endswith(self.domains)


def host_name(origin_or_host: str) -> str | None:
    """The lower-cased host name of a Host value or origin, without port or trailing dot; None when
    it is not a valid host (RFC 9110 §7.2, RFC 3986 §3.2.2)."""
    value = origin_or_host.rpartition("://")[2] if "://" in origin_or_host else origin_or_host
    if len(value) > _MAX_HOST:
        return None
    match = _HOST.fullmatch(value.lower())
    if match is None:
        return None
    name = match["name"]
    name = name[:-1] if name.endswith(".") else name
    return name or None


def host_allowed(origin_or_host: str, allowed_hosts: AllowedHosts | Iterable[str]) -> bool:
    """Whether ``origin_or_host`` is one of ``allowed_hosts`` (Django ``ALLOWED_HOSTS`` semantics).

    Adapters compile their setting once with :meth:`AllowedHosts.of` and pass that; a plain list is
    compiled on each call.
    """
    hosts = allowed_hosts if isinstance(allowed_hosts, AllowedHosts) else AllowedHosts.of(allowed_hosts)
    return hosts.allows(origin_or_host)

"""Checks of settings, shared by the cache classes, the breaker and the adapters (their constructors,
decorators and ``init_app``): a mistake raises ConfigurationError when the object is built, not a
TypeError (or a busy loop, or a silent no-op) at the first request."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ._errors import ConfigurationError

if TYPE_CHECKING:
    from .core.etag import HashAlgorithm
    from .core.hosts import AllowedHosts

__all__ = [
    "algorithm",
    "allowed_hosts",
    "cache_control",
    "callable_or_none",
    "credential_fields",
    "flag",
    "number",
    "optional_flag",
    "positive_int",
]


def positive_int(name: str, value: object, *, minimum: int = 1) -> int:
    """``value`` if it is an int >= ``minimum`` (not a bool); else ConfigurationError naming the setting."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} must be an int >= {minimum}, not {value!r}")
    return value


def flag(name: str, value: object) -> bool:
    """``value`` if it is True or False (not a truthy string or 1); else ConfigurationError."""
    if not isinstance(value, bool):
        raise ConfigurationError(f"{name} must be True or False, not {value!r}")
    return value


def optional_flag(name: str, value: object) -> bool | None:
    """``value`` if it is None, True or False (None: decided elsewhere); else ConfigurationError."""
    return None if value is None else flag(name, value)


def callable_or_none(name: str, value: object) -> None:
    """Nothing if ``value`` is None or callable; else ConfigurationError naming the setting."""
    if value is not None and not callable(value):
        raise ConfigurationError(f"{name} must be callable, not {value!r}")


def number(name: str, value: object, *, positive: bool = False) -> float:
    """``value`` as a float if it is a finite int or float >= 0 (> 0 if ``positive``); bools, strings,
    NaN and infinities raise ConfigurationError naming the setting."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not (value > 0 if positive else value >= 0)
    ):
        raise ConfigurationError(
            f"{name} must be a finite number {'> 0' if positive else '>= 0'}, not {value!r}"
        )
    return float(value)


def cache_control(name: str, value: object) -> str | None:
    """A route's Cache-Control setting as the header value it sends: a ``CacheControl``, or a string
    whose members are all well-formed directives (RFC 9111 §5.2); anything else raises."""
    from .core.headers import split_list
    from .core.policy import CacheControl, parse_cache_control

    if value is None or isinstance(value, CacheControl):
        return None if value is None else str(value)
    if not isinstance(value, str) or any(not (" " <= c <= "~" or c == "\t") for c in value):
        raise ConfigurationError(f"{name} must be a CacheControl or a header value, not {value!r}")
    members = list(split_list(value, limit=64, escapes=True))
    if not members or len(parse_cache_control(value)) != len(members):
        raise ConfigurationError(f"{name} {value!r} is not a list of Cache-Control directives")
    return value


def allowed_hosts(value: object) -> AllowedHosts | None:
    """An allowed-hosts setting compiled once (None: any host); a bad pattern raises."""
    from .core.hosts import AllowedHosts

    return None if value is None else AllowedHosts.of(value)  # type: ignore[arg-type]


def credential_fields(value: object) -> frozenset[str]:
    """Further request fields that carry credentials (e.g. ``["X-API-Key"]``), lower-cased."""
    from .core.keys import credential_field_names

    return credential_field_names(value or ())  # type: ignore[arg-type]


def algorithm(name: str, value: object) -> HashAlgorithm:
    """A hash algorithm for generated ETags, checked now: an unknown name is a ConfigurationError,
    and one whose library is missing raises the ImportError naming the ``fast`` extra here, not at
    the first request."""
    from typing import get_args

    from .core.etag import HashAlgorithm, generate_etag

    if value not in get_args(HashAlgorithm):
        raise ConfigurationError(f"{name} must be one of {get_args(HashAlgorithm)}, not {value!r}")
    generate_etag(b"", algorithm=value)  # type: ignore[arg-type]
    return value  # type: ignore[return-value]

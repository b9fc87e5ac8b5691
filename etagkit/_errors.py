"""The exception hierarchy: one root, each subclass also a matching builtin."""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "EtagkitError",
    "InvalidETagError",
    "SerializationError",
    "StoreUnavailableError",
]


class EtagkitError(Exception):
    """Root of every exception etagkit raises on purpose."""


class InvalidETagError(EtagkitError, ValueError):
    """A string is not an RFC 9110 §8.8.3 entity-tag."""


class ConfigurationError(EtagkitError, ValueError):
    """A setting given at construction or ``init_app`` time is invalid."""


class SerializationError(EtagkitError, ValueError):
    """A cached value could not be encoded, or stored bytes are not etagkit's (or fail their HMAC)."""


class StoreUnavailableError(EtagkitError, ConnectionError):
    """The remote store could not be reached (or the circuit breaker is open)."""

"""etagkit: cheap, correct HTTP revalidation for any WSGI application.

The core (ETags, RFC 9110 preconditions, Cache-Control policy) is pure and imports no framework;
``import etagkit`` never imports flask, werkzeug, redis or httpx. Adapters live in submodules:
``etagkit.wsgi``, ``etagkit.flask``, ``etagkit.client``, ``etagkit.cache.redis``.
"""

from __future__ import annotations

from ._dates import format_http_date, parse_http_date
from ._errors import (
    ConfigurationError,
    EtagkitError,
    InvalidETagError,
    SerializationError,
    StoreUnavailableError,
)
from ._policy import CacheControl, merge_vary, parse_cache_control

__version__ = "0.1.0"

__all__ = [
    "CacheControl",
    "ConfigurationError",
    "EtagkitError",
    "InvalidETagError",
    "SerializationError",
    "StoreUnavailableError",
    "__version__",
    "format_http_date",
    "merge_vary",
    "parse_cache_control",
    "parse_http_date",
]

"""etagkit: cheap, correct HTTP revalidation for any Python web app.

The sans-I/O core (``etagkit.core``: ETags, RFC 9110 preconditions, Cache-Control, keys, records) is
pure; ``import etagkit`` loads no framework, client or I/O module (not flask, werkzeug, redis, httpx,
asyncio or socket). ``TagCache`` and ``MemoryStore`` are loaded on first use. Faces live in
submodules: ``etagkit.wsgi``, ``etagkit.flask``, ``etagkit.flow`` (custom servers),
``etagkit.client``, ``etagkit.cache.redis``.
"""

from __future__ import annotations

from ._environ import request_origin
from ._errors import (
    ConfigurationError,
    EtagkitError,
    InvalidETagError,
    SerializationError,
    StoreUnavailableError,
)
from ._validators import ValidatorStore
from .core.dates import format_http_date, parse_http_date
from .core.etag import ETag, etag_from_version, generate_etag, parse_etags
from .core.keys import path_tag, representation_key
from .core.policy import CacheControl, ConditionalPolicy, RequestCacheControl, merge_vary, parse_cache_control
from .core.preconditions import Outcome, evaluate, not_modified_headers, range_applies, requires_precondition
from .core.records import StoredValidator
from .core.reply import Reply, Validator, check_preconditions, conditional_response

__version__ = "0.1.0"

__all__ = [
    "CacheControl",
    "ConditionalPolicy",
    "ConfigurationError",
    "ETag",
    "EtagkitError",
    "InvalidETagError",
    "MemoryStore",
    "Outcome",
    "Reply",
    "RequestCacheControl",
    "SerializationError",
    "StoreUnavailableError",
    "StoredValidator",
    "TagCache",
    "Validator",
    "ValidatorStore",
    "__version__",
    "check_preconditions",
    "conditional_response",
    "etag_from_version",
    "evaluate",
    "format_http_date",
    "generate_etag",
    "merge_vary",
    "not_modified_headers",
    "parse_cache_control",
    "parse_etags",
    "parse_http_date",
    "path_tag",
    "range_applies",
    "representation_key",
    "request_origin",
    "requires_precondition",
]


def __getattr__(name: str) -> object:
    """``etagkit.TagCache`` / ``etagkit.MemoryStore``: the cache package (which loads asyncio) is
    imported on first use, so ``import etagkit`` stays free of I/O modules."""
    if name in ("MemoryStore", "TagCache"):
        from . import cache

        return getattr(cache, name)
    raise AttributeError(f"module 'etagkit' has no attribute {name!r}")

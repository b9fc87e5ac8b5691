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
from ._etag import ETag, etag_from_version, generate_etag, parse_etags
from ._policy import CacheControl, ConditionalPolicy, RequestCacheControl, merge_vary, parse_cache_control
from ._preconditions import Outcome, evaluate, not_modified_headers, range_applies, requires_precondition
from ._respond import (
    Reply,
    StoredValidator,
    Validator,
    ValidatorStore,
    check_preconditions,
    conditional_response,
    path_tag,
    representation_key,
    request_origin,
)
from .cache import MemoryStore, TagCache

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

"""The common revalidation's fast lane, for the WSGI faces (issue 15).

Most conditional traffic is one shape: an anonymous GET/HEAD whose only precondition is
If-None-Match, on a route whose validators are stored. For it the lane reads the stored record and
answers with the record's prebuilt 304 (:func:`etagkit.core.revalidation.stored_304`, the same answer
the exchange gives) without building a request, an exchange or the decision fields. It decides
nothing of its own: it declines (the face then drives the exchange) whenever anything else could
matter, and it hands the record it read to the exchange so a non-matching revalidation is not read
twice. ``tests/test_lane.py`` checks that the lane and the exchange agree on every request.
"""

from __future__ import annotations

from wsgiref.types import WSGIEnvironment

from ._driver import UNREAD
from ._environ import EnvironHeaders, request_origin, wsgi_path
from ._readback import READBACK_KEY
from ._validators import ValidatorStore
from .core.exchange import Answer, Settings
from .core.keys import read_key
from .core.memo import MEMO_MAX_CHARS
from .core.records import StoredValidator
from .core.revalidation import stored_304, stored_route

__all__ = ["UNREAD", "RevalidationLane"]

_READS = frozenset({"GET", "HEAD"})
# the environ values a key is computed from (request_origin, wsgi_path, the query)
_TARGET = (
    "wsgi.url_scheme",
    "HTTP_HOST",
    "SERVER_NAME",
    "SERVER_PORT",
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
)
_KEYS = 4096  # memoized targets per lane (each at most MEMO_MAX_CHARS long)

# Present at all, they send the request to the exchange: other preconditions (RFC 9110 §13.2.2 puts
# If-Match / If-Unmodified-Since first), credentials (RFC 9111 §3.5), a write's read-back.
_DECLINE = (
    "HTTP_IF_MATCH",
    "HTTP_IF_UNMODIFIED_SINCE",
    "HTTP_AUTHORIZATION",
    "HTTP_COOKIE",
    "REMOTE_USER",
    READBACK_KEY,
)


class RevalidationLane:
    """The lane of one face: its store, and what sends a request to the exchange instead."""

    __slots__ = ("_decline", "_hosts", "_keys", "store")

    def __init__(self, settings: Settings, store: ValidatorStore) -> None:
        self.store = store
        self._hosts = settings.allowed_hosts
        self._keys: dict[tuple[object, ...], str | None] = {}  # target -> its key (None: host refused)
        # configured credential fields too, as environ keys
        self._decline = (*_DECLINE, *map(EnvironHeaders._key, sorted(settings.credential_fields)))

    @staticmethod
    def takes(settings: Settings, *, has_store: bool, has_tags: bool, cheap: bool, scoped: bool) -> bool:
        """Whether a route's requests may take the lane: its validators are stored
        (:func:`~etagkit.core.revalidation.stored_route`), and it has neither a cheap validator
        (``cheap``) nor a scope callable (``scoped``): the exchange handles those."""
        return not cheap and not scoped and stored_route(settings, has_store=has_store, has_tags=has_tags)

    def read(self, environ: WSGIEnvironment, route: str) -> tuple[Answer | None, StoredValidator | None]:
        """``(304 answer, record)`` when the stored record matches; ``(None, record)`` when the lane
        read a record (or a miss: None) that does not answer; ``(None, UNREAD)`` when it declined."""
        inm = environ.get("HTTP_IF_NONE_MATCH")
        if inm.__class__ is not str or not inm or environ.get("REQUEST_METHOD") not in _READS:
            return None, UNREAD
        for name in self._decline:
            if name in environ:
                return None, UNREAD
        # what the key is made of, as the server gave it: targets repeat, so their keys are memoized
        target = tuple(map(environ.get, _TARGET))
        try:
            key = self._keys[target]
        except KeyError:
            key = self._key(environ, target)
        except TypeError:  # a value no dict can hold (not a str): computed every time
            key = self._key(environ, None)
        if key is None:
            return None, UNREAD
        record = self.store.lookup(key, EnvironHeaders(environ), route)
        if record is None:
            return None, None
        return stored_304(record, inm), record

    def _key(self, environ: WSGIEnvironment, target: tuple[object, ...] | None) -> str | None:
        """The request's representation key, as the exchange computes it (None: a host stored
        answers are not kept for); memoized for short targets only, in a bounded dict."""
        origin = request_origin(environ)
        key = None
        if self._hosts is None or self._hosts.allows(origin):
            key = read_key(wsgi_path(environ), str(environ.get("QUERY_STRING", "")), None, origin)
        if target is not None and sum(len(v) if isinstance(v, str) else 0 for v in target) <= MEMO_MAX_CHARS:
            if len(self._keys) >= _KEYS:
                self._keys.clear()
            self._keys[target] = key
        return key

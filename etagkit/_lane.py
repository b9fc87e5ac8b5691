"""The common revalidation's fast lane, for the WSGI faces (issue 15).

Most conditional traffic is one shape: an anonymous GET/HEAD whose only precondition is
If-None-Match, on a route whose validators are stored. For it the lane reads the stored record and
answers with the record's prebuilt 304 (:func:`etagkit.core.exchange.stored_304`, the same answer
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
from .core.records import StoredValidator
from .core.revalidation import stored_304, stored_route

__all__ = ["UNREAD", "RevalidationLane"]

_READS = frozenset({"GET", "HEAD"})

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

    __slots__ = ("_decline", "_hosts", "store")

    def __init__(self, settings: Settings, store: ValidatorStore) -> None:
        self.store = store
        self._hosts = settings.allowed_hosts
        # configured credential fields too, as environ keys
        self._decline = (*_DECLINE, *map(EnvironHeaders._key, sorted(settings.credential_fields)))

    @staticmethod
    def takes(settings: Settings, *, store: object, validator: object, scope: object, tags: bool) -> bool:
        """Whether a route's requests may take the lane: its validators are stored
        (:func:`~etagkit.core.exchange.stored_route`), with no cheap validator and no scope callable
        (those the exchange handles)."""
        return (
            validator is None
            and scope is None
            and stored_route(settings, has_store=store is not None, has_tags=tags)
        )

    def read(self, environ: WSGIEnvironment, route: str) -> tuple[Answer | None, StoredValidator | None]:
        """``(304 answer, record)`` when the stored record matches; ``(None, record)`` when the lane
        read a record (or a miss: None) that does not answer; ``(None, UNREAD)`` when it declined."""
        inm = environ.get("HTTP_IF_NONE_MATCH")
        if inm.__class__ is not str or not inm or environ.get("REQUEST_METHOD") not in _READS:
            return None, UNREAD
        for name in self._decline:
            if name in environ:
                return None, UNREAD
        origin = request_origin(environ)
        if self._hosts is not None and not self._hosts.allows(origin):
            return None, UNREAD
        key = read_key(wsgi_path(environ), str(environ.get("QUERY_STRING", "")), None, origin)
        record = self.store.lookup(key, EnvironHeaders(environ), route)
        if record is None:
            return None, None
        return stored_304(record, inm), record

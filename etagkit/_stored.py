"""The stored-ETag flow of one request (DESIGN.md "Stored ETags"): the one implementation both adapters
call with plain values, so ``ETagMiddleware`` and ``ETagKit`` only unpack their request and pack the
answer.

* :meth:`StoredFlow.open`, before the handler: whether stored validators apply at all, the key
  (method class, origin, path, query, scope) and the lookup of the stored validator for a
  conditional request;
* :func:`check_before`: the 304 / 412 / 428 decided before the handler from a stored or cheap
  validator, reading a conditional write's current validator back through the app when none is known;
* :meth:`StoredFlow.begin`, then :meth:`StoredFlow.remember`: the ticket taken before the handler of a
  GET/HEAD, under the implicit path tag and the route's tags, and the validator stored under it
  afterwards (race safety);
* :func:`stale_tags`: what a successful unsafe request invalidates (RFC 9111 §4.4).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any
from wsgiref.types import WSGIApplication, WSGIEnvironment

from ._environ import RequestFields
from ._readback import read_current_validator
from ._validators import ValidatorStore
from .core.freshness import SAFE_METHODS, invalidates_target
from .core.headers import HeaderSource
from .core.keys import path_tag, representation_key, shared_lookup_allowed
from .core.records import StoredValidator
from .core.reply import Reply, Validator, check_preconditions, is_conditional

__all__ = ["StoredFlow", "check_before", "stale_tags"]

_READS = frozenset({"GET", "HEAD"})  # one method class: HEAD gets the ETag GET would get


class StoredFlow:
    """One request's stored validator: its key, the record looked up, the ticket its answer is stored
    under. Made by :meth:`open` only when stored validators apply to the request."""

    __slots__ = (
        "cheap",
        "key",
        "reading",
        "record",
        "request_headers",
        "route",
        "store",
        "tags",
        "target",
        "ticket",
    )

    def __init__(
        self,
        store: ValidatorStore,
        route: str,
        request_headers: HeaderSource,
        target: tuple[str, str, str | None, str],
        *,
        reading: bool,
        cheap: bool,
    ) -> None:
        self.store = store
        self.route = route
        self.request_headers = request_headers  # any field (those a stored response names in Vary)
        self.target = path, query, scope, origin = target
        self.reading = reading  # a GET/HEAD: its answer is stored
        self.cheap = cheap  # the app gives the current validator: nothing to look up or store
        self.key = representation_key("GET", path, query, scope=scope, origin=origin)
        self.record: StoredValidator | None = None
        self.ticket: Any = None
        self.tags: list[str] = []  # what the ticket was taken for: the implicit path tag, then the route's

    @classmethod
    def open(
        cls,
        store: ValidatorStore | None,
        method: str,
        headers: RequestFields,
        *,
        path: str,
        query: str,
        origin: str,
        scope: Callable[[], str | None] | None,
        request_headers: HeaderSource,
        route: str,
        cheap: bool = False,
        caching: bool = False,
    ) -> StoredFlow | None:
        """Before the handler: the flow of a request stored validators apply to, else None.

        A GET/HEAD is keyed (its answer is stored); a conditional unsafe request is keyed to look up
        the current validator its condition is checked against. ``cheap``: the app gives the current
        validator itself (evaluated every request: nothing to look up or store, unless ``caching``
        whole responses). A credentialed request is keyed only with a declared ``scope()``.
        """
        if store is None or (cheap and not caching):
            return None
        reading = method in _READS
        conditional = is_conditional(headers)
        if not reading and not (conditional and method not in SAFE_METHODS):
            return None
        scope_value = scope() if scope is not None else None
        if not shared_lookup_allowed(headers, scope_value):
            return None
        target = (path, query, scope_value, origin)
        flow = cls(store, route, request_headers, target, reading=reading, cheap=cheap)
        if conditional and not cheap:
            flow.record = store.lookup(flow.key, request_headers, route)
        return flow

    def key_of(self, kind: str) -> str:
        """The key of what is stored for this representation: ``"etag"`` (its validator, ``key``),
        ``"response"`` (the whole response)."""
        path, query, scope, origin = self.target
        return representation_key("GET", path, query, scope=scope, origin=origin, kind=kind)

    def begin(self, tags: Callable[[], Iterable[str]] | None = None, *, caching: bool = False) -> None:
        """Take the ticket of a GET/HEAD BEFORE the handler runs (an invalidation during it wins):
        when its validator will be stored, or its whole response (``caching``), under ``tags()``."""
        if self.reading and (not self.cheap or caching):
            path, _, _, origin = self.target
            self.tags = [path_tag(path, origin), *(tags() if tags is not None else ())]
            self.ticket = self.store.begin(self.tags, self.route)

    def remember(
        self,
        status: int,
        response_headers: list[tuple[str, str]],
        reply: Reply,
        length: int | None,
        more_tags: Sequence[str] = (),
    ) -> None:
        """After the handler: store the answer's validator under the ticket, tagged with the ticket's
        tags and ``more_tags`` (learned from the response); not for a 412, nor when the app gives a
        cheap validator (:meth:`StoredValidator.from_response` says what else is not stored)."""
        if self.ticket is None or self.cheap or reply.status == 412:
            return
        record = StoredValidator.from_response(status, response_headers, reply.etag, length)
        if record is not None:
            self.store.store(
                self.key,
                self.request_headers,
                record,
                ticket=self.ticket,
                tags=[*self.tags, *more_tags] if more_tags else self.tags,
                route=self.route,
            )


def check_before(
    method: str,
    headers: RequestFields,
    validator: Validator | None,
    flow: StoredFlow | None,
    *,
    app: WSGIApplication,
    environ: WSGIEnvironment,
    require_precondition: bool,
    json_errors: bool | None,
    response_headers: tuple[tuple[str, str], ...] = (),
) -> tuple[Reply | None, int, bool]:
    """The 304 / 412 / 428 decided before the handler, with the bytes it saves and whether a stored
    validator answered it: ``(None, 0, False)`` runs the handler.

    The current validator is the stored one, else the app's cheap ``validator``; a conditional write
    with neither reads it back with a GET through ``app`` (RFC 9110 §13.2.1: a false condition means
    the method is not performed). ``require_precondition`` applies to unsafe methods only (RFC 6585
    §3); ``response_headers`` are what a 304 keeps when no stored record gives them.
    """
    record = flow.record if flow is not None else None
    checked = record.validator() if record is not None else validator
    unsafe = method not in SAFE_METHODS
    if checked is None and unsafe and is_conditional(headers):
        checked = read_current_validator(app, environ)
    require = require_precondition and unsafe
    if checked is None and not require:
        return None, 0, False  # nothing to decide before the handler
    early = check_preconditions(
        method,
        headers,
        checked,
        response_headers=record.headers if record is not None else response_headers,
        require_precondition=require,
        json_errors=json_errors,
    )
    if early is None:
        return None, 0, False
    stored = record is not None and early.status == 304
    return early, record.length if stored and record is not None else 0, stored


def stale_tags(
    method: str, status: int, path: str, origin: str, tags: Callable[[], Iterable[str]]
) -> tuple[str, ...]:
    """What a response to ``method`` invalidates: after a successful unsafe request, the stored
    validators of its target (its path tag) and ``tags()`` (RFC 9111 §4.4); otherwise nothing."""
    if not invalidates_target(method, status):
        return ()
    return (path_tag(path, origin), *tags())

"""One request's HTTP decisions, step by step, with no I/O (docs/design.md "Layers"; h11's model).

A face (WSGI middleware, Flask extension, custom server) builds an :class:`Exchange` from plain values
and drives it; every step answers what to do next and carries the operations the face performs
(store this record under the ticket, invalidate these tags, count this answer)::

    ex = Exchange(settings, request, validator=..., tags=..., scope=...)
    key = ex.lookup_key()             # a stored record to read before the app (None: nothing to read)
    step = ex.before(record)          # Answer (the app never runs) | ReadBack | Run
    #   ReadBack: a conditional write with no known validator; read it back, then
    #   step = ex.read_back(validator)
    #   Run: take a ticket for Run.ticket_tags, look Run.response_key up, run the app (Run.drop_range ...)
    step = ex.respond(status, headers, length=..., complete=...)   # Answer | Send | Hash
    #   Hash: the body is complete and small: collect it, then
    step = ex.finish(body)            # Answer | Send

Nothing here reads the clock, a socket or a store: the face does, with what the steps say.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import cast

from .freshness import SAFE_METHODS, invalidates_target
from .headers import Fields, HeaderSource, fields_of
from .keys import path_tag, read_key, shared_lookup_allowed, split_tags
from .policy import parse_cache_control
from .preconditions import Outcome, evaluate, range_applies, requires_precondition
from .records import CachedResponse, StoredValidator
from .reply import (
    Reply,
    Validator,
    _as_etag,
    _not_modified,
    conditional_response,
    error_reply,
    is_conditional,
    wants_json,
)
from .revalidation import hashed_304, only_if_none_match, stored_304, stored_route
from .steps import _NO_FIELDS, _READ_BACK, Answer, Count, Hash, ReadBack, Request, Run, Send, Settings

__all__ = [
    "Answer",
    "Count",
    "Exchange",
    "Hash",
    "ReadBack",
    "Request",
    "Run",
    "Send",
    "Settings",
]

_READS = frozenset({"GET", "HEAD"})  # one method class: HEAD gets the ETag GET would get (§9.3.2)
_CREATING = frozenset({"PUT", "PATCH"})  # may create a missing target (§9.3.4; RFC 5789 §2)
_NEVER_BUFFERED = frozenset({"text/event-stream"})  # a stream by nature: its first event goes out now


class Exchange:
    """The decisions of one request (see the module doc for the order of the calls)."""

    __slots__ = (
        "_body_tags",
        "_fields",
        "_headers",
        "_lookup",
        "_record",
        "_scope",
        "_scope_fn",
        "_scoped",
        "_status",
        "_tags",
        "_tags_fn",
        "checked",
        "has_store",
        "key",
        "request",
        "settings",
        "ticket_tags",
        "validator",
    )

    def __init__(
        self,
        settings: Settings,
        request: Request,
        *,
        validator: Validator | None = None,
        tags: Callable[[], Iterable[str]] | None = None,
        scope: Callable[[], str | None] | None = None,
        has_store: bool = False,
    ) -> None:
        self.settings = settings
        self.request = request
        self.validator = validator  # the app's cheap current validator (etag= callables)
        self.has_store = has_store
        self._tags_fn = tags
        self._scope_fn = scope
        self._tags: tuple[str, ...] | None = None
        self._scoped = False
        self._scope: str | None = None
        self.key: str | None = None
        self.checked: Validator | None = None  # what the preconditions were evaluated against
        self.ticket_tags: tuple[str, ...] | None = None
        self._body_tags: tuple[str, ...] = ()  # learned from the response's tag header
        self._record: StoredValidator | None = None
        self._status = 0
        self._headers: list[tuple[str, str]] = _NO_HEADERS  # the app's, once it answered (respond)
        self._fields: Fields = _NO_FIELDS
        self._lookup: object = _UNASKED  # str | None once asked

    # -- what the request is ------------------------------------------------------------------------

    def tags(self) -> tuple[str, ...]:
        """The route's declared tags (resolved once, when first needed)."""
        if self._tags is None:
            self._tags = tuple(dict.fromkeys(self._tags_fn())) if self._tags_fn is not None else ()
        return self._tags

    def scope(self) -> str | None:
        """The route's auth scope of this request (resolved once, when first needed)."""
        if self._scope_fn is None:
            return None
        if not self._scoped:
            self._scope, self._scoped = self._scope_fn(), True
        return self._scope

    def _json(self, response_fields: HeaderSource = ()) -> bool:
        given = self.settings.json_errors
        return wants_json(self.request.fields, response_fields) if given is None else given

    def _stored_route(self) -> bool:
        return stored_route(self.settings, has_store=self.has_store, has_tags=self._tags_fn is not None)

    def _shareable(self) -> bool:
        """Stored answers are shared by every requester of a key: never for a credentialed request
        (Authorization, Cookie, REMOTE_USER, a configured credential field) unless the route
        declares its scope; and kept only for allowed hosts."""
        req, settings = self.request, self.settings
        if not self._host_allowed():
            return False
        # the decision fields hold Authorization and Cookie; configured ones are read from all fields
        source = req.headers if settings.credential_fields and req.headers is not None else req.fields
        return shared_lookup_allowed(
            source,
            self.scope(),
            credential_fields=settings.credential_fields,
            remote_user=req.remote_user,
        )

    def _key(self) -> str:
        if self.key is None:
            req = self.request
            self.key = read_key(req.path, req.query, self.scope(), req.origin)
        return self.key

    def lookup_key(self) -> str | None:
        """The key of the stored record to read before the app, or None: only for a request whose
        condition a stored validator can decide (If-None-Match / If-Modified-Since / If-Range on
        GET/HEAD, a conditional write) on a stored route without a cheap validator."""
        if self._lookup is _UNASKED:  # decided once: an async face asks before it hops to a thread
            self._lookup = self._lookup_key()
        return cast("str | None", self._lookup)

    def _lookup_key(self) -> str | None:
        req, fields = self.request, self.request.fields
        if self.validator is not None or not self._stored_route():
            return None
        conditional = is_conditional(fields)
        if req.method in _READS:
            if not conditional and not ("range" in fields and "if-range" in fields):
                return None
        elif req.method in SAFE_METHODS or not conditional:
            return None
        return self._key() if self._shareable() else None

    # -- before the app -----------------------------------------------------------------------------

    def before(self, record: StoredValidator | None = None) -> Answer | ReadBack | Run:
        """Decide before the app runs: a 428 / 304 / 412 now, a read-back first, or run it.

        The current validator is the stored ``record``'s, else the cheap one, else (writes only) the
        one read back (:meth:`read_back`). Preconditions apply only where the response would be 2xx
        (§13.2.1): a target with no current representation is decided only for methods that can
        create it.
        """
        return self._before(record, _READ_BACK)

    def read_back(self, current: Validator | None) -> Answer | Run:
        """:meth:`before` once the write's current validator was read back (None: unreadable)."""
        step = self._before(self._record, current)
        assert not isinstance(step, ReadBack)
        return step

    def _before(
        self, record: StoredValidator | None, current: Validator | ReadBack | None
    ) -> Answer | ReadBack | Run:
        self._record = record
        req, fields, settings = self.request, self.request.fields, self.settings
        method = req.method
        if record is not None and method in _READS and only_if_none_match(fields):
            fast = stored_304(record, fields["if-none-match"])
            if fast is not None:  # the common revalidation, answered as _before's steps would
                self.checked = record.validator()
                return fast
        unsafe = method not in SAFE_METHODS
        gone = self.validator is not None and not self.validator.exists and method not in _CREATING
        if settings.require_precondition and unsafe and not gone and requires_precondition(method, fields):
            return Answer(error_reply(428, json_body=self._json()), Count(428))  # RFC 6585 §3
        checked = record.validator() if record is not None else self.validator
        if checked is None and unsafe and is_conditional(fields):
            if isinstance(current, ReadBack):
                return current
            checked = current
        self.checked = checked
        if checked is not None and (checked.exists or method in _CREATING):
            outcome = evaluate(
                method, fields, etag=_as_etag(checked.etag), last_modified=checked.last_modified,
                exists=checked.exists,
            )  # fmt: skip
            if outcome is Outcome.NOT_MODIFIED:
                held = record.headers if record is not None else self._route_headers()
                reply = _not_modified(held, _as_etag(checked.etag), checked.last_modified)
                saved = record.length if record is not None else None  # a cheap validator: unknown
                return Answer(reply, Count(304, saved, record is not None))
            if outcome is Outcome.PRECONDITION_FAILED:
                return Answer(error_reply(412, json_body=self._json()), Count(412))
        drop_range = (
            method == "GET"
            and "range" in fields
            and "if-range" in fields
            and (
                checked is None
                or not range_applies(fields, etag=_as_etag(checked.etag), last_modified=checked.last_modified)
            )
        )
        head_as_get = method == "HEAD" and self.validator is None
        ticket_tags = self._ticket_tags() if self.has_store else None
        first = self._write_tags() if unsafe and self.has_store else ()
        if not (drop_range or head_as_get or ticket_tags or first):
            return _PLAIN_RUN  # the common case: nothing to change, nothing to store
        return Run(drop_range, head_as_get, ticket_tags, self._response_key(), first)

    def unavailable(self) -> Answer:
        """The answer to a write whose invalidation could not be recorded before it ran: 503 with
        Retry-After (RFC 9110 §15.6.4, §10.2.3); the write did not run, so nothing is lost."""
        reply = error_reply(
            503, json_body=self._json(), detail="The cache is unreachable: the write was not applied, retry."
        )
        return Answer(Reply(503, (*reply.headers, ("Retry-After", "1")), reply.body), Count(503))

    def _route_headers(self) -> tuple[tuple[str, str], ...]:
        cache_control = self.settings.cache_control
        return (("Cache-Control", cache_control),) if cache_control else ()

    def _ticket_tags(self) -> tuple[str, ...] | None:
        """A GET/HEAD whose answer will be stored takes a ticket BEFORE the app: an invalidation during
        the app then wins (docs/design.md "Cache-aside with tags")."""
        req = self.request
        if req.method not in _READS or not self._stored_route() or not self._shareable():
            return None
        if self.validator is not None and self.settings.cache_ttl is None:
            return None  # a cheap validator is evaluated every time: nothing to store
        self._key()  # where its validator goes
        self.ticket_tags = (path_tag(req.path, req.origin), *self.tags())
        return self.ticket_tags

    def _response_key(self) -> str | None:
        if self.settings.cache_ttl is None or self.ticket_tags is None:
            return None
        if self.validator is not None and not self.validator.exists:
            return None
        req = self.request
        key = read_key(req.path, req.query, self.scope(), req.origin, "response")
        return key if self.validator is None else _versioned(key, self.validator)

    def cached(self, response: CachedResponse) -> Answer:
        """Answer from a cached whole response (its 304 / 412 decided against its own validator)."""
        req = self.request
        reply = conditional_response(
            req.method,
            req.fields,
            response.status,
            response.headers,
            None,
            json_errors=self.settings.json_errors,
        )
        if reply.status == 304:
            return Answer(reply, Count(304, len(response.body), True), cache_hit=True)
        body = reply.body if reply.replaces_body else response.body
        return Answer(
            Reply(reply.status, reply.headers, body, reply.etag), Count(reply.status), cache_hit=True
        )

    def answer_read_back(self) -> Send:
        """A read-back GET of a route with a cheap validator, answered without its handler: the
        validator's ETag / Last-Modified on an empty 200, or a 404 where there is no current
        representation (what :func:`read_back_validator` reads back)."""
        exists = self.validator is not None and self.validator.exists
        step = self.respond(200 if exists else 404, (), length=0, complete=True)
        return step if isinstance(step, Send) else self.overflow()

    # -- after the app's head -----------------------------------------------------------------------

    def respond(
        self,
        status: int,
        headers: Iterable[tuple[str, str]],
        *,
        length: int | None = None,
        complete: bool = False,
    ) -> Answer | Send | Hash:
        """Decide from the app's status and headers. ``length``: the body's size when known (a
        complete body, else a declared Content-Length); ``complete``: the body is already whole in
        memory (a list, one chunk), so hashing it delays nothing. A stream of unknown length passes
        through untagged unless the app gives a validator; ``text/event-stream`` is never held back.
        """
        req, settings = self.request, self.settings
        headers = self._strip_tags(list(headers))
        self._status, method = status, req.method
        if method not in SAFE_METHODS:
            return Send(Reply(status, tuple(headers)), Count(status), invalidate=self._stale(status))
        if method not in _READS or not 200 <= status < 300:
            return Send(Reply(status, tuple(headers)), Count(status))  # untouched: no ETag, no 304
        if settings.cache_control and not any(k.lower() == "cache-control" for k, _ in headers):
            headers.append(("Cache-Control", settings.cache_control))
        self._headers, self._fields = headers, fields_of(headers)
        fields = self._fields
        declared = _declared_length(fields)
        size = length if complete else declared
        if status == 200 and size is not None and size <= settings.max_buffer and self._body_wanted(fields):
            ctype = fields.get("content-type", "").split(";", 1)[0].strip(" \t").lower()
            if ctype not in _NEVER_BUFFERED:
                return _HASH
        return self._decide(None, length if length is not None else declared)

    def _body_wanted(self, fields: Fields) -> bool:
        """Whether the body is needed: to hash it (no validator from the app, not ``no-store``), or
        to keep the whole response (response caching, under a ticket)."""
        if self.settings.cache_ttl is not None and self.ticket_tags is not None:
            return True
        own = "etag" in fields or "last-modified" in fields
        return self.validator is None and not own and not _no_store(fields)

    def finish(self, body: bytes) -> Answer | Send:
        """Decide once the complete body is known: its strong ETag (RFC 9110 §8.8.3), 304 / 412."""
        req, settings = self.request, self.settings
        if (
            self.ticket_tags is None  # nothing to store: the 304 is the whole answer
            and self.validator is None
            and only_if_none_match(req.fields)
            and "content-encoding" not in self._fields  # a coded body's tag is per coding
        ):  # the common stateless revalidation: the tag compared as sent (revalidation.py)
            inm, headers = req.fields["if-none-match"], tuple(self._headers)
            fast = hashed_304(body, inm, headers, settings.weak, settings.algorithm)
            if fast is not None:
                return fast
        return self._decide(body, len(body))

    def overflow(self) -> Send:
        """The body turned out bigger than the cap (a declared length was wrong): send it untagged."""
        return Send(Reply(self._status, tuple(self._headers)), Count(self._status))

    def _decide(self, body: bytes | None, length: int | None) -> Answer | Send:
        req, settings, given, fields = self.request, self.settings, self.validator, self._fields
        status, headers = self._status, self._headers
        if given is None and status == 206 and self.checked is not None:
            given = self.checked  # a 206 carries the validator its 200 would carry (RFC 9110 §15.3.7)
        reply = conditional_response(
            req.method,
            req.fields,
            status,
            headers,
            body,
            # the app's own ETag / Last-Modified win over the cheap validator's (it chose what it sends)
            etag=given.etag if given is not None and "etag" not in fields else None,
            last_modified=given.last_modified
            if given is not None and "last-modified" not in fields
            else None,
            weak=settings.weak,
            algorithm=settings.algorithm,
            weaken_encoded=settings.weaken_encoded,
            json_errors=settings.json_errors,
            fields=fields,
            set_cookie=True,  # a cookie the app sets on this response reaches the client on its 304
        )
        record, store_tags, cached = self._records(reply, body, length)
        if reply.replaces_body:
            saved = length if reply.status == 304 else 0  # None: unknown, the driver may know
            return Answer(reply, Count(reply.status, saved), record, store_tags)
        sent = length if reply.status == 200 else None
        return Send(reply, Count(reply.status, sent=sent), record, store_tags, cached=cached)

    def _records(
        self, reply: Reply, body: bytes | None, length: int | None
    ) -> tuple[StoredValidator | None, tuple[str, ...], CachedResponse | None]:
        """What to store under the ticket: the validator (stored routes only; not a 412, not for a
        cheap validator) and, with response caching, the whole 200."""
        tickets = self.ticket_tags
        if (
            tickets is None
            or reply.status in (206, 412)
            or (self.settings.stored is None and not self._declared())
        ):
            return None, (), None
        tags = (*tickets, *self._body_tags) if self._body_tags else tickets
        status, headers = self._status, self._headers
        record = None
        if self.validator is None:
            record = StoredValidator.from_response(status, headers, reply.etag, length)
        cached = None
        if self.settings.cache_ttl is not None and body is not None:
            given = self.validator
            cached = CachedResponse.from_response(
                status, headers, body, reply.etag, given.last_modified if given is not None else None
            )
        return record, tags, cached

    def _declared(self) -> bool:
        return bool(self.tags() or self._body_tags)

    def _strip_tags(self, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Learn the tags the response declares in the tag header; strip it unless it is kept."""
        name = self.settings.tag_header
        if name is None or not self.has_store:
            return headers
        name = name.lower()
        kept = [(k, v) for k, v in headers if k.lower() != name]
        if len(kept) == len(headers):
            return headers
        learned = [t for k, v in headers if k.lower() == name for t in split_tags(v)]
        self._body_tags = tuple(dict.fromkeys(learned))
        return headers if self.settings.keep_tag_header else kept

    def _host_allowed(self) -> bool:
        hosts = self.settings.allowed_hosts
        return hosts is None or hosts.allows(self.request.origin)

    def _write_tags(self) -> tuple[str, ...]:
        """What a write to this target invalidates whatever its answer: its path's validators and
        the route's declared tags (tags its response names are known only after it ran)."""
        req = self.request
        declared = self.tags() if self.settings.invalidate_tags else ()
        path = (path_tag(req.path, req.origin),) if self._host_allowed() else ()
        return tuple(dict.fromkeys((*path, *declared)))

    def _stale(self, status: int) -> tuple[str, ...]:
        """What a successful unsafe request invalidates (RFC 9111 §4.4): its target's stored
        validators (path tag; only on an allowed host, where any can be stored: a request for an
        unknown host never creates a mark), the route's tags and those its response names."""
        req = self.request
        if not self.has_store or not invalidates_target(req.method, status):
            return ()
        declared = self.tags() if self.settings.invalidate_tags else ()
        path = (path_tag(req.path, req.origin),) if self._host_allowed() else ()
        return tuple(dict.fromkeys((*path, *declared, *self._body_tags)))


_PLAIN_RUN = Run()
_UNASKED = object()  # lookup_key() not asked yet
_NO_HEADERS: list[tuple[str, str]] = []  # never mutated: respond() replaces it with the app's
_HASH = Hash()


def _no_store(fields: Fields) -> bool:
    value = fields.get("cache-control")
    return value is not None and "no-store" in parse_cache_control(value)


def _declared_length(fields: Fields) -> int | None:
    value = fields.get("content-length", "")
    return int(value) if value.isascii() and value.isdigit() and len(value) < 19 else None


def _versioned(key: str, validator: Validator) -> str:
    """A cached response's key per cheap validator value: a response cached for an older version is
    never found for a newer one, even before its tags are invalidated."""
    modified = validator.last_modified.isoformat() if validator.last_modified is not None else ""
    version = f"{validator.etag}|{modified}".encode("utf-8", "surrogatepass")
    return f"{key}:{hashlib.blake2b(version, digest_size=16).hexdigest()}"

"""The values an exchange takes and the steps it answers with (:mod:`etagkit.core.exchange`).

Immutable value objects (h11's events): ``Settings`` is a frozen dataclass built once per face or
route; the per-request values are named tuples, which cost a fraction of a frozen dataclass to make
(a request makes several). A face reads what a step says and performs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from .etag import HashAlgorithm
from .headers import Fields, HeaderSource
from .hosts import AllowedHosts
from .records import CachedResponse, StoredValidator
from .reply import Reply

__all__ = ["Answer", "Count", "Hash", "ReadBack", "Request", "Run", "Send", "Settings"]

_NO_FIELDS = Fields()  # a request without fields (never mutated: Fields are built per request)


@dataclass(frozen=True, slots=True)
class Settings:
    """What a face (or one route of it) decided at configuration time.

    ``stored``: stored validators for every GET/HEAD (True), never (False), or only where the route
    declares tags: ``tags=`` or the ``tag_header`` of its response (None, the default). A stored
    validator is only as fresh as the invalidations of its tags, so undeclared routes stay stateless.
    ``cache_control`` is added to 2xx GET/HEAD responses that set none; ``invalidate_tags``: a
    successful write invalidates the declared tags too (its own path's validators always).
    ``cache_ttl``: keep whole 200 responses (response caching) for that long.
    ``credential_fields``: request fields that carry credentials besides Authorization and Cookie
    (e.g. ``x-api-key``): such requests never share stored answers without a scope.
    ``algorithm``: the hash of generated ETags (``generate_etag``; ``xxh3`` / ``blake3`` need the
    ``fast`` extra). ``allowed_hosts``: the hosts stored answers are kept for (None: any); a
    request for another host is answered statelessly and leaves nothing in the store (Django's
    ALLOWED_HOSTS idea).
    """

    weak: bool = False
    weaken_encoded: bool = False
    max_buffer: int = 1 << 20
    require_precondition: bool = False
    json_errors: bool | None = None
    stored: bool | None = None
    tag_header: str | None = None
    keep_tag_header: bool = False
    cache_control: str | None = None
    invalidate_tags: bool = True
    cache_ttl: float | None = None
    credential_fields: frozenset[str] = frozenset()
    algorithm: HashAlgorithm = "sha256"
    allowed_hosts: AllowedHosts | None = None


class Request(NamedTuple):
    """A request as plain values. ``fields``: the request fields under lower-cased names (at least
    the preconditions, Range/If-Range, Accept, Content-Type and credentials); ``headers``: any field
    (those a stored response names in Vary), ``fields`` when omitted. ``remote_user``: the user a
    server or proxy authenticated (WSGI ``REMOTE_USER``)."""

    method: str
    path: str
    query: str = ""
    origin: str = ""
    fields: Fields = _NO_FIELDS
    headers: HeaderSource | None = None
    remote_user: str | None = None


class Count(NamedTuple):
    """One answer for the metrics: its status, the body bytes a 304 did not send (None: unknown
    here, e.g. a cheap validator's 304 before the app), whether a stored record answered it, and
    the body size of a 200 when known (what a later 304 of the same target saves)."""

    status: int
    bytes_saved: int | None = 0
    stored: bool = False
    sent: int | None = None


class Answer(NamedTuple):
    """Send ``reply`` (its body replaces the app's; on HEAD send no body). Before the app: it never
    runs. After the head: close the app's body unread. ``record`` / ``invalidate`` as in :class:`Send`."""

    reply: Reply
    tally: Count
    record: StoredValidator | None = None
    store_tags: tuple[str, ...] = ()
    cache_hit: bool = False


class ReadBack(NamedTuple):
    """A conditional write with no known current validator: GET the target through the app, then call
    :meth:`Exchange.read_back` with what it answered (RFC 9110 §13.2.1: a false condition must stop
    the write before it runs)."""


_READ_BACK = ReadBack()


class Run(NamedTuple):
    """Run the app. ``drop_range``: without Range (If-Range not confirmed, §13.1.5); ``head_as_get``:
    as GET, body dropped (HEAD gets GET's ETag); ``ticket_tags``: take the store's ticket for these
    tags first (race safety); ``response_key``: a cached whole response to look up first
    (:meth:`Exchange.cached`); ``invalidate_first``: a write's tags to invalidate BEFORE it runs;
    when that cannot be recorded, answer :meth:`Exchange.unavailable` instead of running it (no
    process may serve a validator older than an acknowledged write)."""

    drop_range: bool = False
    head_as_get: bool = False
    ticket_tags: tuple[str, ...] | None = None
    response_key: str | None = None
    invalidate_first: tuple[str, ...] = ()


class Hash(NamedTuple):
    """Collect the (complete, small) body and call :meth:`Exchange.finish` with it."""


class Send(NamedTuple):
    """Send the app's response with ``reply``'s status and headers and the app's own body.

    Operations: store ``record`` under the ticket with ``store_tags``; store ``cached`` (a whole
    response) under ``response_key`` for ``Settings.cache_ttl``; invalidate ``invalidate`` now and
    again once the body is closed (a write may commit while its body runs)."""

    reply: Reply
    tally: Count
    record: StoredValidator | None = None
    store_tags: tuple[str, ...] = ()
    invalidate: tuple[str, ...] = ()
    cached: CachedResponse | None = None

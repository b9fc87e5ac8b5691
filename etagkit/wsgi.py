"""``ETagMiddleware``: ETags, RFC 9110 preconditions and stored ETags around any PEP 3333 app.

The middleware only translates between WSGI and the decisions of ``etagkit.core`` and, for
stored ETags, ``etagkit._stored`` (the same ones ``ETagKit`` calls):

* before the app: a stored validator (``cache=``) or the app's ``validator=`` callable answers a
  matching revalidation with 304, a failed If-Match with 412 (also for writes, before they run) and,
  with ``require_precondition=True``, an unconditional write with 428;
* after the app: a GET/HEAD 200 without a validator is buffered (up to ``max_buffer`` bytes) and
  given a strong ETag of its body; an app-supplied ETag / Last-Modified is used without buffering;
  non-2xx, ``no-store`` and over-cap responses stream through untouched.

PEP 3333 is kept to the letter: the app's iterable is always closed, ``write()`` works,
``exc_info`` is honoured and every header is a native string.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Callable, Iterable, Iterator
from itertools import chain
from types import TracebackType
from typing import Any
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from ._config import callable_or_none, flag, number, optional_flag, positive_int
from ._environ import EnvironHeaders, RequestFields, request_fields, request_origin
from ._errors import ConfigurationError
from ._readback import READBACK_KEY
from ._stored import StoredFlow, check_before, stale_tags
from ._validators import MetricsSink, ValidatorStore, check_cache
from .core.headers import TOKEN, Fields, fields_of, get_header
from .core.keys import split_tags
from .core.reply import Reply, Validator, body_needed, conditional_response

__all__ = ["ETagMiddleware"]

_Headers = list[tuple[str, str]]
_ExcInfo = tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None] | None
_Write = Callable[[bytes], object]
_FIELD_NAME = re.compile(TOKEN)  # RFC 9110 §5.1: a field name is a token


class _Mode(enum.Enum):
    PASS = "pass"  # forwarded to the server as it comes
    BUFFER = "buffer"  # held back to hash the body
    REPLACED = "replaced"  # the server gets a Reply; the app's body is dropped


class ETagMiddleware:
    """Wrap a WSGI app: ETags for its GET/HEAD responses, preconditions, optional stored ETags.

    Options:

    * ``cache``: a ``etagkit.cache.TagCache`` to store validators in (stored-ETag mode): a matching
      revalidation is answered 304 without calling the app. Only conditional requests look a
      validator up; every GET/HEAD 2xx the app answers stores its validator under a ticket taken
      before the app ran (race safety). Tags of a stored
      validator come from the ``tag_header`` response header (default ``Cache-Tag``, space or comma
      separated), stripped before the response leaves unless ``keep_tag_header``; a tag seen for the
      first time has no invalidation mark, so that first validator is not stored (race safety). A
      successful unsafe request invalidates the stored validators of its path and the tags its
      response names. Without a cache the tag header is left alone.
    * ``scope(environ) -> str | None``: the auth scope of a credentialed request (e.g. a user id).
      Requests with Authorization or Cookie skip stored validators unless a scope is returned.
    * ``validator(environ) -> Validator | None``: the app's cheap current validator of the target
      (a version, an ``updated_at``); evaluated before the app, so a match or a stale If-Match never
      runs it, and used as the response's ETag without buffering.
    * ``max_buffer``: the largest body hashed (bytes); bigger bodies stream through untagged.
    * ``weak``: generate weak ETags. ``weaken_encoded``: a content-coded body gets the weak tag
      instead of a per-coding strong one (generated tags only: an app's own ETag is sent as is).
    * ``require_precondition``: answer 428 to PUT/PATCH/DELETE/POST without If-Match or
      If-Unmodified-Since (RFC 6585 §3).
    * ``json_errors``: 412/428 bodies as JSON (True), text (False) or by content negotiation (None).
    * ``metrics``: an ``etagkit.metrics.Metrics``; ``route(environ) -> str`` names the route counted.
    * ``ttl``: lifetime of stored validators (seconds; None: the cache's default).
    """

    def __init__(
        self,
        app: WSGIApplication,
        *,
        cache: Any = None,
        max_buffer: int = 1 << 20,
        weak: bool = False,
        weaken_encoded: bool = False,
        validator: Callable[[WSGIEnvironment], Validator | None] | None = None,
        scope: Callable[[WSGIEnvironment], str | None] | None = None,
        require_precondition: bool = False,
        tag_header: str = "Cache-Tag",
        keep_tag_header: bool = False,
        json_errors: bool | None = None,
        metrics: MetricsSink | None = None,
        route: Callable[[WSGIEnvironment], str] | None = None,
        ttl: float | None = None,
    ) -> None:
        if not callable(app):
            raise ConfigurationError(f"app must be a WSGI callable, not {app!r}")
        if not isinstance(tag_header, str) or not _FIELD_NAME.fullmatch(tag_header):
            raise ConfigurationError(f"tag_header must be a header field name, not {tag_header!r}")
        for name, fn in (("validator", validator), ("scope", scope), ("route", route)):
            callable_or_none(name, fn)
        check_cache(cache)
        if ttl is not None:
            number("ttl", ttl, positive=True)
        self.app = app
        self.store = ValidatorStore(cache, ttl=ttl, metrics=metrics) if cache is not None else None
        self.max_buffer = positive_int("max_buffer", max_buffer, minimum=0)
        self.weak = flag("weak", weak)
        self.weaken_encoded = flag("weaken_encoded", weaken_encoded)
        self.validator = validator
        self.scope = scope
        self.require_precondition = flag("require_precondition", require_precondition)
        self.tag_header = tag_header
        self.keep_tag_header = flag("keep_tag_header", keep_tag_header)
        self.json_errors = optional_flag("json_errors", json_errors)
        self.metrics = metrics
        self.route = route

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        route = self.route(environ) if self.route is not None else ""
        exchange = _Exchange(
            self,
            environ=environ,
            method=method,
            headers=request_fields(environ),
            route=route,
            start_response=start_response,
        )
        early = self._before(exchange)
        if early is not None:
            start_response(early.status_line, list(early.headers))
            return [early.body] if early.body and method != "HEAD" else []
        if method == "HEAD" and exchange.validator is None:
            environ = {**environ, "REQUEST_METHOD": "GET"}  # HEAD gets the ETag GET would get
            exchange.drop_body = True
        result = exchange.finish(self.app(environ, exchange.start_response))
        if not exchange.invalidated:
            return result
        # A write was invalidated at start_response, but it may commit only while its body runs or
        # closes: a read in between could store the old validator again. Invalidate once more after
        # the server closed the body (PEP 3333: close() is called once the response is done).
        again = functools.partial(self._invalidate, exchange.invalidated, route)
        return _Body([], iter(result), result, False, on_close=again)

    def _invalidate(self, tags: tuple[str, ...], route: str) -> None:
        if self.store is not None:
            self.store.invalidate(*tags, route=route)

    def _before(self, exchange: _Exchange) -> Reply | None:
        """Before the app: a cheap or stored validator's 304 / 412, or a 428 (then the app never
        runs); otherwise the ticket under which the response's validator will be stored."""
        environ, method, headers = exchange.environ, exchange.method, exchange.headers
        validator = self.validator(environ) if self.validator is not None else None
        exchange.validator = validator
        flow = None
        if self.store is not None:  # stored-ETag mode: the target's path and origin key it
            exchange.path, exchange.origin = _path(environ), request_origin(environ)
            flow = exchange.flow = StoredFlow.open(
                self.store,
                method,
                headers,
                path=exchange.path,
                query=str(environ.get("QUERY_STRING", "")),
                origin=exchange.origin,
                scope=functools.partial(self.scope, environ) if self.scope is not None else None,
                request_headers=EnvironHeaders(environ),
                route=exchange.route,
                cheap=validator is not None,
            )
        early, saved, stored = check_before(
            method,
            headers,
            validator,
            flow,
            app=self,
            environ=environ,
            require_precondition=self.require_precondition,
            json_errors=self.json_errors,
        )
        if early is not None:
            exchange.count(early.status, saved, stored)
            return early
        if flow is not None:
            flow.begin()
        return None


def _path(environ: WSGIEnvironment) -> str:
    return str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))


def _content_length(headers: _Headers) -> int:
    value = get_header(headers, "Content-Length") or ""
    return int(value) if value.isascii() and value.isdigit() else 0


def _close(result: Iterable[bytes]) -> None:
    close = getattr(result, "close", None)
    if close is not None:
        close()


class _Exchange:
    """One request's trip through the app: captures start_response and decides what the server gets."""

    __slots__ = (
        "chunks",
        "code",
        "drop_body",
        "environ",
        "exc_info",
        "fields",
        "flow",
        "headers",
        "invalidated",
        "method",
        "mode",
        "mw",
        "origin",
        "path",
        "reply",
        "response_headers",
        "route",
        "sent",
        "server_start",
        "server_write",
        "size",
        "status",
        "tags",
        "validator",
    )

    def __init__(
        self,
        mw: ETagMiddleware,
        *,
        environ: WSGIEnvironment,
        method: str,
        headers: RequestFields,
        route: str,
        start_response: StartResponse,
    ) -> None:
        self.mw = mw
        self.environ = environ
        self.method = method
        self.headers = headers
        self.route = route
        self.server_start = start_response
        self.validator: Validator | None = None
        self.flow: StoredFlow | None = None
        self.path = self.origin = ""  # the target (stored-ETag mode only)
        self.invalidated: tuple[str, ...] = ()  # what a successful write invalidated (again at close)
        self.tags: list[str] = []  # from the tag header
        self.drop_body = False
        self.status: str | None = None
        self.code = 0
        self.response_headers: _Headers = []
        self.fields = Fields()
        self.exc_info: _ExcInfo = None
        self.mode = _Mode.PASS
        self.sent = False
        self.server_write: _Write | None = None
        self.chunks: list[bytes] = []
        self.size = 0
        self.reply: Reply | None = None

    # -- the start_response the app sees ----------------------------------------------------------

    def start_response(self, status: str, headers: _Headers, exc_info: _ExcInfo = None) -> _Write:
        if exc_info is not None and exc_info[0] is not None:
            if self.sent:  # the server decides: re-raise if headers went out, else replace them
                self.mode = _Mode.PASS
                self.server_write = self.server_start(status, self._strip_tags(headers), exc_info)
                return self._write_through
        elif self.status is not None:
            raise AssertionError("start_response called a second time without exc_info (PEP 3333)")
        else:
            exc_info = None
        self.status, self.exc_info = status, exc_info
        self.chunks, self.size = [], 0
        head = status.split(" ", 1)[0]
        self.code = int(head) if head.isascii() and head.isdigit() else 0
        self.response_headers = self._strip_tags(headers)
        self.mode = self._decide()
        if self.mode is _Mode.PASS:
            self._send(status, self.response_headers)
            return self._write_through
        if self.mode is _Mode.REPLACED:
            assert self.reply is not None
            self.server_write = self.server_start(self.reply.status_line, list(self.reply.headers), exc_info)
            self.sent = True
        return self._write_buffered

    def _strip_tags(self, headers: _Headers) -> _Headers:
        """Collect the tag header's tags (stored-ETag mode only) and strip it unless it is kept."""
        if self.mw.store is None:
            return headers
        name = self.mw.tag_header.lower()
        kept: _Headers = []
        for key, value in headers:
            if key.lower() == name:
                self.tags.extend(split_tags(value))
            else:
                kept.append((key, value))
        return headers if self.mw.keep_tag_header or len(kept) == len(headers) else kept

    def _decide(self) -> _Mode:
        """PASS, BUFFER or REPLACED, from the status and headers alone (no body yet)."""
        store = self.mw.store
        if store is not None:
            self.invalidated = stale_tags(self.method, self.code, self.path, self.origin, self._tags)
            if self.invalidated:
                store.invalidate(*self.invalidated, route=self.route)
        given = self.validator
        self.fields = fields_of(self.response_headers)  # indexed once for both decisions
        if given is None and body_needed(self.method, self.code, self.fields):
            return _Mode.BUFFER
        reply = conditional_response(
            self.method,
            self.headers,
            self.code,
            self.response_headers,
            # the app's own ETag / Last-Modified win over the validator callable's
            etag=given.etag if given is not None and "etag" not in self.fields else None,
            last_modified=(
                given.last_modified if given is not None and "last-modified" not in self.fields else None
            ),
            weak=self.mw.weak,
            weaken_encoded=self.mw.weaken_encoded,
            json_errors=self.mw.json_errors,
            fields=self.fields,
        )
        self._remember(reply, None)
        if reply.replaces_body:
            self.reply = reply
            saved = _content_length(self.response_headers) if reply.status == 304 else 0
            self.count(reply.status, saved, False)
            return _Mode.REPLACED
        self.response_headers = list(reply.headers)
        return _Mode.PASS

    def _send(self, status: str, headers: _Headers) -> None:
        self.server_write = self.server_start(status, headers, self.exc_info)
        self.sent = True
        self.count(self.code, 0, False)

    def _write_through(self, data: bytes) -> None:
        if not self.drop_body and self.server_write is not None:
            self.server_write(data)

    def _write_buffered(self, data: bytes) -> None:
        if self.mode is _Mode.REPLACED:
            return
        if self.mode is _Mode.PASS:  # switched to streaming after an overflow
            self._write_through(data)
            return
        self.chunks.append(data)
        self.size += len(data)
        if self.size > self.mw.max_buffer:
            self._overflow()
            self._write_overflowed()

    def _overflow(self) -> None:
        """The body is over the cap: from now on the response streams through untagged."""
        self.mode = _Mode.PASS
        self._send(self.status or "200 OK", self.response_headers)

    def _write_overflowed(self) -> None:
        for chunk in self._take_chunks():
            self._write_through(chunk)

    # -- the iterable the server gets -------------------------------------------------------------

    def finish(self, result: Iterable[bytes]) -> Iterable[bytes]:
        """The iterable for the server, from the app's; the app's is closed on every path."""
        try:
            iterator, prefix = self._started(result)
            if self._is(_Mode.PASS):
                if iterator is None and not prefix and not self.drop_body:
                    return result  # untouched: the server iterates and closes it
                return _Body(prefix, iterator or iter(result), result, self.drop_body)
            if self._is(_Mode.REPLACED):
                _close(result)
                body = self.reply.body if self.reply is not None else None
                return [body] if body and not self.drop_body else []
            pending = iter(result) if iterator is None else chain(prefix, iterator)
            for chunk in pending:
                self.chunks.append(chunk)
                self.size += len(chunk)
                if self.size > self.mw.max_buffer:
                    self._overflow()
                if self._is(_Mode.PASS):  # over the cap: stream the rest, untagged
                    return _Body(self._take_chunks(), pending, result, self.drop_body)
        except BaseException:
            _close(result)
            raise
        _close(result)
        if self._is(_Mode.PASS):  # write() overflowed, then the iterable ended
            return _Body(self._take_chunks(), iter(()), (), self.drop_body)
        return self._buffered_reply()

    def _started(self, result: Iterable[bytes]) -> tuple[Iterator[bytes] | None, list[bytes]]:
        """Make sure start_response ran: an app may call it lazily, from its first iteration."""
        if self.status is not None:
            return None, []
        iterator = iter(result)
        prefix: list[bytes] = []
        for chunk in iterator:
            prefix.append(chunk)
            break
        if not self._has_started():
            raise RuntimeError("the WSGI application returned without calling start_response")
        return iterator, prefix

    def _has_started(self) -> bool:
        return self.status is not None

    def _is(self, mode: _Mode) -> bool:
        return self.mode is mode

    def _take_chunks(self) -> list[bytes]:
        held, self.chunks = self.chunks, []
        return held

    def _buffered_reply(self) -> list[bytes]:
        body = b"".join(self.chunks)
        reply = conditional_response(
            self.method,
            self.headers,
            self.code,
            self.response_headers,
            body,
            weak=self.mw.weak,
            weaken_encoded=self.mw.weaken_encoded,
            json_errors=self.mw.json_errors,
            fields=self.fields,
        )
        self._remember(reply, len(body))
        self.reply = reply
        self.mode = _Mode.REPLACED if reply.replaces_body else _Mode.PASS
        self.server_write = self.server_start(reply.status_line, list(reply.headers), self.exc_info)
        self.sent = True
        self.count(reply.status, len(body) if reply.status == 304 else 0, False)
        if self.drop_body:
            return []
        return [reply.body] if reply.body else ([] if reply.replaces_body else [body])

    def _remember(self, reply: Reply, length: int | None) -> None:
        """Store the validator of a GET/HEAD 2xx (stored-ETag mode) under the ticket taken before the app."""
        if self.flow is not None:
            self.flow.remember(self.code, self.response_headers, reply, length, self.tags)

    def _tags(self) -> list[str]:
        return self.tags

    def count(self, status: int, bytes_saved: int, stored: bool) -> None:
        if self.mw.metrics is not None and READBACK_KEY not in self.environ:  # a write's GET is not traffic
            self.mw.metrics.response(self.route, status, bytes_saved=bytes_saved, stored=stored)


class _Body:
    """The iterable handed to the server when the app's body streams through; closes the app's."""

    __slots__ = ("_drop", "_iterator", "_on_close", "_prefix", "_result")

    def __init__(
        self,
        prefix: list[bytes],
        iterator: Iterator[bytes],
        result: Iterable[bytes],
        drop: bool,
        on_close: Callable[[], object] | None = None,
    ) -> None:
        self._prefix = prefix
        self._iterator = iterator
        self._result = result
        self._drop = drop
        self._on_close = on_close

    def __iter__(self) -> Iterator[bytes]:
        if self._drop:
            return
        yield from self._prefix
        yield from self._iterator

    def close(self) -> None:
        try:
            _close(self._result)
        finally:
            if self._on_close is not None:
                self._on_close()

"""``ETagMiddleware``: ETags, RFC 9110 preconditions and stored ETags around any PEP 3333 app.

The middleware only translates: it unpacks the environ into an exchange
(:mod:`etagkit.core.exchange`, which decides everything HTTP), runs the app when told, hands the
exchange the app's status and headers (and a complete body when it asks for one), and lets the shared
driver perform what the steps say. PEP 3333 is kept to the letter: the app's iterable is always
closed, ``write()`` works, ``exc_info`` is honoured, every header is a native string, and a body of
unknown length streams through at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from types import TracebackType
from typing import Any
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from ._config import algorithm as check_algorithm
from ._config import allowed_hosts as compile_hosts
from ._config import callable_or_none, credential_fields, flag, number, optional_flag, positive_int
from ._driver import UNREAD, Driver
from ._environ import wsgi_request
from ._errors import ConfigurationError
from ._lane import RevalidationLane
from ._pep3333 import Body, close_iterable, complete_body, status_code
from ._readback import READBACK_KEY, read_current_validator
from ._validators import MetricsSink, ValidatorStore, check_cache
from .core.etag import HashAlgorithm
from .core.exchange import Answer, Exchange, Hash, Send, Settings
from .core.headers import TOKEN
from .core.reply import Validator

__all__ = ["ETagMiddleware"]

_Headers = list[tuple[str, str]]
_ExcInfo = tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None] | None
_Write = Callable[[bytes], object]
_FIELD_NAME = re.compile(TOKEN)  # RFC 9110 §5.1: a field name is a token


class ETagMiddleware:
    """Wrap a WSGI app: ETags for its GET/HEAD responses, preconditions, optional stored ETags.

    Options:

    * ``cache``: a ``etagkit.cache.TagCache`` for stored ETags: a matching revalidation is answered
      304 without calling the app. Stored validators are a per-route choice: a response stores its
      validator when it names tags in ``tag_header`` (default ``Cache-Tag``, space or comma separated,
      stripped before the response leaves unless ``keep_tag_header``), or on every GET/HEAD with
      ``stored=True`` (``stored=False``: never). A successful unsafe request invalidates the stored
      validators of its path and the tags its response names.
    * ``scope(environ) -> str | None``: the auth scope of a credentialed request (e.g. a user id).
      Requests with Authorization, Cookie or REMOTE_USER skip stored validators unless a scope is
      returned.
    * ``validator(environ) -> Validator | None``: the app's cheap current validator of the target
      (a version, an ``updated_at``); evaluated before the app, so a match or a stale If-Match never
      runs it, and sent as the response's ETag without buffering (an ETag / Last-Modified the app
      sets itself wins).
    * ``max_buffer``: the largest body hashed (bytes). Only a body that is already complete (a list
      or tuple) or declares its Content-Length within the cap is hashed; any other stream passes
      through untagged, and ``text/event-stream`` always does.
    * ``algorithm``: the hash of generated ETags (``"sha256"``; ``"xxh3"`` / ``"blake3"`` with the
      ``fast`` extra, see ``generate_etag``).
    * ``weak``: generate weak ETags. ``weaken_encoded``: a content-coded body gets the weak tag
      instead of a per-coding strong one (generated tags only: an app's own ETag is sent as is).
    * ``require_precondition``: answer 428 to an unsafe request other than POST with no lost-update
      guard (If-Match, a valid If-Unmodified-Since, or If-None-Match; RFC 6585 §3).
    * ``json_errors``: 412/428 bodies as JSON (True), text (False) or by content negotiation (None).
    * ``metrics``: an ``etagkit.metrics.Metrics``; ``route(environ) -> str`` names the route counted.
    * ``ttl``: lifetime of stored validators (seconds; None: the cache's default).
    * ``credential_headers``: request fields that carry credentials besides Authorization, Cookie
      and REMOTE_USER (e.g. ``["X-API-Key"]``): such requests skip stored validators without a scope.
    * ``allowed_hosts``: host patterns stored validators are kept for (Django's ALLOWED_HOSTS forms:
      ``"example.com"``, ``".example.com"``, ``"*"``); other hosts are answered statelessly and leave
      nothing in the cache. None (default): any host.
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
        stored: bool | None = None,
        credential_headers: Iterable[str] = (),
        allowed_hosts: Iterable[str] | None = None,
        algorithm: HashAlgorithm = "sha256",
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
        self.settings = Settings(
            weak=flag("weak", weak),
            weaken_encoded=flag("weaken_encoded", weaken_encoded),
            max_buffer=positive_int("max_buffer", max_buffer, minimum=0),
            require_precondition=flag("require_precondition", require_precondition),
            json_errors=optional_flag("json_errors", json_errors),
            stored=optional_flag("stored", stored),
            tag_header=tag_header,
            keep_tag_header=flag("keep_tag_header", keep_tag_header),
            credential_fields=credential_fields(credential_headers),
            allowed_hosts=compile_hosts(allowed_hosts),
            algorithm=check_algorithm("algorithm", algorithm),
        )
        self.store = ValidatorStore(cache, ttl=ttl, metrics=metrics) if cache is not None else None
        self.driver = Driver(self.store, metrics)
        self.lane: RevalidationLane | None = None  # the common revalidation's fast lane
        cheap, scoped = validator is not None, scope is not None
        if self.store is not None and RevalidationLane.takes(
            self.settings, has_store=True, has_tags=False, cheap=cheap, scoped=scoped
        ):
            self.lane = RevalidationLane(self.settings, self.store)
        self.validator = validator
        self.scope = scope
        self.metrics = metrics
        self.route = route

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        route = self.route(environ) if self.route is not None else ""
        record = UNREAD
        if self.lane is not None:  # the common revalidation, answered from its stored record
            fast, record = self.lane.read(environ, route)
            if fast is not None:
                self.driver.count(route, fast.tally, None)
                start_response(fast.reply.status_line, list(fast.reply.headers))
                return []
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        scope = self.scope
        exchange = Exchange(
            self.settings,
            wsgi_request(environ, method, keyed=self.store is not None),
            validator=self.validator(environ) if self.validator is not None else None,
            scope=(lambda: scope(environ)) if scope is not None else None,
            has_store=self.store is not None,
        )
        counted = READBACK_KEY not in environ  # a write's read-back GET is not traffic
        step = self.driver.start(exchange, route, lambda: read_current_validator(self, environ), record)
        if isinstance(step, Answer):
            self.driver.settle(exchange, step, None, route, counted=counted)
            reply = step.reply
            start_response(reply.status_line, list(reply.headers))
            return [reply.body] if reply.body and method != "HEAD" else []
        if step.drop_range or step.head_as_get:
            environ = dict(environ)
            if step.drop_range:  # If-Range not confirmed: the full representation (RFC 9110 §13.1.5)
                environ.pop("HTTP_RANGE", None)
                environ.pop("HTTP_IF_RANGE", None)
            if step.head_as_get:  # HEAD gets the ETag GET would get; the body is dropped
                environ["REQUEST_METHOD"] = "GET"
        ticket = self.driver.begin(step, route)
        call = _Call(self.driver, exchange, ticket, route, start_response, drop_body=step.head_as_get)
        call.counted = counted
        return call.run(self.app, environ)


class _Call:
    """One app call: captures ``start_response``, hands the exchange the head (and a complete body)
    and gives the server what the exchange decided."""

    __slots__ = (
        "chunks",
        "counted",
        "driver",
        "drop_body",
        "exc_info",
        "exchange",
        "headers",
        "route",
        "server_start",
        "server_write",
        "size",
        "state",
        "status",
        "step",
        "ticket",
    )

    def __init__(
        self,
        driver: Driver,
        exchange: Exchange,
        ticket: Any,
        route: str,
        start_response: StartResponse,
        *,
        drop_body: bool,
    ) -> None:
        self.driver, self.exchange, self.ticket, self.route = driver, exchange, ticket, route
        self.server_start, self.drop_body, self.counted = start_response, drop_body, True
        self.status: str | None = None
        self.headers: _Headers = []
        self.exc_info: _ExcInfo = None
        self.state = "head"  # head -> hash (collecting) | pass (streaming) | answered
        self.step: Answer | Send | None = None
        self.server_write: _Write | None = None
        self.chunks: list[bytes] = []
        self.size = 0

    # -- what the app sees ----------------------------------------------------------------------------

    def start_response(self, status: str, headers: _Headers, exc_info: _ExcInfo = None) -> _Write:
        if exc_info is not None and exc_info[0] is not None:
            if self.state in ("pass", "answered"):  # sent already: the server decides (PEP 3333)
                self.state = "pass"
                self.server_write = self.server_start(status, headers, exc_info)
                return self._write
        elif self.status is not None:
            raise AssertionError("start_response called a second time without exc_info (PEP 3333)")
        else:
            exc_info = None
        self.status, self.headers, self.exc_info = status, list(headers), exc_info
        self.state, self.chunks, self.size = "head", [], 0
        return self._write

    def _write(self, data: bytes) -> None:
        """The legacy ``write()`` callable: a body that streams, so its length is unknown."""
        if self.state == "head":
            self._head(None, complete=False)
        self._take(data)

    def _take(self, data: bytes) -> None:
        if self.state == "pass":
            if not self.drop_body and self.server_write is not None:
                self.server_write(data)
        elif self.state == "hash":
            self.chunks.append(data)
            self.size += len(data)
            if self.size > self.exchange.settings.max_buffer:  # the declared length lied: stream it
                self._send(self.exchange.overflow())
                held, self.chunks = self.chunks, []
                for chunk in held:
                    self._take(chunk)

    # -- what the server gets -------------------------------------------------------------------------

    def run(self, app: WSGIApplication, environ: WSGIEnvironment) -> Iterable[bytes]:
        result = app(environ, self.start_response)
        try:
            return self._body(result)
        except BaseException:
            close_iterable(result)
            raise

    def _body(self, result: Iterable[bytes]) -> Iterable[bytes]:
        prefix: list[bytes] = []
        iterator: Iterator[bytes] | None = None
        if self.status is None:  # started lazily, from its first iteration (PEP 3333)
            iterator = iter(result)
            prefix = list(islice(iterator, 1))
            if self.status is None:
                raise RuntimeError("the WSGI application returned without calling start_response")
        if self.state == "head":
            complete = iterator is None and complete_body(result)
            length = sum(map(len, result)) if complete else None
            self._head(length, complete=complete)
            if complete and self.state == "hash":  # already whole: no chunk-by-chunk collecting
                self.chunks = list(result)
                close_iterable(result)
                return self._finish()
        if self.state == "hash":
            for chunk in prefix or ():
                self._take(chunk)
            prefix = []
            pending = iterator if iterator is not None else iter(result)
            for chunk in pending:
                self._take(chunk)
                if self.state != "hash":  # overflowed: the rest streams through
                    iterator = pending
                    break
            else:
                close_iterable(result)
                return self._finish()
        if self.state == "answered":
            close_iterable(result)
            reply = self.step.reply if self.step is not None else None
            body = reply.body if reply is not None else None
            return [body] if body and not self.drop_body else []
        on_close = self.driver.again_later(self.step, self.route) if self.step is not None else None
        if iterator is None and not prefix and not self.drop_body and on_close is None:
            return result  # untouched: the server iterates and closes it
        return Body(prefix, iterator or iter(result), result, self.drop_body, on_close)

    def _head(self, length: int | None, *, complete: bool) -> None:
        step = self.exchange.respond(status_code(self.status), self.headers, length=length, complete=complete)
        if isinstance(step, Hash):
            self.state = "hash"
        else:
            self._send(step)

    def _finish(self) -> list[bytes]:
        body = b"".join(self.chunks)
        self.chunks = []
        self._send(self.exchange.finish(body))
        if self.drop_body or self.state == "answered":
            reply = self.step.reply if self.step is not None else None
            return [reply.body] if reply is not None and reply.body and not self.drop_body else []
        return [body]

    def _send(self, step: Answer | Send) -> None:
        self.step = step
        self.driver.settle(self.exchange, step, self.ticket, self.route, counted=self.counted)
        reply = step.reply
        status = self.status if isinstance(step, Send) and reply.status == status_code(self.status) else None
        self.server_write = self.server_start(status or reply.status_line, list(reply.headers), self.exc_info)
        self.state = "answered" if isinstance(step, Answer) else "pass"

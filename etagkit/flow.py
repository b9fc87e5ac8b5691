"""Conditional requests for a custom server (stdlib ``http.server``, a socket loop, another framework).

One object runs the whole exchange of :mod:`etagkit.core.exchange` (the one every face drives), with
plain values in and out: no WSGI environ, no call order to get right::

    flow = ConditionalFlow(cache=TagCache())           # once, at start-up

    request = flow.open("GET", "/items/1?full=1", headers, host="example.org", port=8000)
    if request.answer is not None:                     # 304 / 412 / 428: the handler never runs
        send(request.answer.status, request.answer.headers, request.answer.body)
    else:
        status, headers, body = handler()              # body: the complete bytes, or None if it streams
        reply = request.respond(status, headers, body)
        send(reply.status, reply.headers, reply.body if reply.replaces_body else body)
        request.close()                                # after the body went out (a write invalidates again)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._config import algorithm as check_algorithm
from ._config import allowed_hosts as compile_hosts
from ._config import cache_control as cache_control_of
from ._config import callable_or_none, credential_fields, flag, number, optional_flag, positive_int
from ._driver import Driver
from ._validators import MetricsSink, ValidatorStore, check_cache
from .core.etag import HashAlgorithm
from .core.exchange import Answer, Exchange, Hash, Request, Run, Send, Settings
from .core.headers import fields_of
from .core.keys import origin_of
from .core.reply import Reply, Validator

__all__ = ["ConditionalFlow", "FlowRequest"]


class ConditionalFlow:
    """The settings and the store of a server's conditional requests (see the module doc).

    ``cache``: a ``TagCache`` for stored validators (per route: ``tags=`` or ``stored``); the other
    options are those of ``ETagMiddleware`` (``credential_headers``, ``allowed_hosts``,
    ``algorithm`` included).
    """

    def __init__(
        self,
        cache: Any = None,
        *,
        metrics: MetricsSink | None = None,
        weak: bool = False,
        weaken_encoded: bool = False,
        max_buffer: int = 1 << 20,
        require_precondition: bool = False,
        json_errors: bool | None = None,
        stored: bool | None = None,
        ttl: float | None = None,
        credential_headers: Iterable[str] = (),
        allowed_hosts: Iterable[str] | None = None,
        algorithm: HashAlgorithm = "sha256",
    ) -> None:
        check_cache(cache)
        if ttl is not None:
            number("ttl", ttl, positive=True)
        self.settings = Settings(
            weak=flag("weak", weak),
            weaken_encoded=flag("weaken_encoded", weaken_encoded),
            max_buffer=positive_int("max_buffer", max_buffer, minimum=0),
            require_precondition=flag("require_precondition", require_precondition),
            json_errors=optional_flag("json_errors", json_errors),
            stored=optional_flag("stored", stored),
            credential_fields=credential_fields(credential_headers),
            allowed_hosts=compile_hosts(allowed_hosts),
            algorithm=check_algorithm("algorithm", algorithm),
        )
        store = ValidatorStore(cache, ttl=ttl, metrics=metrics) if cache is not None else None
        self.driver = Driver(store, metrics)
        self._with_cache_control: dict[str, Settings] = {}

    def _cache_control(self, value: str) -> Settings:
        settings = dataclasses.replace(self.settings, cache_control=cache_control_of("cache_control", value))
        if len(self._with_cache_control) < 64:  # a server has a few; never grow with requests
            self._with_cache_control[value] = settings
        return settings

    def invalidate(self, *tags: str) -> None:
        """Invalidate tags now, in every process sharing the cache (e.g. after a write elsewhere).
        Raises StoreUnavailableError when it could not be recorded (see ``TagCache.invalidate_tags``)."""
        if self.driver.store is not None:
            self.driver.store.invalidate(*tags, route="", strict=True)

    def open(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str] | Iterable[tuple[str, str]],
        *,
        scheme: str = "http",
        host: str | None = None,
        port: int | str | None = None,
        remote_user: str | None = None,
        validator: Validator | None = None,
        tags: Iterable[str] = (),
        scope: str | None = None,
        read_back: Callable[[], Validator | None] | None = None,
        cache_control: str | None = None,
        route: str = "",
    ) -> FlowRequest:
        """Start one request and decide what can be decided before its handler runs.

        ``target``: the request target (path and query); the origin is ``scheme`` plus the Host field
        (else ``host`` and ``port``). ``validator``: the target's cheap current validator, when the
        server knows it (a version): a match is a 304 and a stale If-Match a 412 before any work.
        ``tags``: the route's tags (its validators are stored and invalidated under them). ``scope``:
        the user a credentialed request's answers belong to. ``read_back()``: the current validator
        of a conditional write's target when neither ``validator`` nor a stored one is known.
        ``cache_control``: the route's Cache-Control, sent on its 2xx and on a 304 answered before
        the handler (RFC 9110 §15.4.5: the 304 carries what the 200 would).
        """
        callable_or_none("read_back", read_back)
        items = list(headers.items() if isinstance(headers, Mapping) else headers)
        fields = fields_of(items)
        path, _, query = target.partition("?")
        authority = fields.get("host") or host or ""
        request = Request(
            method=method.upper(),
            path=path,
            query=query,
            origin=origin_of(scheme, authority, None if fields.get("host") else port),
            fields=fields,
            remote_user=remote_user,
        )
        tagged = tuple(tags)
        settings = self.settings
        if cache_control is not None:
            settings = self._with_cache_control.get(cache_control) or self._cache_control(cache_control)
        exchange = Exchange(
            settings,
            request,
            validator=validator,
            tags=(lambda: tagged) if tagged else None,
            scope=(lambda: scope) if scope is not None else None,
            has_store=self.driver.store is not None,
        )
        return FlowRequest(self.driver, exchange, route, read_back)


class FlowRequest:
    """One request in a :class:`ConditionalFlow`: its early ``answer`` or, after the handler,
    :meth:`respond`. ``drop_range``: run the handler without the request's Range (If-Range could
    not be confirmed, RFC 9110 §13.1.5); ``render_as_get``: render a HEAD as GET so it gets GET's
    ETag (send no body)."""

    __slots__ = ("_driver", "_exchange", "_route", "_run", "_step", "_ticket", "answer")

    def __init__(
        self,
        driver: Driver,
        exchange: Exchange,
        route: str,
        read_back: Callable[[], Validator | None] | None,
    ) -> None:
        self._driver, self._exchange, self._route = driver, exchange, route
        self._step: Answer | Send | None = None
        step = driver.start(exchange, route, read_back or _unknown)
        self.answer: Reply | None = None
        self._run: Run = Run()
        self._ticket: Any = None
        if isinstance(step, Answer):
            driver.settle(exchange, step, None, route)
            self.answer = step.reply
            return
        self._run = step
        self._ticket = driver.begin(step, route)

    @property
    def drop_range(self) -> bool:
        return self._run.drop_range

    @property
    def render_as_get(self) -> bool:
        return self._run.head_as_get

    def respond(self, status: int, headers: Iterable[tuple[str, str]], body: bytes | None = None) -> Reply:
        """The handler's response as it must be sent: with its ETag, or a 304 / 412 instead.

        ``body``: the complete identity body (hashed when the handler gave no validator), or None
        when it streams (it then goes out untagged, unless a validator is known). Send ``reply.body``
        when ``reply.replaces_body``, else the handler's body.
        """
        if self.answer is not None:
            raise RuntimeError("this request was answered before its handler: send .answer")
        exchange = self._exchange
        size = len(body) if body is not None else None
        step = exchange.respond(status, headers, length=size, complete=body is not None)
        if isinstance(step, Hash):
            assert body is not None
            step = exchange.finish(body)
        self._step = step
        self._driver.settle(exchange, step, self._ticket, self._route)
        return step.reply

    def close(self) -> None:
        """After the body was sent: a successful write invalidates its target once more (it may have
        committed while its body went out)."""
        if self._step is not None:
            again = self._driver.again_later(self._step, self._route)
            if again is not None:
                again()


def _unknown() -> Validator | None:
    return None

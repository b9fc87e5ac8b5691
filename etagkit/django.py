"""Django: ``ETagMiddleware`` for ``MIDDLEWARE``, the per-view ``@conditional`` decorator, and
``invalidate`` helpers for model signals. Sync and async (WSGI and ASGI Django) alike.

Configuration is one setting, the options of :class:`etagkit.wsgi.ETagMiddleware` by name::

    ETAGKIT = {"cache": TagCache(RedisStore(...)), "json_errors": True}
    MIDDLEWARE = [..., "etagkit.django.ETagMiddleware"]

    @conditional(etag=lambda request, pk: Book.objects.values_list("version", flat=True).get(pk=pk),
                 tags=["books", "book:{pk}"])
    def book(request, pk): ...

    invalidate_on_save(Book, tags=["books", "book:{pk}"])      # post_save / post_delete

Like ``django.views.decorators.http.condition``, ``etag=`` / ``last_modified=`` receive the view's
arguments (``request`` and the URL's) and run before the view; unlike it, the §13.2.2 order is
RFC 9110's (If-Match before If-None-Match, 412 vs 304 by method), HEAD gets GET's tag, stored
validators answer before the view, and a write invalidates its tags. Every decision is the
exchange's (:mod:`etagkit.core.exchange`); this module translates ``HttpRequest`` / ``HttpResponse``.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

try:
    from asgiref.sync import iscoroutinefunction, markcoroutinefunction
    from django.conf import settings as django_settings
    from django.db.models.signals import post_delete, post_save
    from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without django
    raise ImportError("etagkit.django needs Django: pip install 'etagkit[django]'") from exc

from ._adriver import AsyncDriver, ReadBackHead
from ._config import cache_control as cache_control_of
from ._config import callable_or_none
from ._environ import wsgi_request
from ._readback import READBACK_KEY, read_environ
from ._route import RouteOptions
from .cache._keys import TagBuilder, TagSpec, bound_arguments
from .core.exchange import (
    Answer,
    Exchange,
    Hash,
    Run,
    Send,
    Settings,
)
from .core.readback import read_back_validator
from .core.reply import Reply, Validator
from .wsgi import ETagMiddleware as _Options

__all__ = ["ETagMiddleware", "conditional", "invalidate", "invalidate_on_save"]

V = TypeVar("V", bound=Callable[..., Any])
_HANDLED = "_etagkit_view"  # the exchange of the decorated view that answers a request


@dataclass(frozen=True, slots=True)
class _State:
    options: _Options  # the checked options (settings, store, driver, scope, route)
    adriver: AsyncDriver


_STATES: dict[int, tuple[object, _State]] = {}


def _state() -> _State:
    """The ``ETAGKIT`` setting, checked once (a mistake raises ConfigurationError on first use)."""
    given = getattr(django_settings, "ETAGKIT", {})
    held = _STATES.get(id(given))
    if held is not None and held[0] is given:
        return held[1]
    options = _Options(lambda environ, start_response: [], **given)
    state = _State(options, AsyncDriver(options.driver, given.get("cache")))
    _STATES.clear()
    _STATES[id(given)] = (given, state)
    return state


def invalidate(*tags: str) -> None:
    """Invalidate tags now in every process sharing the cache (stored validators carrying them go)."""
    store = _state().options.store
    if store is not None:
        store.invalidate(*tags)


def invalidate_on_save(model: type, *, tags: TagSpec) -> None:
    """Invalidate ``tags`` after every save and delete of ``model`` (``post_save`` / ``post_delete``).
    ``tags``: literals, templates over the instance (``"book:{pk}"``; its fields and ``pk``) or
    callables taking the instance."""
    specs: tuple[Any, ...] = (tags,) if isinstance(tags, str) or callable(tags) else tuple(tags)

    def receiver(sender: type, instance: Any, **kwargs: Any) -> None:
        names: list[str] = []
        fields = {**vars(instance), "pk": instance.pk}
        for spec in specs:
            made = spec.format_map(fields) if isinstance(spec, str) else spec(instance)
            names.extend((made,) if isinstance(made, str) else made)
        invalidate(*names)

    post_save.connect(
        receiver, sender=model, weak=False, dispatch_uid=f"etagkit-save-{id(model)}-{id(specs)}"
    )
    post_delete.connect(
        receiver, sender=model, weak=False, dispatch_uid=f"etagkit-del-{id(model)}-{id(specs)}"
    )


# -- translating Django's request and response ---------------------------------------------------------


def _exchange(
    request: HttpRequest,
    settings: Settings,
    state: _State,
    *,
    validator: Validator | None = None,
    tags: Callable[[], Iterable[str]] | None = None,
    scope: Callable[[], str | None] | None = None,
) -> Exchange:
    default = state.options.scope
    if scope is None and default is not None:
        scope = lambda: default(request)  # noqa: E731
    return Exchange(
        settings,
        wsgi_request(request.META, str(request.method).upper()),
        validator=validator,
        tags=tags,
        scope=scope,
        has_store=state.options.store is not None,
    )


def _resolved_route(request: HttpRequest) -> str:
    match = request.resolver_match
    return str(match.route) if match is not None else str(request.path)


def _validator(options: _Options, request: HttpRequest) -> Validator | None:
    """The ``validator`` option's cheap current validator (it takes the request)."""
    return options.validator(request) if options.validator is not None else None


def _read_back_request(request: HttpRequest) -> HttpRequest:
    sub = copy.copy(request)
    sub.method = "GET"
    sub.META = read_environ(request.META)
    return sub


def _head_of(response: HttpResponseBase) -> tuple[int, list[tuple[str, str]]]:
    headers = list(response.items())
    headers += [("Set-Cookie", morsel.OutputString()) for morsel in response.cookies.values()]
    return response.status_code, headers


def _run_request(request: HttpRequest, run: Run) -> None:
    if run.drop_range:  # If-Range not confirmed: the full representation (RFC 9110 §13.1.5)
        request.META.pop("HTTP_RANGE", None)
        request.META.pop("HTTP_IF_RANGE", None)
    if run.head_as_get:  # HEAD gets the ETag GET would get; the body is dropped
        request.method = "GET"


def _respond(exchange: Exchange, response: HttpResponseBase) -> Answer | Send:
    status, headers = _head_of(response)
    if isinstance(response, HttpResponse):
        body = response.content
        step = exchange.respond(status, headers, length=len(body), complete=True)
        return exchange.finish(body) if isinstance(step, Hash) else step
    step = exchange.respond(status, headers, length=None, complete=False)  # a stream: never hashed
    return exchange.overflow() if isinstance(step, Hash) else step


def _reply(reply: Reply, *, head: bool, cookies_from: HttpResponseBase | None = None) -> HttpResponse:
    response = HttpResponse(b"" if head else reply.body or b"", status=reply.status)
    del response["Content-Type"]  # exactly the reply's fields: none on a 304 (RFC 9110 §15.4.5)
    _set_headers(response, reply.headers)
    if cookies_from is not None:
        response.cookies = cookies_from.cookies
    return response


def _set_headers(response: HttpResponseBase, headers: Iterable[tuple[str, str]]) -> None:
    for name in list(response.headers):
        del response[name]
    cookies = {morsel.OutputString() for morsel in response.cookies.values()}
    joined: dict[str, str] = {}
    for name, value in headers:
        if name.lower() == "set-cookie" and value in cookies:
            continue  # response.cookies sends it
        joined[name] = f"{joined[name]}, {value}" if name in joined else value
    for name, value in joined.items():
        response[name] = value


def _apply(
    step: Answer | Send, response: HttpResponseBase, *, drop_body: bool, again: Callable[[], None] | None
) -> HttpResponseBase:
    """The response the exchange decided: its reply in place of the view's, or the view's with the
    reply's headers (its body dropped for HEAD, a stream closed undrained)."""
    if isinstance(step, Answer):
        response.close()
        return _reply(step.reply, head=drop_body, cookies_from=response)
    _set_headers(response, step.reply.headers)
    if drop_body:
        _drop_body(response)
    if again is not None:  # once the server closed the response (a write invalidates again)
        response._resource_closers.append(again)
    return response


def _drop_body(response: HttpResponseBase) -> None:
    """HEAD answered as GET: no body, and a stream closed undrained."""
    if isinstance(response, StreamingHttpResponse):
        response.close()
        response.streaming_content = []
    elif isinstance(response, HttpResponse):
        response.content = b""


# -- the middleware ----------------------------------------------------------------------------------


def _serve(
    exchange: Exchange,
    request: HttpRequest,
    route: str,
    run: Callable[[], HttpResponseBase],
    read_back: Callable[[], Validator | None],
) -> HttpResponseBase:
    """One exchange around ``run()`` (the rest of the middleware chain, or the view)."""
    driver, counted = _state().options.driver, READBACK_KEY not in request.META
    step = driver.start(exchange, route, read_back)
    if isinstance(step, Answer):
        driver.settle(exchange, step, None, route, counted=counted)
        return _reply(step.reply, head=request.method == "HEAD")
    _run_request(request, step)
    ticket = driver.begin(step, route)
    response = run()
    if getattr(request, _HANDLED, exchange) is not exchange:
        if step.head_as_get:  # a decorated view inside answered (and counted) itself
            _drop_body(response)
        return response
    after = _respond(exchange, response)
    driver.settle(exchange, after, ticket, route, counted=counted)
    return _apply(after, response, drop_body=step.head_as_get, again=driver.again_later(after, route))


async def _aserve(
    exchange: Exchange,
    request: HttpRequest,
    route: str,
    run: Callable[[], Awaitable[HttpResponseBase]],
    read_back: Callable[[], Awaitable[ReadBackHead]],
) -> HttpResponseBase:
    """:func:`_serve` on an event loop (store calls off it when the store may block)."""
    adriver, counted = _state().adriver, READBACK_KEY not in request.META
    step = await adriver.start(exchange, route, read_back)
    if isinstance(step, Answer):
        await adriver.settle(exchange, step, None, route, counted=counted)
        return _reply(step.reply, head=request.method == "HEAD")
    _run_request(request, step)
    ticket = await adriver.begin(step, route)
    response = await run()
    if getattr(request, _HANDLED, exchange) is not exchange:
        if step.head_as_get:  # a decorated view inside answered (and counted) itself
            _drop_body(response)
        return response
    after = _respond(exchange, response)
    await adriver.settle(exchange, after, ticket, route, counted=counted)
    return _apply(after, response, drop_body=step.head_as_get, again=adriver.driver.again_later(after, route))


class ETagMiddleware:
    """ETags, preconditions and stored ETags for every response of a Django project (``MIDDLEWARE``).
    Options come from the ``ETAGKIT`` setting; a view under :func:`conditional` answers itself."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        _state()  # a mistake in ETAGKIT raises now, when Django loads its middleware
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def _exchange(self, request: HttpRequest) -> tuple[Exchange, str]:
        state = _state()
        options = state.options
        route = options.route(request) if options.route is not None else ""
        return _exchange(request, options.settings, state, validator=_validator(options, request)), route

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        exchange, route = self._exchange(request)
        return _serve(
            exchange, request, route, lambda: self.get_response(request), lambda: self._read_back(request)
        )

    def _read_back(self, request: HttpRequest) -> Validator | None:
        response = self(_read_back_request(request))
        response.close()
        return read_back_validator(*_head_of(response))

    async def _acall(self, request: HttpRequest) -> Any:
        exchange, route = self._exchange(request)
        return await _aserve(
            exchange, request, route, lambda: self.get_response(request), lambda: self._aread_back(request)
        )

    async def _aread_back(self, request: HttpRequest) -> tuple[int, list[tuple[str, str]]]:
        response = await self._acall(_read_back_request(request))
        response.close()
        return _head_of(response)


# -- the per-view decorator ------------------------------------------------------------------------


def conditional(
    *,
    etag: Callable[..., Any] | None = None,
    last_modified: Callable[..., datetime | None] | None = None,
    tags: TagSpec = (),
    cache_control: str | None = None,
    scope: Callable[..., str | None] | None = None,
    require_precondition: bool | None = None,
    auto_invalidate: bool | None = None,
    stored: bool | None = None,
) -> Callable[[V], V]:
    """Make a view conditional (RFC 9110 §13), as ``@kit.conditional`` in Flask: ``etag(request,
    **url_kwargs)`` / ``last_modified(...)`` run before the view (a match is a 304, a stale If-Match a
    412, and the view never runs); ``tags`` (literals, templates over the view's arguments,
    callables) store its validators and are invalidated by a successful write; ``scope(request)``:
    the auth scope of credentialed requests. Works on ``def`` and ``async def`` views."""
    callable_or_none("scope", scope)
    policy = RouteOptions(
        etag=etag,
        last_modified=last_modified,
        tags=tags,
        cache_control=cache_control_of("cache_control", cache_control),
        require_precondition=require_precondition,
        auto_invalidate=auto_invalidate,
        stored=stored,
    )

    def decorate(view: V) -> V:
        sig = inspect.signature(view)
        tag_of = TagBuilder(sig, policy.tags)  # a bad template raises now

        def prepare(
            request: HttpRequest, args: Any, kwargs: Any
        ) -> tuple[Exchange, str, HttpResponse | None]:
            state = _state()
            arguments = bound_arguments(sig, (request, *args), kwargs)
            checked = policy.checked(arguments)
            auth = scope
            exchange = _exchange(
                request, policy.settings(state.options.settings), state,
                validator=checked.validator if checked is not None else None,
                tags=(lambda: tag_of((request, *args), kwargs, arguments)) if tag_of else None,
                scope=(lambda: auth(request)) if auth is not None else None,
            )  # fmt: skip
            named = state.options.route
            route = named(request) if named is not None else _resolved_route(request)
            setattr(request, _HANDLED, exchange)  # the middleware around steps aside after the view
            if checked is None or READBACK_KEY not in request.META:
                return exchange, route, None
            # the middleware reads a write's target back: the cheap validator answers, the view never runs
            return exchange, route, _reply(exchange.answer_read_back().reply, head=False)

        if iscoroutinefunction(view):

            @functools.wraps(view)
            async def awrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
                exchange, route, read = prepare(request, args, kwargs)
                if read is not None:
                    return read
                run = lambda: view(request, *args, **kwargs)  # noqa: E731
                return await _aserve(exchange, request, route, run, _no_read_back)

            return awrapper  # type: ignore[return-value]

        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            exchange, route, read = prepare(request, args, kwargs)
            if read is not None:
                return read
            run = lambda: view(request, *args, **kwargs)  # noqa: E731
            return _serve(exchange, request, route, run, lambda: None)  # read back by the middleware

        return wrapper  # type: ignore[return-value]

    return decorate


async def _no_read_back() -> None:
    """A decorated view is not reachable as a GET from inside itself: a conditional write with no
    cheap validator is read back by the middleware when installed, else it runs (as without conditions)."""
    return None

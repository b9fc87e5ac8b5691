"""Route declarations for Starlette and FastAPI: ``@routes.conditional(etag=..., tags=...)`` on an endpoint.

Works with :class:`etagkit.asgi.ETagMiddleware` around the app, which holds the store: the middleware
answers stored validators *before routing* and stores / invalidates under the tags a response names
in ``Cache-Tag``. The decorator adds what only the route knows, through the same exchange
(:mod:`etagkit.core.exchange`)::

    app = FastAPI()
    app.add_middleware(ETagMiddleware, cache=TagCache())
    routes = ETagRoutes()

    @app.get("/books/{book_id}")
    @routes.conditional(etag=lambda book_id: db.version_of(book_id), tags=["books", "book:{book_id}"])
    async def book(book_id: int) -> dict: ...

* ``etag(**path_params)`` / ``last_modified(**path_params)``: the cheap current validator, called with
  the endpoint's path parameters (FastAPI's converted values) **before** the endpoint runs: a match is
  a 304 and a stale If-Match a 412, and the endpoint never runs; its value is the response's ETag.
* ``tags``: literals, templates over the path parameters (``"book:{book_id}"``) or callables over the
  endpoint's arguments; sent to the middleware in ``Cache-Tag`` (it stores under them, and a
  successful write invalidates them).
* ``cache_control``, ``require_precondition``: as ``@kit.conditional`` in Flask
  (:class:`etagkit._route.RouteOptions` holds them for both).

Inside the endpoint, ``request.state.etagkit_checked`` is the
:class:`~etagkit._route.CheckedValidator` the preconditions were checked against: its ``version`` (what
``etag=`` returned) makes the write itself conditional, closing the window between check and write.

A FastAPI endpoint keeps its own signature (dependencies, body, ``response_model``): the decorator
asks FastAPI for the ``Request`` and the ``Response`` whose headers FastAPI merges into the answer.
A Starlette endpoint (``async def endpoint(request)``) works as is.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

try:
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import Response
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without starlette
    raise ImportError("etagkit.starlette needs Starlette: pip install 'etagkit[fastapi]'") from exc

from ._config import cache_control as cache_control_of
from ._config import optional_flag
from ._route import RouteOptions
from ._scope import asgi_request, raw_headers
from .asgi import READBACK_SCOPE_KEY
from .cache._keys import TagBuilder, TagSpec
from .core.exchange import Answer, Exchange, Hash, ReadBack, Run, Send, Settings
from .core.headers import fields_of

__all__ = ["ETagRoutes"]

F = TypeVar("F", bound=Callable[..., Any])
_REQUEST, _RESPONSE = "etagkit_request", "etagkit_response"  # what the wrapper asks FastAPI for
_ROUTE_FIELDS = ("etag", "last-modified", "cache-control")  # what a route adds to its response


class ETagRoutes:
    """Per-route declarations for Starlette / FastAPI endpoints. ``tag_header``: the header the
    middleware reads the tags from (its own ``tag_header``); ``json_errors``, ``require_precondition``:
    defaults of every route (as the middleware's options)."""

    def __init__(
        self,
        *,
        tag_header: str = "Cache-Tag",
        json_errors: bool | None = None,
        require_precondition: bool = False,
    ) -> None:
        self.tag_header = tag_header
        self.defaults = Settings(
            json_errors=optional_flag("json_errors", json_errors),
            require_precondition=bool(optional_flag("require_precondition", require_precondition)),
        )

    def conditional(
        self,
        *,
        etag: Callable[..., Any] | None = None,
        last_modified: Callable[..., datetime | None] | None = None,
        tags: TagSpec = (),
        cache_control: str | None = None,
        require_precondition: bool | None = None,
    ) -> Callable[[F], F]:
        """Declare an endpoint's cheap validator, tags and Cache-Control (see the module doc)."""
        options = RouteOptions(
            etag=etag,
            last_modified=last_modified,
            tags=tags,
            cache_control=cache_control_of("cache_control", cache_control),
            require_precondition=require_precondition,
        )

        def decorate(endpoint: F) -> F:
            sig = _signature(endpoint)
            # endpoint(request) (Starlette's form): templates name path parameters, checked per request
            only_request = list(sig.parameters) == ["request"]
            shape = inspect.Signature([inspect.Parameter("path", inspect.Parameter.VAR_KEYWORD)])
            tag_of = TagBuilder(shape if only_request else sig, options.tags)  # a bad template raises now
            # FastAPI reads the wrapper's signature (Starlette ignores it) and hands it the Request and
            # the Response whose headers it merges into its answer: the endpoint's own, or ours
            params = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
            asked = {_REQUEST: _named(params, Request), _RESPONSE: _named(params, Response)}
            extra = [
                inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=kind)
                for name, kind in ((_REQUEST, Request), (_RESPONSE, Response))
                if asked[name] is None
            ]

            @functools.wraps(endpoint)
            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                if args or (
                    asked[_REQUEST] is None and _REQUEST not in kwargs
                ):  # Starlette: endpoint(request)
                    request, response = args[0] if args else kwargs["request"], None
                else:  # FastAPI
                    own_request, own_response = asked[_REQUEST], asked[_RESPONSE]
                    request = kwargs[own_request] if own_request else kwargs.pop(_REQUEST)
                    response = kwargs[own_response] if own_response else kwargs.pop(_RESPONSE)
                return await self._handle(
                    options, tag_of, endpoint, request, response=response, args=args, kwargs=kwargs
                )

            wrapper.__signature__ = sig.replace(parameters=[*params, *extra])  # type: ignore[attr-defined]
            return wrapper  # type: ignore[return-value]

        return decorate

    async def _handle(
        self,
        options: RouteOptions,
        tag_of: TagBuilder,
        endpoint: Callable[..., Any],
        request: Request,
        *,
        response: Response | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        path = {k: kwargs.get(k, v) for k, v in request.path_params.items()}  # FastAPI's converted values
        checked = options.checked(path)
        exchange = Exchange(
            options.settings(self.defaults),
            asgi_request(request.scope, request.method.upper()),
            validator=checked.validator if checked is not None else None,
        )
        if checked is not None:  # a cheap validator: decide before the endpoint runs
            before: Answer | Send | ReadBack | Run = exchange.before(None)
            if READBACK_SCOPE_KEY in request.scope:  # the middleware reads a write's target back
                before = exchange.answer_read_back()
            if isinstance(before, Answer | Send):
                reply = before.reply
                answer = Response(b"" if request.method == "HEAD" else reply.body, status_code=reply.status)
                answer.raw_headers = raw_headers(reply.headers)
                return answer
        if checked is not None:  # for the endpoint's compare-and-set (UPDATE ... WHERE version = ?)
            request.state.etagkit_checked = checked
        tags = tag_of(args, kwargs, {**kwargs, **path}) if tag_of else ()
        if inspect.iscoroutinefunction(endpoint):
            result = await endpoint(*args, **kwargs)
        else:
            result = await run_in_threadpool(endpoint, *args, **kwargs)
        if isinstance(result, Awaitable):
            result = await result
        target = result if isinstance(result, Response) else response
        if target is None:
            return result
        status = target.status_code if isinstance(result, Response) else _route_status(request)
        own = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in target.raw_headers]
        after = exchange.respond(status, own, length=None)
        # Hash: no validator here, the body is the middleware's to hash; the route adds the rest
        added = fields_of((exchange.overflow() if isinstance(after, Hash) else after).reply.headers)
        for name in _ROUTE_FIELDS:  # what the exchange adds for this route (validator, Cache-Control)
            if name in added and name not in target.headers:
                target.headers[name] = added[name]
        if tags:
            target.headers[self.tag_header] = " ".join(tags)
        return result


def _signature(endpoint: Callable[..., Any]) -> inspect.Signature:
    try:  # string annotations (``from __future__ import annotations``) resolved, as FastAPI does
        return inspect.signature(endpoint, eval_str=True)
    except (NameError, TypeError, SyntaxError):
        return inspect.signature(endpoint)


def _named(params: list[inspect.Parameter], kind: type) -> str | None:
    """The endpoint's own parameter of this type (FastAPI gives one Request, one Response)."""
    for param in params:
        if isinstance(param.annotation, type) and issubclass(param.annotation, kind):
            return param.name
    return None


def _route_status(request: Request) -> int:
    """The status FastAPI gives a return value that is not a Response (the route's ``status_code``)."""
    route = request.scope.get("route")
    status = getattr(route, "status_code", None)
    return status if isinstance(status, int) else 200

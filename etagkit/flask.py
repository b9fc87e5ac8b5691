"""``ETagKit``: the Flask extension. ETags, preconditions, stored ETags and response caching per view.

Follows Flask's extension guide: ``ETagKit(app=None, cache=None)`` and ``init_app(app)``, no
``self.app``, per-app state in ``app.extensions["etagkit"]``, ``ETAGKIT_*`` config keys set with
``setdefault``; works with app factories and several apps per process. It only translates between
Flask and the request exchange of ``etagkit.core.exchange`` (the same one ``ETagMiddleware``
drives), whose operations the shared driver performs.

Config keys (defaults): ``ETAGKIT_MAX_BUFFER`` (1 MiB: largest body hashed),
``ETAGKIT_WEAK`` (False: generate strong ETags), ``ETAGKIT_ALGORITHM`` (``"sha256"``: the hash of
generated ETags; ``"xxh3"`` / ``"blake3"`` with the ``fast`` extra), ``ETAGKIT_WEAKEN_ENCODED`` (False: a
content-coded body gets a per-coding strong tag; a view's own ETag is never rewritten),
``ETAGKIT_REQUIRE_PRECONDITION`` (False: 428 for unconditional writes other than POST),
``ETAGKIT_AUTO_INVALIDATE`` (True: a successful write invalidates the view's tags),
``ETAGKIT_STORED_ETAGS`` (None: stored ETags on views that declare ``tags=``; True: on every
decorated view; False: never; all need a cache), ``ETAGKIT_JSON_ERRORS`` (None: 412/428 bodies
negotiated; True JSON, False text),
``ETAGKIT_TTL`` (None: stored validators live as long as the cache's default),
``ETAGKIT_CREDENTIAL_HEADERS`` (``()``: further request fields carrying credentials, e.g.
``["X-API-Key"]``), ``ETAGKIT_ALLOWED_HOSTS`` (None: stored answers for any host; else Django
ALLOWED_HOSTS patterns), ``ETAGKIT_EARLY_304`` (False: True answers stored revalidations of
anonymous GET/HEAD requests before Flask dispatches, skipping its routing and hooks for them).

Example (the bookstore's shape)::

    kit = ETagKit(cache=TagCache())

    @app.get("/books")
    @kit.conditional(tags=["books"])          # stored ETag: a revalidation never runs the view
    def books(): ...

    @app.route("/books/<int:book_id>", methods=["GET", "PUT", "DELETE"])
    @kit.conditional(
        etag=lambda book_id: db.version_of(book_id),   # cheap: checked BEFORE the view
        tags=["books", "book:{book_id}"],              # invalidated after a successful PUT/DELETE
        require_precondition=True,                     # PUT/DELETE without If-Match -> 428
    )
    def book(book_id): ...
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ParamSpec, TypeVar, cast

try:
    from flask import Flask, Request, current_app, g, has_app_context, request
    from flask.typing import ResponseReturnValue
    from werkzeug.datastructures import Headers
    from werkzeug.wrappers import Response
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without flask
    raise ImportError("etagkit.flask needs Flask: pip install 'etagkit[flask]'") from exc

from ._config import algorithm as check_algorithm
from ._config import allowed_hosts as compile_hosts
from ._config import cache_control as cache_control_of
from ._config import credential_fields, flag, number, optional_flag, positive_int
from ._driver import UNREAD, Driver
from ._early import EarlyRevalidation
from ._environ import wsgi_request
from ._errors import ConfigurationError
from ._lane import RevalidationLane
from ._readback import READBACK_KEY, read_current_validator
from ._route import CheckedValidator, RouteOptions
from ._validators import MetricsSink, ValidatorStore, check_cache
from .cache._keys import TagBuilder
from .cache._keys import TagSpec as _TagSpec
from .core.exchange import Answer, Exchange, Hash, Settings
from .core.policy import CacheControl

__all__ = ["CheckedValidator", "ETagKit", "TagSpec"]

P = ParamSpec("P")
R = TypeVar("R")
TagSpec = _TagSpec
"""Tags: literals (``"books"``), templates over the view's arguments (``"book:{book_id}"``) and
callables taking the view's arguments and returning a tag or several (one, or a list of them)."""

_DEFAULTS: dict[str, Any] = {
    "ETAGKIT_MAX_BUFFER": 1 << 20,
    "ETAGKIT_WEAK": False,
    "ETAGKIT_WEAKEN_ENCODED": False,
    "ETAGKIT_REQUIRE_PRECONDITION": False,
    "ETAGKIT_AUTO_INVALIDATE": True,
    "ETAGKIT_STORED_ETAGS": None,
    "ETAGKIT_JSON_ERRORS": None,
    "ETAGKIT_TTL": None,
    "ETAGKIT_EARLY_304": False,
    "ETAGKIT_CREDENTIAL_HEADERS": (),
    "ETAGKIT_ALLOWED_HOSTS": None,
    "ETAGKIT_ALGORITHM": "sha256",
}
_BOOL_KEYS = (
    "ETAGKIT_WEAK",
    "ETAGKIT_WEAKEN_ENCODED",
    "ETAGKIT_REQUIRE_PRECONDITION",
    "ETAGKIT_AUTO_INVALIDATE",
    "ETAGKIT_EARLY_304",
)
_CHECKED = "_etagkit_checked_validator"  # the flask.g attribute checked_validator() reads


@dataclass(frozen=True, slots=True)
class _State:
    """What one app's ``init_app`` settled: read once per request from ``app.extensions``."""

    kit: ETagKit
    store: ValidatorStore | None
    defaults: Settings  # the app's exchange settings; each view's declarations go over them
    driver: Driver  # performs what the exchange asks: stored records, invalidations, metrics
    lane: RevalidationLane | None  # the common revalidation's fast lane (with a store)


def _state() -> _State:
    return _state_of(current_app)


def _state_of(app: Flask) -> _State:
    try:
        return cast(_State, app.extensions["etagkit"])
    except KeyError:
        raise ConfigurationError("ETagKit.init_app(app) was not called for this app") from None


class ETagKit:
    """The Flask extension: ``kit = ETagKit(app, cache=TagCache())`` or ``kit.init_app(app)`` later.

    ``cache`` (an ``etagkit.cache.TagCache``) turns on stored ETags and response caching; several
    apps may share one kit (and so one cache), or each use a kit of its own. ``metrics``
    (an ``etagkit.metrics.Metrics``) counts 200/304/412/428 per route.
    """

    def __init__(
        self, app: Flask | None = None, cache: Any = None, *, metrics: MetricsSink | None = None
    ) -> None:
        check_cache(cache)
        self.cache = cache
        self.metrics = metrics
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Register on ``app``: config defaults, validated now (a bad value raises ConfigurationError)."""
        if "etagkit" in app.extensions:
            raise ConfigurationError(f"ETagKit is already registered on app {app.name!r}")
        for key, value in _DEFAULTS.items():
            app.config.setdefault(key, value)
        config = app.config
        for key in _BOOL_KEYS:
            flag(key, config[key])
        ttl = config["ETAGKIT_TTL"]
        if ttl is not None:
            number("ETAGKIT_TTL", ttl, positive=True)
        cache = self.cache
        store = ValidatorStore(cache, ttl=ttl, metrics=self.metrics) if cache is not None else None
        defaults = Settings(
            max_buffer=positive_int("ETAGKIT_MAX_BUFFER", config["ETAGKIT_MAX_BUFFER"], minimum=0),
            weak=config["ETAGKIT_WEAK"],
            weaken_encoded=config["ETAGKIT_WEAKEN_ENCODED"],
            require_precondition=config["ETAGKIT_REQUIRE_PRECONDITION"],
            invalidate_tags=config["ETAGKIT_AUTO_INVALIDATE"],
            stored=optional_flag("ETAGKIT_STORED_ETAGS", config["ETAGKIT_STORED_ETAGS"]),
            json_errors=optional_flag("ETAGKIT_JSON_ERRORS", config["ETAGKIT_JSON_ERRORS"]),
            credential_fields=credential_fields(config["ETAGKIT_CREDENTIAL_HEADERS"]),
            allowed_hosts=compile_hosts(config["ETAGKIT_ALLOWED_HOSTS"]),
            algorithm=check_algorithm("ETAGKIT_ALGORITHM", config["ETAGKIT_ALGORITHM"]),
        )
        state = app.extensions["etagkit"] = _State(
            kit=self,
            store=store,
            defaults=defaults,
            driver=Driver(
                store,
                self.metrics,
                # a TagCache given the same Metrics counts each hit itself: count it once
                count_hits=getattr(cache, "_metrics", None) is not self.metrics,
            ),
            lane=RevalidationLane(defaults, store) if store is not None else None,
        )
        if config["ETAGKIT_EARLY_304"] and store is not None:
            app.wsgi_app = EarlyRevalidation(  # type: ignore[method-assign]
                app.wsgi_app, state.driver, state.defaults, functools.partial(_rule, app)
            )

    # -- inside a view ----------------------------------------------------------------------------

    @staticmethod
    def checked_validator() -> CheckedValidator | None:
        """Inside a view with ``etag=`` / ``last_modified=``: the validator this request's
        preconditions (If-Match ...) were checked against, with the raw ``version`` the ``etag=``
        callable returned; None elsewhere. Use it to make the write itself conditional
        (``UPDATE ... WHERE version = ?``) and close the window between the check and the write."""
        return cast("CheckedValidator | None", g.get(_CHECKED)) if has_app_context() else None

    # -- invalidation -----------------------------------------------------------------------------

    def invalidate(self, *tags: str) -> None:
        """Invalidate tags now, in every process sharing the cache: stored ETags and cached responses
        carrying any of them are gone (e.g. ``kit.invalidate("books", f"book:{book_id}")``).
        Raises StoreUnavailableError when the invalidation could not be recorded (the cache pays
        it as soon as it can; do not acknowledge a write that depends on it)."""
        store = _state().store if has_app_context() else None
        if store is not None:
            store.invalidate(*tags, strict=True)
        elif self.cache is not None:
            self.cache.invalidate_tags(*tags)

    # -- decorators -------------------------------------------------------------------------------

    def conditional(
        self,
        *,
        etag: Callable[..., Any] | None = None,
        last_modified: Callable[..., datetime | None] | None = None,
        tags: TagSpec = (),
        cache_control: CacheControl | str | None = None,
        scope: Callable[[], str | None] | None = None,
        require_precondition: bool | None = None,
        auto_invalidate: bool | None = None,
        stored: bool | None = None,
    ) -> Callable[[Callable[P, ResponseReturnValue]], Callable[P, Response]]:
        """Make a view conditional (RFC 9110 §13): ETags, 304 / 412 / 428, stored ETags.

        * Without ``etag`` / ``last_modified``: a GET/HEAD 200 gets a strong ETag of its body; with a
          cache and declared ``tags`` (or ``stored=True``) the validator is stored, so the next
          matching revalidation is a 304 **without running the view** (until a tag is invalidated).
        * ``etag(**view_args)`` / ``last_modified(**view_args)``: the cheap current validator (a
          version, an ``updated_at``), evaluated **before** the view: a match (304) or a stale
          If-Match (412) never runs it. ``etag`` may return an ``ETag``, its header string, or any
          version value(s) (int, str, datetime, or a tuple of them: hashed with
          ``etag_from_version``); ``None`` means the resource does not exist (``If-Match: *`` fails).
        * ``tags``: literals, templates over the view's arguments (``"book:{book_id}"``) or callables
          over them. Stored validators carry them; a successful PUT/PATCH/POST/DELETE on the view
          invalidates them (``auto_invalidate``, default ``ETAGKIT_AUTO_INVALIDATE``).
        * ``cache_control``: the Cache-Control of its 2xx GET/HEAD responses (unless the view set one).
        * ``scope()``: the auth scope (e.g. the user id) of a request with Authorization, Cookie or
          REMOTE_USER; without it such requests never use stored validators (other users' data).
        * ``require_precondition``: 428 for an unsafe request other than POST with no lost-update
          guard (If-Match, a valid If-Unmodified-Since, If-None-Match; RFC 6585 §3).
        * ``stored``: use stored ETags (default ``ETAGKIT_STORED_ETAGS``: only when ``tags`` are
          declared, since a stored validator is only as fresh as its tags' invalidations);
          ``stored=True`` without the kit's cache is a ConfigurationError, as is any other mistake
          in these arguments (raised here, at decoration).
        """
        if stored and self.cache is None:
            raise ConfigurationError("stored=True needs ETagKit(cache=TagCache(...))")
        return self._decorator(
            RouteOptions(
                etag=etag,
                last_modified=last_modified,
                tags=tags,
                cache_control=cache_control_of("cache_control", cache_control),
                scope=scope,
                require_precondition=require_precondition,
                auto_invalidate=auto_invalidate,
                stored=stored,
                cache_ttl=None,
            )
        )

    def cached(
        self,
        *,
        ttl: float,
        tags: TagSpec = (),
        cache_control: CacheControl | str | None = None,
        scope: Callable[[], str | None] | None = None,
        etag: Callable[..., Any] | None = None,
        last_modified: Callable[..., datetime | None] | None = None,
        require_precondition: bool | None = None,
        auto_invalidate: bool | None = None,
    ) -> Callable[[Callable[P, ResponseReturnValue]], Callable[P, Response]]:
        """:meth:`conditional` plus response caching: a GET/HEAD 200 is kept whole in the cache for
        ``ttl`` seconds (or until a tag is invalidated) and served from there, with its ETag and
        304s, without running the view. Responses with Set-Cookie, ``private`` or ``no-store`` are
        never cached. Needs the kit's cache (ConfigurationError here otherwise).

        With a cheap ``etag=`` / ``last_modified=`` validator, that validator is checked first (a
        match is a 304 before any cache read) and the response is cached per validator value: a
        response cached for one version is never served once the validator says another, even if
        no tag was invalidated."""
        if self.cache is None:
            raise ConfigurationError("@kit.cached needs ETagKit(cache=TagCache(...))")
        return self._decorator(
            RouteOptions(
                etag=etag,
                last_modified=last_modified,
                tags=tags,
                cache_control=cache_control_of("cache_control", cache_control),
                scope=scope,
                require_precondition=require_precondition,
                auto_invalidate=auto_invalidate,
                stored=True,
                cache_ttl=number("ttl", ttl, positive=True),
            )
        )

    def _decorator(
        self, policy: RouteOptions
    ) -> Callable[[Callable[P, ResponseReturnValue]], Callable[P, Response]]:
        def decorate(view: Callable[P, ResponseReturnValue]) -> Callable[P, Response]:
            tags = TagBuilder(inspect.signature(view), policy.tags)  # a bad template raises now
            is_async = inspect.iscoroutinefunction(view)  # once, not per request

            @functools.wraps(view)
            def wrapper(*args: P.args, **kwargs: P.kwargs) -> Response:
                return _handle(policy, tags, view, args, kwargs, is_async=is_async)

            return wrapper

        return decorate


def _handle(
    policy: RouteOptions,
    tags: TagBuilder,
    view: Callable[..., ResponseReturnValue],
    args: Any,
    kwargs: Any,
    *,
    is_async: bool,
) -> Response:
    """One request through a decorated view: drive the exchange, run the view when it says so."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    req: Request = request._get_current_object()  # type: ignore[attr-defined]
    environ = req.environ
    state = _state_of(app)
    route = req.url_rule.rule if req.url_rule is not None else req.path
    settings, record, lane = policy.settings(state.defaults), UNREAD, state.lane
    if lane is not None and lane.takes(
        settings,
        has_store=True,
        has_tags=bool(tags),
        cheap=policy.etag is not None or policy.last_modified is not None,  # checked before the view
        scoped=policy.scope is not None,
    ):  # the common revalidation, answered from its stored record
        fast, record = lane.read(environ, route)
        if fast is not None:
            state.driver.count(route, fast.tally, None)
            return _flask_reply(app.response_class, fast)
    view_args = dict(kwargs)
    checked = policy.checked(view_args)
    exchange = Exchange(
        settings,
        wsgi_request(environ, req.method, keyed=state.store is not None),
        validator=checked.validator if checked is not None else None,
        tags=(lambda: tags(args, kwargs, view_args)) if tags else None,
        scope=policy.scope,
        has_store=state.store is not None,
    )
    driver, counted = state.driver, READBACK_KEY not in environ  # a write's read-back is not traffic
    # a write's condition with no known validator is read back with a GET through the deployed app
    # (declare etag= to spare it)
    step = driver.start(exchange, route, lambda: read_current_validator(app.wsgi_app, environ), record)
    if isinstance(step, Answer):
        driver.settle(exchange, step, None, route, counted=counted)
        return _flask_reply(app.response_class, step)
    hit = driver.cached(exchange, step, route)
    if hit is not None:
        driver.settle(exchange, hit, None, route, counted=counted)
        return _flask_reply(app.response_class, hit)
    if step.drop_range:  # If-Range not confirmed: the view sends the full representation (§13.1.5)
        environ.pop("HTTP_RANGE", None)
        environ.pop("HTTP_IF_RANGE", None)
    ticket = driver.begin(step, route)  # BEFORE the view: an invalidation during it wins
    if checked is not None:
        setattr(g, _CHECKED, checked)  # for ETagKit.checked_validator() inside the view
    run = app.ensure_sync(view) if is_async else view  # an async def view runs through Flask's loop
    response = app.make_response(run(*args, **kwargs))
    complete = not response.is_streamed
    data = response.get_data() if complete else None
    given = response.headers.to_wsgi_list()
    after = exchange.respond(
        response.status_code,
        given,
        length=len(data) if data is not None else None,
        complete=complete,
    )
    if isinstance(after, Hash):
        if data is None:  # a stream with a declared Content-Length within the cap
            data = response.get_data()
        after = exchange.finish(data) if len(data) <= state.defaults.max_buffer else exchange.overflow()
    driver.settle(exchange, after, ticket, route, counted=counted, response_key=step.response_key)
    if isinstance(after, Answer):
        response.close()
        return _flask_reply(app.response_class, after)
    again = driver.again_later(after, route)
    if again is not None:  # once the server closed the response (teardown_request may commit)
        response.call_on_close(again)
    _update(response.headers, given, after.reply.headers)
    return response


# What the exchange may add to or change in a passing response's fields (its validators, the route's
# Cache-Control, the buffered body's Content-Length): the rest of the view's headers stay as they are.
_SET_BY_THE_EXCHANGE = {
    name.lower(): name for name in ("ETag", "Last-Modified", "Cache-Control", "Content-Length")
}


def _update(headers: Headers, given: Iterable[tuple[str, str]], sent: Iterable[tuple[str, str]]) -> None:
    """Make the view's ``headers`` (``given``: as the exchange saw them) carry what the exchange
    decided to send (``sent``), in place: only the fields it set or changed are written."""
    before = _exchange_fields(given)
    for key, value in _exchange_fields(sent).items():
        if before.get(key) != value:
            headers[_SET_BY_THE_EXCHANGE[key]] = value


def _exchange_fields(fields: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The fields the exchange may set, by lower-cased name; a repeated one joined (RFC 9110 §5.3)."""
    found: dict[str, str] = {}
    for name, value in fields:
        key = name.lower()
        if key in _SET_BY_THE_EXCHANGE:
            found[key] = f"{found[key]}, {value}" if key in found else value
    return found


def _rule(app: Flask, environ: dict[str, Any]) -> str:
    """The URL rule a request matches (the route name metrics use), or its path."""
    try:
        rule = app.url_map.bind_to_environ(environ).match(return_rule=True)[0]
    except Exception:  # no match, a redirect ...: name it by its path
        return str(environ.get("PATH_INFO", ""))
    return str(getattr(rule, "rule", rule))


def _flask_reply(response_class: type[Response], step: Answer) -> Response:
    """A Flask response carrying exactly the reply's headers (no default Content-Type on a 304)."""
    reply = step.reply
    response = response_class(reply.body or None, status=reply.status)
    # exactly the reply's fields: werkzeug's default Content-Type must not reach a 304 (§15.4.5)
    response.headers = Headers(list(reply.headers))
    return response

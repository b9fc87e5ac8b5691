"""etagkit against the peers people use today, on the same views, in the same rounds.

* Django: one Django view (a JSON catalog of 10 books) behind Django's own
  ``ConditionalGetMiddleware`` (md5 ETag of the content, then ``get_conditional_response``) versus
  the same Django app wrapped in etagkit's ``ETagMiddleware``: stateless (the view runs, the body is
  hashed) and with stored ETags (a matching revalidation is answered before Django runs at all).
  Each is called as a WSGI application with a fresh environ, body consumed and closed.
* Function caches: ``TagCache`` ``@cached`` hits versus Flask-Caching's ``@cached`` view hit and
  ``@memoize`` hit (SimpleCache) and a raw ``cachetools`` ``@cached`` TTLCache hit (with a lock, as
  ``TagCache`` is thread-safe too).

The issues name no target for these rows; the cache-front, adapter and client targets are in their
own modules.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import cachetools
from flask import Flask
from flask_caching import Cache

from benchmarks._harness import measure, row
from etagkit.cache import TagCache
from etagkit.wsgi import ETagMiddleware

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

CATALOG = [{"id": i, "title": f"Book {i}", "author": f"Author {i}", "year": 1990 + i} for i in range(10)]
BODY = json.dumps(CATALOG).encode()


def _environ(path: str, headers: dict[str, str]) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in headers.items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    return environ


def call(app: WSGIApp, path: str, headers: dict[str, str]) -> tuple[str, dict[str, str], bytes]:
    """One request through a WSGI app: (status line, headers, body), the iterable closed."""
    started: dict[str, Any] = {}

    def start_response(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started["status"], started["headers"] = status, dict(response_headers)
        return lambda data: None

    result = app(_environ(path, headers), start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return started["status"], started["headers"], body


def _django_apps(view_calls: list[int]) -> tuple[WSGIApp, WSGIApp]:
    """Django's WSGI handler with ConditionalGetMiddleware, and the same app without it."""
    import django
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler
    from django.http import HttpRequest, HttpResponse
    from django.urls import path

    def books(request: HttpRequest) -> HttpResponse:
        view_calls[0] += 1
        response = HttpResponse(BODY, content_type="application/json")
        # a declared length: ETagMiddleware hashes only bodies it knows to be complete
        response["Content-Length"] = str(len(BODY))
        response["Cache-Tag"] = "books"  # tags for etagkit's stored validator (stripped by it)
        # a known length (Django's CommonMiddleware sets it): ETagMiddleware hashes only bodies it
        # knows to be complete and bounded, never a stream of unknown length
        response["Content-Length"] = str(len(BODY))
        return response

    class URLs:
        urlpatterns: ClassVar[list[Any]] = [path("books", books)]

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="benchmarks",
            ALLOWED_HOSTS=["*"],
            USE_TZ=True,
            MIDDLEWARE=[],
            LOGGING_CONFIG=None,
        )
        django.setup()
    settings.ROOT_URLCONF = URLs
    settings.MIDDLEWARE = ["django.middleware.http.ConditionalGetMiddleware"]
    conditional = WSGIHandler()  # reads MIDDLEWARE now
    settings.MIDDLEWARE = []
    plain = WSGIHandler()
    return conditional, plain


def _revalidate(app: WSGIApp) -> Callable[[], object]:
    """A zero-argument call that revalidates /books with the ETag the app gave; checked to be a 304."""
    status, headers, _ = call(app, "/books", {})
    etag = headers.get("ETag")
    if not status.startswith("200") or etag is None:
        raise AssertionError(f"expected a 200 with an ETag, got {status} {headers}")
    conditional = {"If-None-Match": etag}
    status, _, body = call(app, "/books", conditional)
    if not status.startswith("304") or body:
        raise AssertionError(f"expected an empty 304, got {status}")
    return lambda: call(app, "/books", conditional)


def django(quick: bool) -> list[dict[str, Any]]:
    view_calls = [0]
    conditional, plain = _django_apps(view_calls)
    stateless = ETagMiddleware(plain)
    stored = ETagMiddleware(plain, cache=TagCache())
    peer_304 = _revalidate(conditional)
    stateless_304 = _revalidate(stateless)
    stored_304 = _revalidate(stored)
    timings = measure(
        {
            "django": peer_304,
            "stateless": stateless_304,
            "stored": stored_304,
            "django 200": lambda: call(conditional, "/books", {}),
            "stateless 200": lambda: call(stateless, "/books", {}),
        },
        quick,
    )
    before = view_calls[0]
    for _ in range(100):
        stored_304()
    if view_calls[0] != before:
        raise AssertionError("a stored-ETag revalidation ran the Django view")
    peer = "Django ConditionalGetMiddleware"
    return [
        row(
            "Django view 304: ETagMiddleware, stored ETags",
            timings["stored"],
            peer,
            timings["django"],
            note="view not called",
        ),
        row("Django view 304: ETagMiddleware, stateless", timings["stateless"], peer, timings["django"]),
        row(
            "Django view 200: ETagMiddleware, stateless",
            timings["stateless 200"],
            peer,
            timings["django 200"],
        ),
    ]


def function_caches(quick: bool) -> list[dict[str, Any]]:
    flask_app = Flask("benchmarks")
    flask_cache = Cache(flask_app, config={"CACHE_TYPE": "SimpleCache", "CACHE_DEFAULT_TIMEOUT": 300})
    tag_cache = TagCache(default_ttl=300)
    ttl_cache: cachetools.TTLCache[Any, Any] = cachetools.TTLCache(maxsize=1024, ttl=300)

    @flask_cache.cached(timeout=300)
    def flask_view() -> str:
        return BODY.decode()

    @flask_cache.memoize(timeout=300)
    def flask_book(book_id: int) -> dict[str, Any]:
        return CATALOG[book_id]

    @tag_cache.cached(300, tags=("books",))
    def tagged_view() -> str:
        return BODY.decode()

    @tag_cache.cached(300, tags=("books", "book:{book_id}"))
    def tagged_book(book_id: int) -> dict[str, Any]:
        return CATALOG[book_id]

    @cachetools.cached(ttl_cache, lock=threading.Lock())
    def raw_book(book_id: int) -> dict[str, Any]:
        return CATALOG[book_id]

    with flask_app.test_request_context("/books"):  # Flask-Caching's @cached keys on the request path
        for fn in (flask_view, tagged_view):
            if fn() != BODY.decode():
                raise AssertionError("cached views disagree")
        for book in (flask_book, tagged_book, raw_book):
            if book(3) != CATALOG[3]:
                raise AssertionError("cached functions disagree")
        timings = measure(
            {
                "tag view": tagged_view,
                "flask view": flask_view,
                "tag book": lambda: tagged_book(3),
                "flask book": lambda: flask_book(3),
                "cachetools book": lambda: raw_book(3),
            },
            quick,
        )
    stats = tag_cache.stats()
    if stats["misses"] != 2:
        raise AssertionError(f"TagCache missed during the hit benchmark: {stats}")
    return [
        row(
            "TagCache @cached hit, 1 tag, no arguments",
            timings["tag view"],
            "Flask-Caching @cached view hit",
            timings["flask view"],
        ),
        row(
            "TagCache @cached hit, 2 tags, 1 argument",
            timings["tag book"],
            "Flask-Caching @memoize hit",
            timings["flask book"],
        ),
        row(
            "TagCache @cached hit, 2 tags, 1 argument",
            timings["tag book"],
            "cachetools @cached TTLCache hit (locked)",
            timings["cachetools book"],
        ),
    ]


def run(quick: bool) -> list[dict[str, Any]]:
    """Every peer scenario."""
    return [*django(quick), *function_caches(quick)]

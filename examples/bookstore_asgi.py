"""The book catalog on ASGI: the same catalog, routes, JSON contract and errors as ``bookstore.py``,
served by Starlette on uvicorn behind ``etagkit.asgi.ETagMiddleware``::

    python examples/bookstore_asgi.py [--host H] [--port P] [--db FILE] [--redis URL] [--books N]

The data layer, the input rules and the seed are ``bookstore.py``'s own (imported, not copied); only
the web layer differs. The middleware holds the store and answers a revalidation of ``/books`` from its
stored validator before routing; ``ETagRoutes`` declares each route's cheap validator and tags.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bookstore.py beside this file

from bookstore import (
    _BREAKER_GAUGE,
    CACHE_CONTROL,
    DEFAULT_BOOKS,
    MAX_BODY,
    Book,
    Catalog,
    InvalidBook,
    _env,
    parse_book,
)

from etagkit.asgi import ETagMiddleware
from etagkit.cache import MemoryStore, Store, TagCache
from etagkit.metrics import Metrics
from etagkit.starlette import ETagRoutes

__all__ = ["create_app", "main"]

_BOOK_PATH = re.compile(r"/books/[^/]+")


def _error(status: int, detail: str, **extra: Any) -> Response:
    """An RFC 9457 problem document: the same shape as etagkit's own 412 / 428 bodies."""
    body = {"status": status, "title": HTTPStatus(status).phrase, "detail": detail, **extra}
    return Response(json.dumps(body), status_code=status, media_type="application/problem+json")


def _route_name(scope: dict[str, Any]) -> str:
    """The route counted in the metrics, named as the Flask bookstore names it."""
    path = str(scope.get("path", ""))
    return "/books/<int:book_id>" if _BOOK_PATH.fullmatch(path) else path


def create_app(
    db: str | None = None,
    redis_url: str | None = None,
    *,
    books: int | None = None,
    redis_prefix: str | None = None,
) -> Any:
    """The bookstore as an ASGI app (arguments left out are read from the environment, as in
    ``bookstore.create_app``)."""
    db = db or _env("BOOKSTORE_DB")
    redis_url = redis_url or _env("ETAGKIT_REDIS_URL")
    books = books if books is not None else int(_env("BOOKSTORE_BOOKS") or DEFAULT_BOOKS)
    redis_prefix = redis_prefix or _env("BOOKSTORE_REDIS_PREFIX") or "bookstore:"

    catalog = Catalog(db, books=books)
    metrics = Metrics()
    metrics.set_gauge("db_queries", lambda: catalog.queries)
    store: Store
    if redis_url:
        from etagkit.cache.redis import RedisStore

        redis_store = RedisStore(redis_url, prefix=redis_prefix, socket_timeout=0.25, connect_timeout=0.25)
        metrics.set_gauge("breaker_state", lambda: _BREAKER_GAUGE[redis_store.breaker.state])
        store = redis_store
    else:
        store = MemoryStore()
    cache = TagCache(store, metrics=metrics)
    if catalog.seeded:
        cache.clear()  # a new catalog: validators a shared store kept for an older one must go
    routes = ETagRoutes(json_errors=True)

    def book_etag(book_id: int) -> tuple[str, int, int] | None:
        """The current validator of one book, read before its endpoint runs (one indexed lookup): the
        parts of ``catalog.etag``, so the endpoint gets the row version the If-Match was checked
        against (``request.state.etagkit_checked.version``) for its compare-and-set."""
        version = catalog.version(book_id)
        return None if version is None else (catalog.epoch, book_id, version)

    def book_response(book: Book, status: int = 200) -> Response:
        response = JSONResponse(book.as_json(), status_code=status)
        response.headers["ETag"] = str(catalog.etag(book.id, book.version))
        return response

    async def body_of(request: Request) -> bytes:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY:
            raise HTTPException(413, "the request body is too large")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                raise HTTPException(413, "the request body is too large")
        return body

    @routes.conditional(tags=["books"], cache_control=str(CACHE_CONTROL))
    async def list_books(request: Request) -> Response:
        return JSONResponse([book.as_json() for book in catalog.all()])

    @routes.conditional(tags=["books"])
    async def create_book(request: Request) -> Response:
        book = catalog.create(*parse_book(await body_of(request)))
        response = book_response(book, 201)
        response.headers["Location"] = f"/books/{book.id}"
        return response

    @routes.conditional(etag=book_etag, tags=["book:{book_id}"], cache_control=str(CACHE_CONTROL))
    async def get_book(request: Request) -> Response:
        book_id = request.path_params["book_id"]
        book = catalog.get(book_id)
        return book_response(book) if book is not None else _error(404, f"no book {book_id}")

    @routes.conditional(etag=book_etag, tags=["books", "book:{book_id}"], require_precondition=True)
    async def replace_book(request: Request) -> Response:
        book_id = request.path_params["book_id"]
        fields = parse_book(await body_of(request))
        version = request.state.etagkit_checked.version  # what etag= read before the If-Match check
        if version is None:
            return _error(404, f"no book {book_id}")
        book = catalog.replace(book_id, _version_of(version), *fields)
        if book is None:  # another writer won between the If-Match check and this transaction
            return _error(412, "the book changed while this request was checked; fetch it again")
        return book_response(book)

    @routes.conditional(etag=book_etag, tags=["books", "book:{book_id}"], require_precondition=True)
    async def delete_book(request: Request) -> Response:
        book_id = request.path_params["book_id"]
        version = request.state.etagkit_checked.version
        if version is None:
            return _error(404, f"no book {book_id}")
        if not catalog.delete(book_id, _version_of(version)):
            return _error(412, "the book changed while this request was checked; fetch it again")
        return Response(status_code=204)

    @cache.cached(ttl=300, tags=["books"], key="bookstore:authors-top:{limit}")
    def top_authors(limit: int) -> list[dict[str, Any]]:
        return catalog.top_authors(limit)

    @routes.conditional(tags=["books"], cache_control=str(CACHE_CONTROL))
    async def authors_top(request: Request) -> Response:
        return JSONResponse(top_authors(10))

    async def stats(request: Request) -> Response:
        cache_stats = cache.stats()
        return JSONResponse(
            {
                "pid": os.getpid(),
                "db_queries": catalog.queries,
                "store": "redis" if redis_url else "memory",
                "breaker": cache_stats.get("breaker_state"),
                "cache": cache_stats,
                **metrics.snapshot(),
            }
        )

    async def prometheus(request: Request) -> Response:
        return PlainTextResponse(metrics.prometheus_text(), media_type="text/plain; version=0.0.4")

    async def http_error(request: Request, exc: Exception) -> Response:
        code = exc.status_code if isinstance(exc, HTTPException) else 500
        return _error(code, exc.detail if isinstance(exc, HTTPException) else "internal error")

    async def invalid_book(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, InvalidBook)
        return _error(exc.status, exc.message, **({"fields": exc.fields} if exc.fields else {}))

    app = Starlette(
        routes=[
            Route("/books", list_books, methods=["GET"]),
            Route("/books", create_book, methods=["POST"]),
            Route("/books/{book_id:int}", get_book, methods=["GET"]),
            Route("/books/{book_id:int}", replace_book, methods=["PUT"]),
            Route("/books/{book_id:int}", delete_book, methods=["DELETE"]),
            Route("/authors/top", authors_top, methods=["GET"]),
            Route("/stats", stats, methods=["GET"]),
            Route("/metrics", prometheus, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error, InvalidBook: invalid_book},
    )
    tagged = ETagMiddleware(app, cache=cache, metrics=metrics, route=_route_name, json_errors=True)
    return _worker_header(tagged)


def _version_of(checked: tuple[str, int, int]) -> int:
    """The row version ``book_etag`` read (the last of its parts)."""
    return checked[2]


def _worker_header(app: Callable[..., Any]) -> Callable[..., Any]:
    """Every HTTP response names the process that answered (``X-Worker-Pid``), as in bookstore.py."""
    pid = str(os.getpid()).encode()

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def send_with_pid(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), (b"x-worker-pid", pid)]}
            await send(message)

        await app(scope, receive, send_with_pid if scope["type"] == "http" else send)

    return wrapped


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--host", default="127.0.0.1", help="Interface to listen on.")
@click.option("--port", default=8000, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option("--db", envvar="BOOKSTORE_DB", show_envvar=True, help="SQLite file; default: in memory.")
@click.option("--redis", "redis_url", envvar="ETAGKIT_REDIS_URL", show_envvar=True, help="Redis URL.")
@click.option(
    "--redis-prefix", envvar="BOOKSTORE_REDIS_PREFIX", default="bookstore:", help="Redis key prefix."
)
@click.option("--books", default=DEFAULT_BOOKS, type=click.IntRange(0, 1_000_000), help="Books to seed.")
def main(
    *, host: str, port: int, db: str | None, redis_url: str | None, redis_prefix: str, books: int
) -> None:
    """Serve the bookstore with uvicorn."""
    import uvicorn

    app = create_app(db, redis_url, books=books, redis_prefix=redis_prefix)
    store = f"Redis at {urlsplit(redis_url).hostname}" if redis_url else "in-process memory"  # no password
    click.echo(
        f"bookstore (ASGI): {books} books in {db or 'in-memory SQLite'}, cache store: {store}", err=True
    )
    uvicorn.run(app, host=host, port=port, log_level="warning", lifespan="off")


if __name__ == "__main__":
    main()

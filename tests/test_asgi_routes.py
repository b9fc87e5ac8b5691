"""Route declarations for FastAPI and Starlette (``etagkit.starlette.ETagRoutes``) under the ASGI
middleware: the cheap validator decides before the endpoint, tags reach the middleware's store."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from etagkit import ConfigurationError
from etagkit.asgi import ETagMiddleware
from etagkit.cache import TagCache
from etagkit.metrics import Metrics


class Book(BaseModel):
    id: int
    title: str
    version: int


def _fastapi() -> tuple[FastAPI, dict[str, Any], Metrics]:
    from etagkit.starlette import ETagRoutes

    db: dict[str, Any] = {"versions": {1: 1}, "runs": 0, "lists": 0, "writes": 0}
    cache, metrics = TagCache(), Metrics()
    cache.invalidate_tags("books")  # the store has seen the tag (a first store is never refused)
    app = FastAPI()
    app.add_middleware(ETagMiddleware, cache=cache, metrics=metrics, route=lambda s: s["path"])
    routes = ETagRoutes(json_errors=True)

    def version(book_id: int) -> int | None:
        return db["versions"].get(book_id)

    @app.get("/books/{book_id}", response_model=Book)
    @routes.conditional(
        etag=version, tags=["books", "book:{book_id}"],
        cache_control="no-cache",
    )  # fmt: skip
    async def book(book_id: int, verbose: bool = False) -> dict[str, Any]:
        if book_id not in db["versions"]:
            raise HTTPException(404)
        db["runs"] += 1
        return {"id": book_id, "title": "Dune", "version": db["versions"][book_id], "extra": verbose}

    @app.put("/books/{book_id}")
    @routes.conditional(etag=version, tags=["books", "book:{book_id}"])
    def put_book(book_id: int) -> dict[str, Any]:  # a sync endpoint: run in the threadpool
        db["writes"] += 1
        db["versions"][book_id] += 1
        return {"id": book_id}

    @app.get("/books")
    @routes.conditional(tags=["books"])
    async def books() -> list[int]:
        db["lists"] += 1
        return sorted(db["versions"])

    return app, db, metrics


def _run(app: Any, *requests: tuple[str, str, dict[str, str]]) -> list[httpx.Response]:
    async def go() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client:
            return [await client.request(m, p, headers=h) for m, p, h in requests]

    return asyncio.run(go())


def test_the_cheap_validator_is_checked_before_the_endpoint() -> None:
    app, db, _ = _fastapi()
    (first,) = _run(app, ("GET", "/books/1?verbose=true", {}))
    assert first.status_code == 200 and first.json() == {"id": 1, "title": "Dune", "version": 1}
    assert first.headers["cache-control"] == "no-cache" and "cache-tag" not in first.headers
    etag = first.headers["etag"]
    match, stale, gone = _run(
        app,
        ("GET", "/books/1", {"If-None-Match": etag}),
        ("PUT", "/books/1", {"If-Match": '"old"', "Accept": "application/json"}),
        ("PUT", "/books/2", {"If-Match": "*"}),
    )
    assert match.status_code == 304 and match.headers["etag"] == etag
    assert stale.status_code == 412 and stale.json()["status"] == 412
    assert gone.status_code == 412  # etag= returned None: no current representation
    assert db["writes"] == 0 and db["versions"][1] == 1
    assert db["runs"] == 1  # the middleware's read-backs were answered by etag=, not the endpoint


def test_a_write_changes_the_validator_and_invalidates_the_declared_tags() -> None:
    app, db, metrics = _fastapi()
    listing, item = _run(app, ("GET", "/books", {}), ("GET", "/books/1", {}))
    tag = listing.headers["etag"]
    _run(app, ("GET", "/books", {"If-None-Match": tag}))  # the store learns the route's path tag
    lists = db["lists"]
    (stored,) = _run(app, ("GET", "/books", {"If-None-Match": tag}))
    assert stored.status_code == 304 and db["lists"] == lists  # answered before routing
    assert metrics.snapshot()["routes"]["/books"]["stored_304"] >= 1
    (write,) = _run(app, ("PUT", "/books/1", {"If-Match": item.headers["etag"]}))
    assert write.status_code == 200 and db["versions"][1] == 2
    after_list, after_item = _run(
        app,
        ("GET", "/books", {"If-None-Match": tag}),
        ("GET", "/books/1", {"If-None-Match": item.headers["etag"]}),
    )
    assert (
        db["lists"] == lists + 1
    )  # "books" was invalidated: the endpoint ran (its body, so its tag, is the same)
    assert after_list.status_code == 304
    assert after_item.status_code == 200 and after_item.headers["etag"] != item.headers["etag"]


def test_a_starlette_endpoint_takes_the_path_parameters_too() -> None:
    from etagkit.starlette import ETagRoutes

    routes, runs = ETagRoutes(), []

    @routes.conditional(etag=lambda name: f"v-{name}", tags=["hello:{name}"])
    async def hello(request: Request) -> Response:
        runs.append(request.path_params["name"])
        return PlainTextResponse(f"hello {request.path_params['name']}")

    app = ETagMiddleware(Starlette(routes=[Route("/hello/{name}", hello)]), cache=TagCache())
    (first,) = _run(app, ("GET", "/hello/ann", {}))
    assert first.text == "hello ann" and first.headers["etag"].startswith('"')
    (match,) = _run(app, ("GET", "/hello/ann", {"If-None-Match": first.headers["etag"]}))
    assert match.status_code == 304 and match.headers["etag"] == first.headers["etag"] and runs == ["ann"]


def test_a_fastapi_endpoint_taking_only_the_request_gets_its_cheap_etag() -> None:
    from etagkit.starlette import ETagRoutes

    app, routes, runs = FastAPI(), ETagRoutes(), []
    app.add_middleware(ETagMiddleware, cache=TagCache())

    @app.get("/notes/{name}")
    @routes.conditional(etag=lambda name: f"v-{name}")
    async def note(request: Request) -> dict[str, str]:  # FastAPI's Request is Starlette's
        runs.append(request.path_params["name"])
        return {"name": request.path_params["name"]}

    (first,) = _run(app, ("GET", "/notes/a", {}))
    (match,) = _run(app, ("GET", "/notes/a", {"If-None-Match": first.headers["etag"]}))
    assert first.json() == {"name": "a"} and match.status_code == 304 and runs == ["a"]


def test_mistakes_raise_at_decoration() -> None:
    from etagkit.starlette import ETagRoutes

    routes = ETagRoutes()
    with pytest.raises(ConfigurationError, match="book_id"):

        @routes.conditional(tags=["book:{book_id}"])
        async def nothing(other: int) -> None: ...

    with pytest.raises(ConfigurationError, match="etag"):
        routes.conditional(etag="not callable")  # type: ignore[arg-type]

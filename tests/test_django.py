"""Django: the middleware, the per-view ``@conditional`` and the signal helpers, with a real Django
configured in-test, called through its real entry points (``WSGIHandler`` with werkzeug's client,
``ASGIHandler`` with httpx's ASGI transport; Django's own test Client sends an empty ``Cookie`` on
every request, a credential to etagkit) and once over a real uvicorn."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from django_setup import setup_django

setup_django()

import httpx  # noqa: E402
from asgi_server import uvicorn_server  # noqa: E402
from django.core.handlers.asgi import ASGIHandler  # noqa: E402
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.db import connection, models  # noqa: E402
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse  # noqa: E402
from django.test import override_settings  # noqa: E402
from django.urls import path  # noqa: E402

from etagkit import ConfigurationError  # noqa: E402
from etagkit.cache import TagCache  # noqa: E402
from etagkit.django import conditional, invalidate, invalidate_on_save  # noqa: E402
from etagkit.metrics import Metrics  # noqa: E402

STATE: dict[str, Any] = {"versions": {1: 1}, "reads": 0, "writes": 0, "lists": 0}


class Shelf(models.Model):
    name = models.CharField(max_length=40)

    class Meta:
        app_label = "contenttypes"  # an installed app: no project needed


def _version(request: HttpRequest, pk: int) -> int | None:
    return STATE["versions"].get(pk)


@conditional(etag=_version, tags=["books", "book:{pk}"])
def book(request: HttpRequest, pk: int) -> HttpResponse:
    if request.method == "PUT":
        STATE["writes"] += 1
        STATE["versions"][pk] += 1
        return JsonResponse({"id": pk, "version": STATE["versions"][pk]})
    STATE["reads"] += 1
    return JsonResponse({"id": pk, "version": STATE["versions"][pk]})


@conditional(tags=["books"])
async def books(request: HttpRequest) -> HttpResponse:
    STATE["lists"] += 1
    return JsonResponse({"books": sorted(STATE["versions"])})


def plain(request: HttpRequest) -> HttpResponse:  # only the middleware: a strong ETag of its body
    if request.method == "PUT":
        STATE["writes"] += 1
        return HttpResponse("written")
    STATE["reads"] += 1
    response = HttpResponse(f"plain v{STATE['versions'][1]}", content_type="text/plain")
    response["Cache-Tag"] = "plain"
    if "cookie" in request.GET:
        response.set_cookie("seen", "1")
    return response


def stream(request: HttpRequest) -> StreamingHttpResponse:
    return StreamingHttpResponse(iter([b"data: 1\n\n", b"data: 2\n\n"]), content_type="text/event-stream")


urlpatterns = [
    path("books/<int:pk>", book),
    path("books", books),
    path("plain", plain),
    path("stream", stream),
]


@pytest.fixture
def site() -> Iterator[Metrics]:
    metrics, cache = Metrics(), TagCache()
    cache.invalidate_tags("books", "plain")  # the store has seen the tags (a first store is never refused)
    STATE.update(versions={1: 1}, reads=0, writes=0, lists=0)
    options = {"cache": cache, "metrics": metrics, "route": lambda request: request.path}
    with override_settings(
        ROOT_URLCONF=__name__, MIDDLEWARE=["etagkit.django.ETagMiddleware"], ETAGKIT=options
    ):
        yield metrics


def Client() -> httpx.Client:
    """Django's real WSGI entry point, built under the test's settings."""
    return httpx.Client(transport=httpx.WSGITransport(app=WSGIHandler()), base_url="http://testserver")


def test_the_view_validator_gets_the_views_arguments_before_the_view(site: Metrics) -> None:
    client = Client()
    first = client.get("/books/1")
    etag = first.headers["ETag"]
    assert first.status_code == 200 and first.json() == {"id": 1, "version": 1} and STATE["reads"] == 1
    match = client.get("/books/1", headers={"If-None-Match": etag})
    stale = client.put("/books/1", headers={"If-Match": '"old"'})
    assert match.status_code == 304 and match.content == b"" and "Content-Type" not in match.headers
    assert stale.status_code == 412 and STATE["writes"] == 0 and STATE["reads"] == 1  # read back cheaply
    head = client.head("/books/1")
    assert head.status_code == 200 and head.headers["ETag"] == etag
    done = client.put("/books/1", headers={"If-Match": etag})
    assert done.status_code == 200 and STATE["writes"] == 1
    assert client.get("/books/1", headers={"If-None-Match": etag}).status_code == 200


def test_the_middleware_tags_reads_back_and_keeps_cookies(site: Metrics) -> None:
    client = Client()
    first = client.get("/plain")
    etag = first.headers["ETag"]
    assert first.content == b"plain v1" and "Cache-Tag" not in first.headers
    client.get("/plain", headers={"If-None-Match": etag})  # the store learns the path's tag
    reads = STATE["reads"]
    stored = client.get("/plain", headers={"If-None-Match": etag})
    assert stored.status_code == 304 and STATE["reads"] == reads  # a stored validator: the view never ran
    assert site.snapshot()["routes"]["/plain"]["stored_304"] >= 1
    client.get("/plain", headers={"If-None-Match": '"other"'})
    STATE["versions"][1] = 2  # changed behind the store's back (a PUT would have invalidated it)
    invalidate("plain")
    stale = client.put("/plain", headers={"If-Match": etag})  # read back: the current body differs
    assert stale.status_code == 412 and STATE["writes"] == 0
    tagged = client.get("/plain?cookie=1")
    cookie = client.get("/plain?cookie=1", headers={"If-None-Match": tagged.headers["ETag"]})
    assert cookie.status_code == 304 and cookie.cookies["seen"] == "1"  # the 304 keeps the cookie


def test_an_async_view_under_asgi_django_answers_stored_304s(site: Metrics) -> None:
    async def go() -> list[Any]:
        transport = httpx.ASGITransport(ASGIHandler())
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            first = await client.get("/books")
            etag = first.headers["ETag"]
            await client.get("/books", headers={"If-None-Match": etag})
            lists = STATE["lists"]
            stored = await client.get("/books", headers={"If-None-Match": etag})
            sync_view = await client.get("/books/1")
            return [first.status_code, stored.status_code, STATE["lists"] - lists, sync_view.status_code]

    assert asyncio.run(go()) == [200, 304, 0, 200]


def test_a_stream_passes_untagged(site: Metrics) -> None:
    response = Client().get("/stream")
    assert response.content == b"data: 1\n\ndata: 2\n\n" and "ETag" not in response.headers


def test_signals_invalidate_the_declared_tags(site: Metrics) -> None:
    with connection.schema_editor() as editor:
        editor.create_model(Shelf)
    try:
        invalidate_on_save(Shelf, tags=["books", "shelf:{pk}"])
        client = Client()
        etag = client.get("/books").headers["ETag"]
        client.get("/books", headers={"If-None-Match": etag})
        lists = STATE["lists"]
        assert client.get("/books", headers={"If-None-Match": etag}).status_code == 304
        assert STATE["lists"] == lists
        Shelf.objects.create(name="new")  # post_save: "books" invalidated
        assert client.get("/books", headers={"If-None-Match": etag}).status_code == 304
        assert STATE["lists"] == lists + 1  # the view ran again (its body is the same, so a 304)
    finally:
        with connection.schema_editor() as editor:
            editor.delete_model(Shelf)


def test_mistakes_raise_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="pk"):

        @conditional(tags=["book:{pk}"])
        def view(request: HttpRequest) -> HttpResponse: ...

    broken = override_settings(
        ROOT_URLCONF=__name__, MIDDLEWARE=["etagkit.django.ETagMiddleware"], ETAGKIT={"max_buffer": -1}
    )
    with broken, pytest.raises(ConfigurationError, match="max_buffer"):
        WSGIHandler()  # Django loads its middleware: the setting is checked then


def test_over_uvicorn_asgi_django_answers_a_stored_304(site: Metrics) -> None:
    with uvicorn_server(ASGIHandler()) as port, httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        etag = client.get("/books").headers["etag"]
        client.get("/books", headers={"If-None-Match": etag})
        lists = STATE["lists"]
        stored = client.get("/books", headers={"If-None-Match": etag})
        stale = client.put("/books/1", headers={"If-Match": '"old"'})
    assert stored.status_code == 304 and STATE["lists"] == lists
    assert stale.status_code == 412 and STATE["writes"] == 0

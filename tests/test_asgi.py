"""The ASGI middleware: in process (httpx's ASGI transport) and over a real uvicorn on loopback.

The HTTP decisions themselves are compared with every other face in test_faces.py; these tests check
what is ASGI's own: the messages (bytes, lower-cased names, ``more_body``, ``http.disconnect``),
streams never held back, HEAD never draining, the read-back sub-call, lifespan and websocket scopes
passed through untouched, and the store answering before the app runs.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_server import uvicorn_server
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from support import head_and_first_event

from etagkit import ConfigurationError, ETag, Validator
from etagkit.asgi import ETagMiddleware
from etagkit.cache import TagCache
from etagkit.metrics import Metrics

GATE_WAIT = 30  # seconds a stream waits for the test; only reached when the face buffers (a failure)


class Catalog:
    """A tiny Starlette app with one item: GET (tagged ``items``), PUT (counts writes), an SSE feed."""

    def __init__(self) -> None:
        self.version = 1
        self.reads = 0
        self.writes = 0
        self.gate = threading.Event()
        self.produced = 0
        self.app = Starlette(
            routes=[
                Route("/item", self.get_item, methods=["GET"]),
                Route("/item", self.put_item, methods=["PUT"]),
                Route("/private", self.private, methods=["GET"]),
                Route("/feed", self.feed, methods=["GET"]),
                Route("/chunks", self.chunks, methods=["GET"]),
                WebSocketRoute("/ws", self.echo),
            ]
        )

    async def get_item(self, request: Request) -> Response:
        self.reads += 1
        body = {"id": 1, "version": self.version}
        return JSONResponse(body, headers={"Cache-Tag": "items item:1"})

    async def put_item(self, request: Request) -> Response:
        data = json.loads(await request.body())
        self.writes += 1
        self.version = int(data["version"])
        return JSONResponse({"id": 1, "version": self.version})

    async def private(self, request: Request) -> Response:
        self.reads += 1
        return PlainTextResponse(f"for {request.headers.get('authorization')}", headers={"Cache-Tag": "p"})

    async def feed(self, request: Request) -> Response:
        async def events() -> AsyncIterator[bytes]:
            self.produced += 1
            yield b"data: first\n\n"
            await asyncio.to_thread(self.gate.wait, GATE_WAIT)
            for _ in range(3):
                self.produced += 1
                yield b"data: more\n\n"

        ctype = "application/octet-stream" if "octet" in request.query_params else "text/event-stream"
        return StreamingResponse(events(), media_type=ctype)

    async def chunks(self, request: Request) -> Response:
        async def parts() -> AsyncIterator[bytes]:
            yield b"a" * 10
            yield b"b" * 10

        return StreamingResponse(parts(), media_type="text/plain", headers={"Content-Length": "20"})

    async def echo(self, websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())
        await websocket.close()


def _middleware(catalog: Catalog, metrics: Metrics | None = None, **options: Any) -> ETagMiddleware:
    cache = TagCache()
    cache.invalidate_tags("items", "p")  # the store has seen the tags (a first store is never refused)
    return ETagMiddleware(catalog.app, cache=cache, metrics=metrics, route=lambda s: s["path"], **options)


def _run(app: Any, *requests: tuple[str, str, dict[str, str], bytes]) -> list[httpx.Response]:
    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return [
                await client.request(method, path, headers=headers, content=body or None)
                for method, path, headers, body in requests
            ]

    return asyncio.run(go())


def test_a_stored_304_never_runs_the_endpoint_and_is_counted() -> None:
    catalog, metrics = Catalog(), Metrics()
    mw = _middleware(catalog, metrics)
    (first,) = _run(mw, ("GET", "/item", {}, b""))
    etag = first.headers["etag"]
    assert first.status_code == 200 and etag.startswith('"') and "cache-tag" not in first.headers
    (warm,) = _run(mw, ("GET", "/item", {"If-None-Match": etag}, b""))  # the store learns its path tag
    reads = catalog.reads
    again = _run(mw, *[("GET", "/item", {"If-None-Match": etag}, b"")] * 3)
    assert [r.status_code for r in (warm, *again)] == [304, 304, 304, 304]
    assert all(r.headers["etag"] == etag and "content-type" not in r.headers for r in again)
    assert catalog.reads == reads  # a stored validator answered: the endpoint never ran
    route = metrics.snapshot()["routes"]["/item"]
    assert route["stored_304"] >= 3 and route["responses"]["304"] == 4
    assert route["bytes_saved"] == 4 * len(first.content)


def test_a_stale_if_match_is_412_before_the_write_runs_and_a_current_one_writes() -> None:
    catalog, metrics = Catalog(), Metrics()
    mw = _middleware(catalog, metrics)
    body = b'{"version": 2}'
    (stale,) = _run(mw, ("PUT", "/item", {"If-Match": '"old"', "Content-Type": "application/json"}, body))
    assert stale.status_code == 412 and stale.json()["status"] == 412
    assert catalog.writes == 0 and catalog.reads == 1  # the read-back GET ran, the write did not
    assert metrics.snapshot()["routes"]["/item"]["responses"]["200"] == 0  # the read-back is not traffic
    etag = _run(mw, ("GET", "/item", {}, b""))[0].headers["etag"]
    done, after = _run(
        mw, ("PUT", "/item", {"If-Match": etag}, body), ("GET", "/item", {"If-None-Match": etag}, b"")
    )
    assert done.status_code == 200 and catalog.writes == 1 and catalog.version == 2
    assert after.status_code == 200 and after.headers["etag"] != etag  # the write invalidated it


def test_428_is_opt_in_and_errors_negotiate_their_format() -> None:
    catalog = Catalog()
    (plain,) = _run(_middleware(catalog), ("PUT", "/item", {}, b'{"version": 3}'))
    assert plain.status_code == 200
    (strict,) = _run(_middleware(catalog, require_precondition=True), ("PUT", "/item", {}, b"{}"))
    assert strict.status_code == 428 and strict.headers["content-type"].startswith("text/plain")
    assert catalog.writes == 1


def test_credentialed_requests_are_stored_only_per_declared_scope() -> None:
    catalog = Catalog()
    shared = _middleware(catalog)
    ann = {"Authorization": "Bearer ann"}
    tag = _run(shared, ("GET", "/private", ann, b""))[0].headers["etag"]
    _run(shared, ("GET", "/private", {**ann, "If-None-Match": tag}, b""))
    assert catalog.reads == 2  # no scope declared: never answered from a shared record
    scoped = _middleware(catalog, scope=lambda s: dict(s["headers"]).get(b"authorization", b"").decode())
    tag = _run(scoped, ("GET", "/private", ann, b""))[0].headers["etag"]
    reads = catalog.reads
    ann304, bob = _run(
        scoped,
        ("GET", "/private", {**ann, "If-None-Match": tag}, b""),
        ("GET", "/private", {"Authorization": "Bearer bob", "If-None-Match": tag}, b""),
    )
    assert ann304.status_code == 304 and catalog.reads == reads + 1  # only bob's ran the endpoint
    assert bob.status_code == 200 and bob.text == "for Bearer bob"


def test_head_gets_the_etag_of_get_and_no_body() -> None:
    catalog = Catalog()
    mw = _middleware(catalog)
    get, head = _run(mw, ("GET", "/item", {}, b""), ("HEAD", "/item", {}, b""))
    assert head.status_code == 200 and head.content == b"" and head.headers["etag"] == get.headers["etag"]


def test_a_cheap_async_validator_answers_before_the_app() -> None:
    catalog = Catalog()

    async def version(scope: dict[str, Any]) -> Validator | None:
        await asyncio.sleep(0)
        return Validator(ETag.parse(f'"v{catalog.version}"'))

    mw = _middleware(catalog, validator=version)
    first, match, stale = _run(
        mw,
        ("GET", "/item", {}, b""),
        ("GET", "/item", {"If-None-Match": '"v1"'}, b""),
        ("PUT", "/item", {"If-Match": '"v0"'}, b'{"version": 5}'),
    )
    assert first.headers["etag"] == '"v1"' and match.status_code == 304 and stale.status_code == 412
    assert catalog.reads == 1 and catalog.writes == 0


def test_a_declared_length_streamed_in_chunks_is_hashed_an_unknown_one_is_not() -> None:
    catalog = Catalog()
    mw = _middleware(catalog)
    (declared,) = _run(mw, ("GET", "/chunks", {}, b""))
    assert declared.content == b"a" * 10 + b"b" * 10 and "etag" in declared.headers
    small = _middleware(catalog, max_buffer=15)  # the declared length is over the cap: streamed
    (over,) = _run(small, ("GET", "/chunks", {}, b""))
    assert over.content == b"a" * 10 + b"b" * 10 and "etag" not in over.headers


async def _raw(app: Any, scope: dict[str, Any], incoming: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Call ``app`` as a server would, with ``incoming`` as what receive() gives; returns what it sent."""
    sent: list[dict[str, Any]] = []
    queue = list(incoming)

    async def receive() -> dict[str, Any]:
        if queue:
            return queue.pop(0)
        await asyncio.sleep(3600)  # a server's receive blocks until the client does something
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def _scope(method: str = "GET", headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": "/x", "raw_path": b"/x", "query_string": b"", "root_path": "",
        "headers": [(b"host", b"example.org"), *(headers or [])], "server": ("127.0.0.1", 80),
    }  # fmt: skip


def test_messages_follow_the_spec_and_a_304_disconnects_the_apps_receive() -> None:
    seen: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"hello"})
        seen.append(await receive())  # after the response: what a server answers
        await send({"type": "http.response.body", "body": b"late"})  # dropped, never an error

    mw = ETagMiddleware(app)
    first = asyncio.run(_raw(mw, _scope(), []))
    assert [m["type"] for m in first] == ["http.response.start", "http.response.body"]
    headers = first[0]["headers"]
    assert all(isinstance(k, bytes) and k == k.lower() and isinstance(v, bytes) for k, v in headers)
    etag = dict(headers)[b"etag"]
    assert first[1] == {"type": "http.response.body", "body": b"hello", "more_body": False}
    second = asyncio.run(_raw(mw, _scope(headers=[(b"if-none-match", etag)]), []))
    assert second[0]["status"] == 304 and second[1]["body"] == b"" and len(second) == 2
    assert seen == [{"type": "http.disconnect"}, {"type": "http.disconnect"}]


def test_a_stream_goes_out_untagged_as_it_comes() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"one", "more_body": True})
        await send({"type": "http.response.body", "body": b"two", "more_body": False})

    sent = asyncio.run(_raw(ETagMiddleware(app), _scope(), []))
    assert [m.get("body") for m in sent] == [None, b"one", b"two"]
    assert [m.get("more_body") for m in sent[1:]] == [True, False]
    assert b"etag" not in dict(sent[0]["headers"])


def test_trailers_and_a_path_send_pass_through_untagged() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"5")]
        if scope["path"] == "/file":
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.pathsend", "path": "/srv/file.txt"})
            return
        await send({"type": "http.response.start", "status": 200, "headers": headers, "trailers": True})
        await send({"type": "http.response.body", "body": b"hello", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        await send(
            {"type": "http.response.trailers", "headers": [(b"x-digest", b"abc")], "more_trailers": False}
        )

    mw = ETagMiddleware(app, max_buffer=0)  # nothing is small enough to hash: every body streams
    sent = asyncio.run(_raw(mw, _scope(), []))
    assert [m["type"] for m in sent] == [
        "http.response.start", "http.response.body", "http.response.body", "http.response.trailers",
    ]  # fmt: skip
    assert sent[0]["trailers"] is True and b"etag" not in dict(sent[0]["headers"])
    path = asyncio.run(_raw(mw, {**_scope(), "path": "/file"}, []))
    assert [m["type"] for m in path] == ["http.response.start", "http.response.pathsend"]
    assert path[1]["path"] == "/srv/file.txt" and b"etag" not in dict(path[0]["headers"])


def test_a_complete_event_stream_is_never_tagged_but_a_complete_body_is() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        ctype = b"text/event-stream" if scope["path"] == "/x" else b"text/plain"
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", ctype)]})
        await send({"type": "http.response.body", "body": b"data: 1\n\n"})

    mw = ETagMiddleware(app)
    events = asyncio.run(_raw(mw, _scope(), []))
    assert b"etag" not in dict(events[0]["headers"])
    plain = asyncio.run(_raw(mw, {**_scope(), "path": "/y"}, []))
    assert b"etag" in dict(plain[0]["headers"])


def test_lifespan_and_websocket_scopes_pass_through_untouched() -> None:
    got: list[tuple[Any, Any, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        got.append((scope, receive, send))

    mw = ETagMiddleware(app, cache=TagCache())

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: dict[str, Any]) -> None:
        return None

    for scope in ({"type": "lifespan", "asgi": {"version": "3.0"}}, {"type": "websocket", "path": "/ws"}):
        asyncio.run(mw(scope, receive, send))
        assert got[-1][0] is scope and got[-1][1] is receive and got[-1][2] is send


def test_the_request_body_reaches_the_app_as_the_server_sent_it() -> None:
    bodies: list[bytes] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        more = True
        while more:
            message = await receive()
            bodies.append(message["body"])
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body"})

    incoming = [
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"cd", "more_body": False},
    ]
    sent = asyncio.run(_raw(ETagMiddleware(app), _scope("POST"), incoming))
    assert bodies == [b"ab", b"cd"] and sent[0]["status"] == 204


def test_app_errors_are_configuration_errors_at_construction() -> None:
    with pytest.raises(ConfigurationError, match="ASGI callable"):
        ETagMiddleware("not an app")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="max_buffer"):
        ETagMiddleware(Catalog().app, max_buffer=-1)


# -- over a real uvicorn ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/feed", "/feed?octet"])
def test_over_uvicorn_the_first_event_arrives_before_the_stream_ends(path: str) -> None:
    catalog = Catalog()
    with uvicorn_server(_middleware(catalog, stored=True)) as port:
        got = head_and_first_event(port, "GET", path, GATE_WAIT / 2)
        catalog.gate.set()  # only now may the stream go on: a buffering face never got here in time
        head = got.split(b"\r\n\r\n", 1)[0].lower()
        assert got.startswith(b"HTTP/1.1 200") and b"data: first" in got and b"etag:" not in head


def test_over_uvicorn_head_of_a_stream_answers_without_draining_it() -> None:
    catalog = Catalog()
    with uvicorn_server(_middleware(catalog, stored=True)) as port:
        got = head_and_first_event(port, "HEAD", "/feed", GATE_WAIT / 2)
        assert got.startswith(b"HTTP/1.1 200") and b"data:" not in got
        assert catalog.produced <= 1  # never drained: the gate was never opened
        catalog.gate.set()


def test_over_uvicorn_stored_304_read_back_412_and_a_websocket() -> None:
    catalog, metrics = Catalog(), Metrics()
    with uvicorn_server(_middleware(catalog, metrics), lifespan="on") as port:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base) as client:
            etag = client.get("/item").headers["etag"]
            client.get("/item", headers={"If-None-Match": etag})  # the store learns its path tag
            reads = catalog.reads
            assert client.get("/item", headers={"If-None-Match": etag}).status_code == 304
            stale = client.put("/item", headers={"If-Match": '"old"'}, content=b'{"version": 9}')
            assert stale.status_code == 412 and catalog.writes == 0
        assert catalog.reads == reads  # the 304 and the If-Match were decided by the stored record
        assert metrics.snapshot()["routes"]["/item"]["stored_304"] >= 1

        async def talk() -> str:
            from websockets.asyncio.client import connect

            async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
                await ws.send("through")
                return str(await ws.recv())

        assert asyncio.run(talk()) == "through"


_FIELD_NAMES = st.sampled_from(
    [b"if-match", b"if-none-match", b"if-modified-since", b"if-unmodified-since", b"if-range", b"range",
     b"accept", b"cookie", b"authorization", b"host", b"x-other", b"IF-NONE-MATCH"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    method=st.sampled_from(["GET", "HEAD", "PUT", "DELETE", "POST", "OPTIONS", "PATCH"]),
    headers=st.lists(st.tuples(_FIELD_NAMES, st.binary(max_size=40)), max_size=6),
    path=st.text(min_size=1, max_size=12).map(lambda p: "/" + p),
    query=st.binary(max_size=12),
)
def test_stranger_headers_get_an_rfc_answer_never_an_exception(
    method: str, headers: list[tuple[bytes, bytes]], path: str, query: bytes
) -> None:
    calls: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        calls.append(scope["method"])
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"the body"})

    cache = TagCache()
    mw = ETagMiddleware(app, cache=cache, stored=True, require_precondition=True)
    scope = {**_scope(method, headers), "path": path, "query_string": query}
    sent = asyncio.run(_raw(mw, scope, [{"type": "http.request", "body": b"", "more_body": False}]))
    status = sent[0]["status"]
    assert status in (200, 304, 412, 428)
    assert sent[-1]["type"] == "http.response.body" and sent[-1].get("more_body", False) is False
    assert all(isinstance(k, bytes) and k == k.lower() for k, _ in sent[0]["headers"])
    if status in (304, 412, 428) and method not in ("GET", "HEAD"):
        assert "PUT" not in calls and "DELETE" not in calls  # a refused write never ran

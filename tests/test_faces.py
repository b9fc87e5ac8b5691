"""One table of exchanges driven through every face: the WSGI middleware, the Flask extension, the
custom-server flow, the ASGI middleware and the Django adapter. Each scenario is a short conversation
with one resource; every face must answer it with the same statuses, the same headers that matter,
the same app calls and the same metrics.

The faces only translate (DESIGN.md "Adapters only translate"): a difference here is a decision that
leaked out of the exchange.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
import pytest
from flask import Flask
from werkzeug.test import Client

from etagkit import ETag, Validator
from etagkit.asgi import ETagMiddleware as ASGIETagMiddleware
from etagkit.cache import TagCache
from etagkit.flask import ETagKit
from etagkit.flow import ConditionalFlow
from etagkit.metrics import Metrics
from etagkit.wsgi import ETagMiddleware

BODY = b"the representation, " * 50  # 1000 bytes
MATTERS = ("etag", "content-type", "set-cookie", "cache-control", "last-modified", "vary")


@dataclass
class Resource:
    """What the app answers, whatever the face: status, headers and body; it counts its calls and
    answers a Range request with 206 when it sees one (so dropped Ranges are visible)."""

    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=lambda: [("Content-Type", "text/plain")])
    body: bytes = BODY
    calls: int = 0
    ranges: int = 0

    def answer(self, method: str, range_header: str | None) -> tuple[int, list[tuple[str, str]], bytes]:
        self.calls += 1
        if method == "GET" and range_header == "bytes=0-9" and self.status == 200:
            self.ranges += 1
            part = self.body[:10]
            return 206, [*self.headers, ("Content-Range", f"bytes 0-9/{len(self.body)}")], part
        return self.status, list(self.headers), self.body


@dataclass
class Seen:
    status: int
    headers: dict[str, str]
    body: bytes


Face = Callable[[Resource, Metrics, TagCache, "Scenario"], Callable[[str, dict[str, str]], Seen]]


def _wsgi(resource: Resource, metrics: Metrics, cache: TagCache, scenario: Scenario) -> Any:
    tags = scenario.tags

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        status, headers, body = resource.answer(environ["REQUEST_METHOD"], environ.get("HTTP_RANGE"))
        extra = [("Cache-Tag", " ".join(tags))] if tags else []
        start_response(f"{status} X", [*headers, *extra, ("Content-Length", str(len(body)))])
        return [body]

    stored = True if scenario.stored else None
    current = _current(scenario)
    mw = ETagMiddleware(
        app,
        cache=cache,
        metrics=metrics,
        route=lambda e: "/r",
        stored=stored,
        validator=(lambda e: current) if current is not None else None,
    )
    return _client(mw)


def _flask(resource: Resource, metrics: Metrics, cache: TagCache, scenario: Scenario) -> Any:
    from flask import request

    app = Flask(__name__)
    kit = ETagKit(app, cache=cache, metrics=metrics)

    current = _current(scenario)
    cheap = {"etag": lambda: current.etag} if current is not None else {}

    @app.route("/r", methods=["GET", "HEAD", "OPTIONS", "PUT"])
    @kit.conditional(tags=scenario.tags, stored=True if scenario.stored else None, **cheap)
    def view() -> Any:
        status, headers, body = resource.answer(request.method, request.headers.get("Range"))
        return body, status, headers

    return _client(app)


def _flow(resource: Resource, metrics: Metrics, cache: TagCache, scenario: Scenario) -> Any:
    flow = ConditionalFlow(cache, metrics=metrics, stored=True if scenario.stored else None)
    tags = scenario.tags

    def call(method: str, headers: dict[str, str]) -> Seen:
        given = {"Host": "localhost", **headers}
        request = flow.open(method, "/r", given, tags=tags, route="/r", validator=_current(scenario))
        if request.answer is not None:
            answer = request.answer
            return Seen(answer.status, _lower(answer.headers), answer.body or b"")
        range_header = None if request.drop_range else headers.get("Range")
        shown = "GET" if request.render_as_get else method
        status, response_headers, body = resource.answer(shown, range_header)
        reply = request.respond(status, response_headers, body)
        request.close()
        sent = reply.body if reply.replaces_body else body
        return Seen(reply.status, _lower(reply.headers), b"" if method == "HEAD" else sent or b"")

    return call


def _asgi(resource: Resource, metrics: Metrics, cache: TagCache, scenario: Scenario) -> Any:
    tags = scenario.tags

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        range_header = dict(scope["headers"]).get(b"range")
        status, headers, body = resource.answer(scope["method"], range_header and range_header.decode())
        extra = [("Cache-Tag", " ".join(tags))] if tags else []
        raw = [(k.lower().encode(), v.encode()) for k, v in [*headers, *extra]]
        start = {"type": "http.response.start", "status": status}
        await send({**start, "headers": [*raw, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    current = _current(scenario)
    mw = ASGIETagMiddleware(
        app,
        cache=cache,
        metrics=metrics,
        route=lambda s: "/r",
        stored=True if scenario.stored else None,
        validator=(lambda s: current) if current is not None else None,
    )
    return _asgi_client(mw)


def _asgi_client(app: Any) -> Callable[[str, dict[str, str]], Seen]:
    async def fetch(method: str, headers: dict[str, str]) -> Seen:
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            got = await client.request(method, "/r", headers=headers)
            return Seen(got.status_code, _lower(got.headers.multi_items()), got.content)

    return lambda method, headers: asyncio.run(fetch(method, headers))


def _django(resource: Resource, metrics: Metrics, cache: TagCache, scenario: Scenario) -> Any:
    from django.core.handlers.wsgi import WSGIHandler
    from django.http import HttpResponse
    from django.test import override_settings
    from django.urls import path
    from django_setup import setup_django

    from etagkit.django import conditional

    setup_django()
    current = _current(scenario)
    cheap = {"etag": lambda request: current.etag} if current is not None else {}

    @conditional(tags=scenario.tags, stored=True if scenario.stored else None, **cheap)
    def view(request: Any) -> HttpResponse:
        status, headers, body = resource.answer(request.method, request.META.get("HTTP_RANGE"))
        response = HttpResponse(body, status=status)
        for name, value in headers:
            response[name] = value
        return response

    class URLs:
        urlpatterns: ClassVar[list[Any]] = [path("r", view)]

    options = {"cache": cache, "metrics": metrics, "route": lambda request: "/r"}
    overrides = override_settings(
        ROOT_URLCONF=URLs, MIDDLEWARE=["etagkit.django.ETagMiddleware"], ETAGKIT=options
    )
    with overrides:
        handler = WSGIHandler()  # the real WSGI entry point (Django's test Client sends an empty Cookie)
    client = Client(handler)

    def call(method: str, headers: dict[str, str]) -> Seen:
        with overrides:
            got = client.open("/r", method=method, headers=headers)
        return Seen(got.status_code, _lower(got.headers.to_wsgi_list()), got.get_data())

    return call


def _client(app: Any) -> Callable[[str, dict[str, str]], Seen]:
    client = Client(app)

    def call(method: str, headers: dict[str, str]) -> Seen:
        got = client.open("/r", method=method, headers=headers)
        return Seen(got.status_code, _lower(got.headers.to_wsgi_list()), got.get_data())

    return call


def _lower(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in headers}


FACES: dict[str, Face] = {"wsgi": _wsgi, "flask": _flask, "flow": _flow, "asgi": _asgi, "django": _django}


@dataclass
class Scenario:
    """A conversation: requests (``{etag}`` is the ETag of the last response that had one)."""

    requests: list[tuple[str, dict[str, str]]]
    resource: Callable[[], Resource] = Resource
    tags: tuple[str, ...] = ()
    stored: bool = False
    version: str | None = None  # the app's cheap current validator (ETag), known before it runs


def _current(scenario: Scenario) -> Validator | None:
    return Validator(ETag.parse(scenario.version)) if scenario.version is not None else None


SCENARIOS: dict[str, Scenario] = {
    "first-visit-gets-a-strong-etag": Scenario([("GET", {})]),
    "a-match-is-304-and-saves-the-body": Scenario([("GET", {}), ("GET", {"If-None-Match": "{etag}"})]),
    "the-apps-own-etag-saves-its-declared-length": Scenario(
        [("GET", {}), ("GET", {"If-None-Match": "{etag}"})],
        lambda: Resource(headers=[("Content-Type", "text/plain"), ("ETag", '"v7"')]),
    ),
    "set-cookie-stays-on-the-304": Scenario(
        [("GET", {}), ("GET", {"If-None-Match": "{etag}"})],
        lambda: Resource(headers=[("Content-Type", "text/plain"), ("Set-Cookie", "session=rotated")]),
    ),
    "options-is-never-tagged": Scenario([("OPTIONS", {})]),
    "if-none-match-star-on-no-store": Scenario(
        [("GET", {"If-None-Match": "*"})],
        lambda: Resource(headers=[("Content-Type", "text/plain"), ("Cache-Control", "no-store")]),
    ),
    "a-stale-if-match-on-get-is-412-json": Scenario(
        [("GET", {"If-Match": '"old"', "Accept": "application/json"})]
    ),
    "a-stale-if-match-on-get-is-412-text": Scenario([("GET", {"If-Match": '"old"'})]),
    "head-gets-the-etag-of-get": Scenario([("HEAD", {}), ("GET", {"If-None-Match": "{etag}"})]),
    "errors-pass-untouched": Scenario([("GET", {"If-None-Match": "*"})], lambda: Resource(status=404)),
    "an-unconfirmed-if-range-sends-the-whole": Scenario(
        [("GET", {}), ("GET", {"Range": "bytes=0-9", "If-Range": '"old"'})]
    ),
    "a-range-without-if-range-is-the-apps": Scenario([("GET", {"Range": "bytes=0-9"})]),
    "declared-tags-store-the-validator": Scenario(
        [("GET", {}), ("GET", {"If-None-Match": "{etag}"}), ("GET", {"If-None-Match": "{etag}"})],
        tags=("things",),
    ),
    "a-confirmed-if-range-keeps-the-range": Scenario(
        [
            ("GET", {}),
            ("GET", {"If-None-Match": "{etag}"}),
            ("GET", {"Range": "bytes=0-9", "If-Range": "{etag}"}),
        ],
        stored=True,
    ),
    "a-cheap-validator-answers-before-the-app": Scenario(
        [("GET", {}), ("GET", {"If-None-Match": '"v1"'}), ("GET", {"If-Match": '"v0"'})], version='"v1"'
    ),
    "undeclared-routes-stay-stateless": Scenario(
        [("GET", {}), ("GET", {"If-None-Match": "{etag}"}), ("GET", {"If-None-Match": "{etag}"})]
    ),
}


def _run(face: Face, scenario: Scenario) -> dict[str, Any]:
    resource, metrics, cache = scenario.resource(), Metrics(), TagCache()
    if scenario.tags:  # the store has seen them (an earlier write): a first store is never refused
        cache.invalidate_tags(*scenario.tags)
    call = face(resource, metrics, cache, scenario)
    etag, seen = "", []
    for method, headers in scenario.requests:
        got = call(method, {k: v.replace("{etag}", etag) for k, v in headers.items()})
        etag = got.headers.get("etag", etag)
        kept = {k: v for k, v in got.headers.items() if k in MATTERS}
        if got.status in (412, 428):
            kept["body"] = (
                json.loads(got.body)["status"] if "json" in kept["content-type"] else got.body.decode()
            )
        seen.append((got.status, kept, got.body if got.status != 412 else b""))
    route = metrics.snapshot()["routes"].get("/r", {})
    return {
        "seen": seen,
        "calls": resource.calls,
        "ranges": resource.ranges,
        "metrics": {k: route.get(k) for k in ("responses", "bytes_saved", "stored_304")},
    }


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_face_answers_the_same(name: str) -> None:
    results = {face: _run(FACES[face], SCENARIOS[name]) for face in FACES}
    assert results["flask"] == results["wsgi"]
    assert results["flow"] == results["wsgi"]
    assert results["asgi"] == results["wsgi"]
    assert results["django"] == results["wsgi"]


def _expect(name: str) -> dict[str, Any]:
    return _run(FACES["wsgi"], SCENARIOS[name])


def test_what_the_faces_agree_on_is_the_rfc() -> None:
    """The shared answers themselves, checked once (the table above only compares faces)."""
    first = _expect("a-match-is-304-and-saves-the-body")
    (s200, h200, _), (s304, h304, b304) = first["seen"]
    assert (s200, s304, b304) == (200, 304, b"") and h304["etag"] == h200["etag"]
    assert "content-type" not in h304
    assert first["metrics"]["bytes_saved"] == len(BODY) and first["calls"] == 2
    own = _expect("the-apps-own-etag-saves-its-declared-length")
    assert own["seen"][1][1]["etag"] == '"v7"' and own["metrics"]["bytes_saved"] == len(BODY)
    cookie = _expect("set-cookie-stays-on-the-304")
    assert cookie["seen"][1][0] == 304 and cookie["seen"][1][1]["set-cookie"] == "session=rotated"
    assert "etag" not in _expect("options-is-never-tagged")["seen"][0][1]
    assert _expect("if-none-match-star-on-no-store")["seen"][0][0] == 304
    assert _expect("a-stale-if-match-on-get-is-412-json")["seen"][0][1]["body"] == 412
    assert _expect("a-stale-if-match-on-get-is-412-text")["seen"][0][1]["body"].startswith("412 ")
    head = _expect("head-gets-the-etag-of-get")
    assert head["seen"][1][0] == 304
    assert _expect("errors-pass-untouched")["seen"][0][0] == 404
    unconfirmed = _expect("an-unconfirmed-if-range-sends-the-whole")
    assert unconfirmed["seen"][1][0] == 200 and unconfirmed["ranges"] == 0
    assert _expect("a-range-without-if-range-is-the-apps")["seen"][0][0] == 206
    declared = _expect("declared-tags-store-the-validator")
    assert [s for s, _, _ in declared["seen"]] == [200, 304, 304]
    assert declared["metrics"]["stored_304"] >= 1 and declared["calls"] < 3
    confirmed = _expect("a-confirmed-if-range-keeps-the-range")
    assert confirmed["seen"][2][0] == 206 and confirmed["ranges"] == 1
    assert confirmed["seen"][2][1]["etag"] == confirmed["seen"][0][1]["etag"]  # the 200's validator
    cheap = _expect("a-cheap-validator-answers-before-the-app")
    assert [s for s, _, _ in cheap["seen"]] == [200, 304, 412] and cheap["calls"] == 1
    assert cheap["seen"][0][1]["etag"] == '"v1"'
    assert cheap["metrics"]["bytes_saved"] == len(BODY)  # the last 200's size, though the app never ran
    undeclared = _expect("undeclared-routes-stay-stateless")
    assert undeclared["calls"] == 3 and undeclared["metrics"]["stored_304"] == 0


@pytest.mark.parametrize("algorithm", ["sha256", "xxh3", "blake3"])
def test_the_hash_algorithm_reaches_every_face(algorithm: str) -> None:
    from etagkit import generate_etag

    expected = str(generate_etag(BODY, algorithm=algorithm))  # type: ignore[arg-type]

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))])
        return [BODY]

    assert Client(ETagMiddleware(app, algorithm=algorithm)).get("/r").headers["ETag"] == expected  # type: ignore[arg-type]
    flask_app = Flask(__name__)
    flask_app.config["ETAGKIT_ALGORITHM"] = algorithm
    kit = ETagKit(flask_app)
    flask_app.add_url_rule("/r", "r", kit.conditional()(lambda: BODY))
    assert flask_app.test_client().get("/r").headers["ETag"] == expected
    flow = ConditionalFlow(algorithm=algorithm)  # type: ignore[arg-type]
    assert flow.open("GET", "/r", {}).respond(200, [], BODY).etag == ETag.parse(expected)


def test_an_unknown_algorithm_is_a_configuration_error() -> None:
    from etagkit import ConfigurationError

    with pytest.raises(ConfigurationError, match="algorithm must be one of"):
        ConditionalFlow(algorithm="md5")  # type: ignore[arg-type]

"""A write with a false condition is never performed, through both adapters, even when no validator
was declared or stored (RFC 9110 §13.1.1, §13.2.1): the current one is read back with a GET."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any
from wsgiref.validate import validator as pep3333

import pytest
from flask import Flask, request
from werkzeug.test import Client

from etagkit.cache import TagCache
from etagkit.flask import ETagKit
from etagkit.metrics import Metrics
from etagkit.wsgi import ETagMiddleware


class Docs:
    """The origin's state, and how often each method reached the application."""

    def __init__(self) -> None:
        self.docs: dict[str, bytes] = {"/doc": b"first draft"}
        self.calls: Counter[str] = Counter()


def plain_app(docs: Docs) -> Callable[..., Any]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
        docs.calls[method] += 1
        text = [("Content-Type", "text/plain")]
        if method == "GET":
            if path not in docs.docs:
                start_response("404 Not Found", text)
                return [b"missing"]
            body = docs.docs[path]  # a declared length: the middleware may hash a body it can hold
            start_response("200 OK", [*text, ("Content-Length", str(len(body)))])
            return [body]
        if method == "PUT":
            size = int(environ.get("CONTENT_LENGTH") or 0)
            created = path not in docs.docs
            docs.docs[path] = environ["wsgi.input"].read(size)
            start_response("201 Created" if created else "200 OK", text)
            return [b"saved"]
        if method == "DELETE":
            if docs.docs.pop(path, None) is None:
                start_response("404 Not Found", text)
                return [b"missing"]
            start_response("204 No Content", [])
            return []
        start_response("405 Method Not Allowed", text)
        return [b"no"]

    return app


def flask_app(docs: Docs, cache: TagCache | None) -> Flask:
    app = Flask(__name__)
    kit = ETagKit(app, cache=cache)

    @app.route("/<name>", methods=["GET", "PUT", "DELETE"])
    @kit.conditional()
    def doc(name: str) -> Any:
        path = "/" + name
        docs.calls[request.method] += 1
        if request.method == "GET":
            return (docs.docs[path], 200) if path in docs.docs else ("missing", 404)
        if request.method == "PUT":
            created = path not in docs.docs
            docs.docs[path] = request.get_data()
            return "saved", 201 if created else 200
        return ("", 204) if docs.docs.pop(path, None) is not None else ("missing", 404)

    return app


class Buffered(Client):
    """A test client that reads and closes every response's iterable (PEP 3333; wsgiref's validator
    checks it)."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("buffered", True)
        return super().open(*args, **kwargs)


Face = Callable[[Docs], Client]


def _wsgi(cache: bool) -> Face:
    def make(docs: Docs) -> Client:
        store = TagCache() if cache else None
        return Buffered(pep3333(ETagMiddleware(pep3333(plain_app(docs)), cache=store, metrics=Metrics())))

    return make


def _flask(cache: bool) -> Face:
    return lambda docs: Buffered(pep3333(flask_app(docs, TagCache() if cache else None)))


FACES = {
    "wsgi": _wsgi(False),
    "wsgi+cache": _wsgi(True),
    "flask": _flask(False),
    "flask+cache": _flask(True),
}


@pytest.fixture(params=sorted(FACES))
def face(request: pytest.FixtureRequest) -> Iterator[tuple[Docs, Client]]:
    docs = Docs()
    yield docs, FACES[request.param](docs)


def test_a_stale_if_match_never_reaches_the_write(face: tuple[Docs, Client]) -> None:
    docs, client = face
    first = client.get("/doc").headers["ETag"]
    alice = client.put("/doc", data=b"alice", headers={"If-Match": first})
    assert alice.status_code == 200
    bob = client.put("/doc", data=b"bob", headers={"If-Match": first})  # stale: alice wrote since
    assert bob.status_code == 412
    assert docs.docs["/doc"] == b"alice" and docs.calls["PUT"] == 1
    current = client.get("/doc").headers["ETag"]
    assert client.put("/doc", data=b"bob", headers={"If-Match": current}).status_code == 200
    assert docs.docs["/doc"] == b"bob"


def test_if_none_match_star_creates_only_what_is_missing(face: tuple[Docs, Client]) -> None:
    docs, client = face
    assert client.put("/doc", data=b"x", headers={"If-None-Match": "*"}).status_code == 412
    assert docs.docs["/doc"] == b"first draft"
    made = client.put("/new", data=b"fresh", headers={"If-None-Match": "*"})
    assert made.status_code == 201 and docs.docs["/new"] == b"fresh"


def test_a_conditional_write_to_a_missing_target_gets_the_apps_404(face: tuple[Docs, Client]) -> None:
    docs, client = face
    gone = client.delete("/nothing", headers={"If-Match": '"whatever"'})
    assert gone.status_code == 404 and docs.calls["DELETE"] == 1


def test_an_unconditional_write_costs_no_read_back(face: tuple[Docs, Client]) -> None:
    docs, client = face
    assert client.put("/doc", data=b"plain").status_code == 200
    assert docs.calls["GET"] == 0 and docs.calls["PUT"] == 1


def test_the_read_back_is_not_counted_as_traffic() -> None:
    docs, metrics = Docs(), Metrics()
    client = Buffered(ETagMiddleware(plain_app(docs), metrics=metrics))
    tag = client.get("/doc").headers["ETag"]
    client.put("/doc", data=b"v2", headers={"If-Match": tag})
    assert docs.calls["GET"] == 2  # the client's GET and the write's read-back
    counts = metrics.snapshot()["totals"]["responses"]
    assert sum(counts.values()) == 2  # the client's GET and its PUT, not the read-back

"""Streams are never held back: over a real waitress server, through the middleware and the extension.

An event-stream endpoint yields its first event, then waits on a gate that only the test opens, and
only after it has read that first event off the socket. A face that buffered the stream to hash it
would never deliver the first event, the gate would never open, and the read would time out: the
test fails without measuring any time. HEAD of such a stream must answer without draining it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask, Response
from support import head_and_first_event, waitress_server

from etagkit.cache import TagCache
from etagkit.flask import ETagKit
from etagkit.flow import ConditionalFlow
from etagkit.wsgi import ETagMiddleware

GATE_WAIT = 30  # seconds a generator waits for the test; only reached when a face buffers (a failure)


class Stream:
    """A stream whose second event waits for the test's gate (a face that buffers never sees its
    end: to it, the stream is endless); counts what it produced."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.produced = 0
        self.closed = threading.Event()

    def events(self) -> Iterator[bytes]:
        try:
            self.produced += 1
            yield b"data: first\n\n"
            if not self.gate.wait(GATE_WAIT):
                return
            for _ in range(3):  # a stream no face can see the end of before it gets here
                self.produced += 1
                yield b"data: more\n\n"
        finally:
            self.closed.set()


def _wsgi_app(stream: Stream, ctype: str) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", ctype), ("Cache-Control", "no-cache")])
        return stream.events()

    return ETagMiddleware(app, cache=TagCache(), stored=True)


def _flask_app(stream: Stream, ctype: str) -> Any:
    app = Flask(__name__)
    kit = ETagKit(app, cache=TagCache())

    @app.get("/")
    @kit.conditional(stored=True)
    def events() -> Response:
        return Response(stream.events(), content_type=ctype)

    return app


FACES: dict[str, Callable[[Stream, str], Any]] = {"wsgi": _wsgi_app, "flask": _flask_app}


@pytest.mark.parametrize("ctype", ["text/event-stream", "application/octet-stream"])
@pytest.mark.parametrize("face", sorted(FACES))
def test_the_first_event_arrives_before_the_stream_ends(face: str, ctype: str) -> None:
    stream = Stream()
    with waitress_server(FACES[face](stream, ctype)) as port:
        got = head_and_first_event(port, timeout=GATE_WAIT / 2)
        stream.gate.set()  # only now may the stream go on: a buffering face never got here in time
        head = got.split(b"\r\n\r\n", 1)[0].lower()
        assert got.startswith(b"HTTP/1.1 200") and b"data: first" in got
        assert b"etag:" not in head  # a stream of unknown length passes through untagged
        assert stream.produced >= 1
        assert stream.closed.wait(GATE_WAIT)  # the server's task ended before the server stops


@pytest.mark.parametrize("face", sorted(FACES))
def test_head_of_a_stream_answers_without_draining_it(face: str) -> None:
    stream = Stream()
    with waitress_server(FACES[face](stream, "text/event-stream")) as port:
        got = head_and_first_event(port, "HEAD", timeout=GATE_WAIT / 2)
        assert got.startswith(b"HTTP/1.1 200") and b"data:" not in got
        assert stream.produced <= 1  # never drained: the gate was never opened
        stream.gate.set()


def test_the_flow_passes_a_stream_untagged_and_tags_a_complete_body() -> None:
    flow = ConditionalFlow(TagCache(), stored=True)
    request = flow.open("GET", "/s", {"Host": "x"})
    reply = request.respond(200, [("Content-Type", "text/event-stream")], None)
    assert reply.status == 200 and not reply.replaces_body
    assert all(k.lower() != "etag" for k, _ in reply.headers)
    request = flow.open("GET", "/c", {"Host": "x"})
    reply = request.respond(200, [("Content-Type", "text/plain")], b"complete")
    assert any(k == "ETag" for k, _ in reply.headers)
    ctype = [("Content-Type", "text/event-stream")]
    assert flow.open("GET", "/e", {"Host": "x"}).respond(200, ctype, b"data: 1\n\n").etag is None

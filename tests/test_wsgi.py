"""ETagMiddleware: ETags, preconditions and stored ETags around a PEP 3333 app.

Every app here runs as ``validator(ETagMiddleware(validator(app)))``: wsgiref's validator checks
both sides of the middleware (and fails on an iterable that is never closed).
"""

from __future__ import annotations

import gzip
import json
import socket
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment
from wsgiref.validate import validator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import free_port, wait_for_port
from werkzeug.test import Client, EnvironBuilder

from etagkit import ConfigurationError, Validator, ValidatorStore, format_http_date, generate_etag
from etagkit.cache import TagCache
from etagkit.metrics import Metrics
from etagkit.wsgi import ETagMiddleware

BODY = b"hello, revalidating world"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Result:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        found = [v for k, v in self.headers if k.lower() == name.lower()]
        return ", ".join(found) if found else None


def serve(
    app: WSGIApplication,
    path: str = "/",
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    query: str = "",
) -> Result:
    """A minimal PEP 3333 server: one request, body written + iterated, iterable closed."""
    environ = EnvironBuilder(
        path=path, method=method, headers=headers or {}, query_string=query
    ).get_environ()
    got: dict[str, Any] = {}
    written: list[bytes] = []

    def start_response(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if exc_info is not None and got.get("sent"):
            raise exc_info[1].with_traceback(exc_info[2])
        got["status"], got["headers"] = status, response_headers
        return written.append

    result = app(environ, start_response)
    try:
        for chunk in result:
            got["sent"] = True
            written.append(chunk)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return Result(int(got["status"][:3]), got["headers"], b"".join(written))


@dataclass
class App:
    """A plain WSGI app that records what happened to it."""

    status: str = "200 OK"
    headers: list[tuple[str, str]] = field(default_factory=lambda: [("Content-Type", "text/plain")])
    chunks: list[bytes] = field(default_factory=lambda: [BODY[:5], BODY[5:]])
    calls: int = 0
    closed: int = 0
    produced: int = 0
    use_write: bool = False
    fail_after: int | None = None
    methods: list[str] = field(default_factory=list)
    declare_length: bool = True  # send Content-Length (unless the headers have one): a known length

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        self.calls += 1
        self.methods.append(environ["REQUEST_METHOD"])
        headers = list(self.headers)
        if self.declare_length and not any(k.lower() == "content-length" for k, _ in headers):
            headers.append(("Content-Length", str(sum(len(c) for c in self.chunks))))
        write = start_response(self.status, headers)
        if self.use_write:
            for chunk in self.chunks:
                write(chunk)
            return _Tracked(self, [])
        return _Tracked(self, self.chunks)


class _Tracked:
    def __init__(self, app: App, chunks: list[bytes]) -> None:
        self.app = app
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        for i, chunk in enumerate(self.chunks):
            if self.app.fail_after is not None and i >= self.app.fail_after:
                raise RuntimeError("the app failed mid-body")
            self.app.produced += 1
            yield chunk

    def close(self) -> None:
        self.app.closed += 1


def wrap(app: WSGIApplication, **options: Any) -> WSGIApplication:
    return validator(ETagMiddleware(validator(app), **options))


def build(app: WSGIApplication, validated: bool, **options: Any) -> WSGIApplication:
    """The middleware bare (to watch the app's iterable directly) or under wsgiref's validator."""
    return wrap(app, **options) if validated else ETagMiddleware(app, **options)


VALIDATED = pytest.mark.parametrize("validated", [False, True], ids=["bare", "validated"])


# -- stateless ETags ------------------------------------------------------------------------------


def test_a_200_gets_a_strong_etag_of_its_body_and_a_match_gets_304() -> None:
    app = App(headers=[("Content-Type", "text/plain"), ("Cache-Control", "no-cache"), ("X-Other", "1")])
    mw = wrap(app)
    first = serve(mw)
    assert first.status == 200 and first.body == BODY
    assert first.header("ETag") == str(generate_etag(BODY))
    again = serve(mw, headers={"If-None-Match": first.header("ETag") or ""})
    assert again.status == 304 and again.body == b""
    assert again.headers == [("Cache-Control", "no-cache"), ("ETag", str(generate_etag(BODY)))]
    assert app.closed == app.calls == 2


def test_head_gets_the_etag_get_would_get_and_no_body() -> None:
    app = App()
    mw = wrap(app)
    head = serve(mw, method="HEAD")
    assert head.status == 200 and head.body == b""
    assert head.header("ETag") == str(generate_etag(BODY))
    revalidated = serve(mw, method="HEAD", headers={"If-None-Match": str(generate_etag(BODY))})
    assert revalidated.status == 304 and app.methods == ["GET", "GET"] and app.closed == 2


def _raw_exchange(port: int, request: bytes) -> tuple[list[bytes], bytes]:
    """Send one raw HTTP/1.1 request (Connection: close) and read to EOF: header lines, and every
    byte that followed the header section."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head.split(b"\r\n"), rest


def test_head_under_a_real_server_carries_gets_length_and_nothing_after_the_headers() -> None:
    from waitress.server import create_server

    app = App()  # a body in two chunks and no Content-Length: the middleware buffers it
    server: Any = create_server(ETagMiddleware(app), host="127.0.0.1", port=free_port(), threads=1)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        port = server.effective_port
        wait_for_port(port)
        request = b"%s / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        head, after = _raw_exchange(port, request % b"HEAD")
        got, body = _raw_exchange(port, request % b"GET")
    finally:
        server.close()
        thread.join(timeout=10)
    assert head[0].startswith(b"HTTP/1.1 200") and after == b""  # no chunked framing (RFC 9112 §6.3)
    lower = [line.lower() for line in head]
    assert f"content-length: {len(BODY)}".encode() in lower  # what GET sends (RFC 9110 §9.3.2)
    assert not any(line.startswith(b"transfer-encoding") for line in lower)
    assert body == BODY and f"content-length: {len(BODY)}".encode() in [line.lower() for line in got]
    assert app.methods == ["GET", "GET"] and app.closed == 2


@VALIDATED
def test_an_app_supplied_etag_is_used_without_buffering(validated: bool) -> None:
    app = App(headers=[("Content-Type", "text/plain"), ("ETag", '"v9"')], chunks=[b"a", b"b", b"c"])
    mw = build(app, validated)
    environ = EnvironBuilder(path="/").get_environ()
    result = mw(environ, lambda s, h, e=None: lambda b: None)
    iterator = iter(result)
    assert next(iterator) == b"a" and app.produced == 1  # streamed: nothing read ahead
    _close(result)
    assert serve(wrap(app), headers={"If-None-Match": '"v9"'}).status == 304


def _close(result: Iterable[bytes]) -> None:
    close = getattr(result, "close", None)
    if close is not None:
        close()


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        ("404 Not Found", [("Content-Type", "text/plain")]),
        ("301 Moved Permanently", [("Content-Type", "text/plain"), ("Location", "/x")]),
        ("500 Internal Server Error", [("Content-Type", "text/plain")]),
        ("200 OK", [("Content-Type", "text/plain"), ("Cache-Control", "no-store")]),
    ],
)
def test_errors_redirects_and_no_store_pass_through_untouched(
    status: str, headers: list[tuple[str, str]]
) -> None:
    app = App(status=status, headers=headers, declare_length=False)
    got = serve(wrap(app))
    assert got.status == int(status[:3]) and got.headers == headers and got.body == BODY
    assert app.closed == 1
    if not status.startswith("200"):  # preconditions apply only to 2xx (RFC 9110 §13.2.1)
        got = serve(wrap(app), headers={"If-None-Match": "*"})
        assert got.status == int(status[:3]) and got.headers == headers and got.body == BODY


@pytest.mark.parametrize(
    "app",
    [
        App(headers=[("Content-Type", "text/plain"), ("Cache-Control", "no-store")]),
        App(declare_length=False),  # a stream of unknown length: never tagged
        App(chunks=[b"x" * 10] * 10),  # over the cap: never tagged
    ],
    ids=["no-store", "stream", "over-the-cap"],
)
def test_if_none_match_star_answers_304_on_any_2xx_get_even_untagged(app: App) -> None:
    # RFC 9110 §13.1.2: "*" is false when any current representation exists, tagged or not
    mw = wrap(app, max_buffer=50)
    assert serve(mw).header("ETag") is None
    got = serve(mw, headers={"If-None-Match": "*"})
    assert got.status == 304 and got.body == b"" and got.header("Content-Type") is None
    assert serve(mw, method="HEAD", headers={"If-None-Match": "*"}).status == 304


@VALIDATED
def test_bodies_over_the_cap_stream_through_untagged_and_are_never_fully_buffered(validated: bool) -> None:
    chunks = [b"x" * 10] * 10
    app = App(chunks=chunks)
    mw = build(app, validated, max_buffer=25)
    sent: dict[str, Any] = {}
    result = mw(
        EnvironBuilder(path="/").get_environ(), lambda s, h, e=None: sent.update(h=h) or (lambda b: None)
    )
    iterator = iter(result)
    assert next(iterator) == b"x" * 10
    assert app.produced <= 4  # cap + one chunk, not the whole body
    assert "ETag" not in dict(sent["h"])
    rest = b"".join(iterator)
    _close(result)
    assert len(rest) == 90 and app.closed == 1
    assert serve(wrap(App(chunks=chunks), max_buffer=25)).header("ETag") is None


def test_the_write_callable_works_and_counts_towards_the_etag() -> None:
    app = App(use_write=True)
    mw = wrap(app)
    got = serve(mw)
    assert got.body == BODY and got.header("ETag") == str(generate_etag(BODY))
    assert serve(mw, headers={"If-None-Match": str(generate_etag(BODY))}).status == 304
    big = App(use_write=True, chunks=[b"y" * 10] * 5)
    streamed = serve(wrap(big, max_buffer=15))
    assert streamed.body == b"y" * 50 and streamed.header("ETag") is None and big.closed == 1


def test_a_lazy_start_response_inside_the_iterable_works() -> None:
    def lazy(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))])
        yield BODY

    got = serve(wrap(lazy))
    assert got.body == BODY and got.header("ETag") == str(generate_etag(BODY))
    assert serve(wrap(lazy), headers={"If-None-Match": str(generate_etag(BODY))}).status == 304


@VALIDATED
def test_the_iterable_is_closed_when_the_app_fails_mid_body(validated: bool) -> None:
    app = App(chunks=[b"a", b"b"], fail_after=1)
    with pytest.raises(RuntimeError, match="mid-body"):
        serve(build(app, validated))
    assert app.closed == 1


def test_exc_info_replaces_a_response_that_was_not_sent() -> None:
    def failing(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("boom")
        except ValueError:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"error page"]

    got = serve(wrap(failing))
    assert got.status == 500 and got.body == b"error page" and got.header("ETag") is None


@VALIDATED
def test_exc_info_after_the_headers_went_out_reraises(validated: bool) -> None:
    def failing(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        start_response("404 Not Found", [("Content-Type", "text/plain")])  # passes straight through
        yield b"partial"
        try:
            raise ValueError("late")
        except ValueError:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())

    with pytest.raises(ValueError, match="late"):
        serve(build(failing, validated))


@VALIDATED
def test_start_response_twice_without_exc_info_is_an_error(validated: bool) -> None:
    def twice(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b""]

    with pytest.raises(AssertionError):
        serve(build(twice, validated))


def test_content_codings_get_their_own_strong_tag_or_a_weak_one() -> None:
    identity = App(headers=[("Content-Type", "text/plain")])
    coded = App(headers=[("Content-Type", "text/plain"), ("Content-Encoding", "gzip")])
    coded.chunks = [gzip.compress(BODY, mtime=0)]
    plain_tag = serve(wrap(identity)).header("ETag")
    gz = serve(wrap(coded))
    assert gz.header("ETag") != plain_tag and not (gz.header("ETag") or "").startswith("W/")
    assert serve(wrap(coded), headers={"If-None-Match": gz.header("ETag") or ""}).status == 304
    weakened = serve(wrap(coded, weaken_encoded=True)).header("ETag") or ""
    assert weakened == "W/" + (gz.header("ETag") or "").replace("-gzip", "")


def test_the_apps_own_etag_is_sent_as_is_with_a_content_coding_and_its_writes_match() -> None:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ["REQUEST_METHOD"] == "PUT":
            ok = environ.get("HTTP_IF_MATCH") == '"v7-gz"'
            start_response("204 No Content" if ok else "412 Precondition Failed", [])
            return []
        start_response(
            "200 OK", [("Content-Type", "text/plain"), ("Content-Encoding", "gzip"), ("ETag", '"v7-gz"')]
        )
        return [gzip.compress(b"hello", mtime=0)]

    for weaken in (False, True):
        mw = wrap(app, weaken_encoded=weaken)
        sent = serve(mw).header("ETag")
        assert sent == '"v7-gz"'
        assert serve(mw, headers={"If-None-Match": sent}).status == 304
        assert serve(mw, method="PUT", headers={"If-Match": sent}).status == 204


# -- unsafe methods, 412, 428 -------------------------------------------------------------------------


def test_a_stale_if_match_fails_before_the_app_runs() -> None:
    app = App()
    mw = wrap(app, validator=lambda environ: Validator('"v2"'))
    failed = serve(mw, method="PUT", headers={"If-Match": '"v1"', "Accept": "application/json"})
    assert failed.status == 412 and app.calls == 0
    assert json.loads(failed.body)["status"] == 412
    assert {k.lower() for k, _ in failed.headers} == {"content-type", "content-length"}
    assert serve(mw, method="PUT", headers={"If-Match": '"v2"'}).status == 200 and app.calls == 1


def test_a_cheap_validator_answers_304_before_the_app_and_tags_the_response() -> None:
    app = App()
    mw = wrap(app, validator=lambda environ: Validator('"v2"'))
    assert serve(mw, headers={"If-None-Match": '"v2"'}).status == 304 and app.calls == 0
    assert serve(mw).header("ETag") == '"v2"' and app.calls == 1


def test_the_apps_own_etag_wins_over_the_validator_callables() -> None:
    app = App(headers=[("Content-Type", "text/plain"), ("ETag", '"app-made"')])
    mw = wrap(app, validator=lambda environ: Validator('"v2"'))
    assert serve(mw).header("ETag") == '"app-made"'
    assert serve(mw, headers={"If-None-Match": '"app-made"'}).status == 304 and app.calls == 2


def test_428_is_opt_in() -> None:
    app = App()
    assert serve(wrap(app), method="DELETE").status == 200
    required = wrap(app, require_precondition=True)
    assert serve(required, method="DELETE").status == 428 and app.calls == 1
    assert serve(required, method="DELETE", headers={"If-Match": "*"}).status == 200
    assert serve(required).status == 200  # GET never needs one


# -- stored ETags ---------------------------------------------------------------------------------


def _tagged_app(tags: str = "books") -> App:
    return App(headers=[("Content-Type", "text/plain"), ("Cache-Tag", tags), ("Cache-Control", "no-cache")])


def _warm(mw: WSGIApplication, **kwargs: Any) -> str:
    """Get a representation's tag and have its validator stored. The 200 stores it, except that a tag
    first seen in a response header has no mark yet, so that first store is refused (the race-safe
    rule) and the first revalidation stores it."""
    headers = kwargs.pop("headers", {})
    tag = serve(mw, headers=headers, **kwargs).header("ETag")
    assert tag is not None
    for _ in range(2):
        assert serve(mw, headers={**headers, "If-None-Match": tag}, **kwargs).status == 304
    return tag


@pytest.mark.parametrize("tags", [None, "books"], ids=["path-tag-only", "known-tag"])
def test_a_200_stores_the_validator_so_the_first_revalidation_skips_the_app(tags: str | None) -> None:
    cache = TagCache(timer=FakeClock())
    headers = [("Content-Type", "text/plain")] + ([("Cache-Tag", tags)] if tags else [])
    app = App(headers=headers)
    if tags:
        cache.invalidate_tags(tags)  # the store has seen the tag before (e.g. an earlier write)
    mw = wrap(app, cache=cache, stored=None if tags else True)  # a declared tag, or every route
    for method in ("GET", "HEAD"):
        tag = serve(mw, method=method).header("ETag")
        assert tag is not None and app.calls == 1  # the 200 (or HEAD) stored the validator...
        assert cache.stats()["misses"] == 0  # ...and an unconditional request never looks one up
        assert serve(mw, method=method, headers={"If-None-Match": tag}).status == 304
        assert app.calls == 1  # the first revalidation is answered without the app
        cache.invalidate_tags(tags or "etagkit:never-used")
        cache.clear()
        app.calls = 0


def test_a_tag_first_seen_in_a_response_header_is_stored_from_the_next_response() -> None:
    cache = TagCache(timer=FakeClock())
    app = _tagged_app()
    mw = wrap(app, cache=cache)
    tag = serve(mw).header("ETag")
    assert tag is not None
    assert serve(mw, headers={"If-None-Match": tag}).status == 304 and app.calls == 2  # refused: no mark
    assert serve(mw, headers={"If-None-Match": tag}).status == 304 and app.calls == 2


def test_a_stored_etag_answers_304_without_calling_the_app_until_its_tag_is_invalidated() -> None:
    cache = TagCache(timer=FakeClock())
    app = _tagged_app()
    mw = wrap(app, cache=cache)
    tag = _warm(mw)
    calls = app.calls
    got = serve(mw, headers={"If-None-Match": tag})
    assert got.status == 304 and app.calls == calls
    assert got.headers == [("Cache-Control", "no-cache"), ("ETag", tag)]
    assert serve(mw, method="HEAD", headers={"If-None-Match": tag}).status == 304 and app.calls == calls
    cache.invalidate_tags("books")
    assert serve(mw, headers={"If-None-Match": tag}).status == 304 and app.calls == calls + 1
    assert serve(mw, headers={"If-None-Match": tag}).status == 304 and app.calls == calls + 1


def test_the_tag_header_is_stripped_unless_kept() -> None:
    cache = TagCache(timer=FakeClock())
    assert serve(wrap(_tagged_app(), cache=cache)).header("Cache-Tag") is None
    kept = serve(wrap(_tagged_app("a, b"), cache=cache, keep_tag_header=True))
    assert kept.header("Cache-Tag") == "a, b"
    custom = App(headers=[("Content-Type", "text/plain"), ("Surrogate-Key", "a b")])
    assert serve(wrap(custom, cache=cache, tag_header="Surrogate-Key")).header("Surrogate-Key") is None


def test_a_successful_write_invalidates_the_stored_validators_of_its_path() -> None:
    cache = TagCache(timer=FakeClock())
    app = _tagged_app()
    mw = wrap(app, cache=cache)
    tag = _warm(mw, path="/books")
    serve(mw, path="/books", method="POST")  # 200: the collection changed
    calls = app.calls
    serve(mw, path="/books", headers={"If-None-Match": tag})
    assert app.calls == calls + 1


def test_stored_validators_and_path_tags_are_per_host() -> None:
    cache = TagCache(timer=FakeClock())
    app = App(headers=[("Content-Type", "text/plain"), ("Cache-Control", "no-cache")])  # path tags only
    mw = wrap(app, cache=cache, stored=True)
    a, b = {"Host": "tenant-a.example"}, {"Host": "tenant-b.example"}
    tag_a = _warm(mw, path="/home", headers=a)
    calls = app.calls
    # tenant-a's stored validator never answers tenant-b (the app runs for b)
    assert serve(mw, path="/home", headers={**b, "If-None-Match": tag_a}).status == 304
    assert app.calls == calls + 1
    tag_b = _warm(mw, path="/home", headers=b)
    calls = app.calls
    serve(mw, path="/home", method="POST", headers=a)  # a write on tenant-a's /home ...
    assert serve(mw, path="/home", headers={**b, "If-None-Match": tag_b}).status == 304
    assert app.calls == calls + 1  # ... leaves tenant-b's stored validator alone (only the POST ran)
    assert serve(mw, path="/home", headers={**a, "If-None-Match": tag_a}).status == 304
    assert app.calls == calls + 2  # tenant-a's was invalidated


def test_a_response_with_expires_is_never_replayed_from_a_stored_validator() -> None:
    clock = iter(range(1_800_000_000, 1_900_000_000, 3600))  # each app call: one hour later
    expires: list[str] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        expires.append(format_http_date(next(clock) + 60))
        start_response(
            "200 OK",
            [
                ("Content-Type", "text/plain"),
                ("Expires", expires[-1]),
                ("Cache-Tag", "t"),
                ("Content-Length", "9"),
            ],
        )
        return [b"same body"]

    mw = wrap(app, cache=TagCache(timer=FakeClock()))
    tag = serve(mw).header("ETag") or ""
    for _ in range(3):
        got = serve(mw, headers={"If-None-Match": tag})
        assert got.status == 304 and got.header("Expires") == expires[-1]  # the app's current one
    assert len(expires) == 4


def test_a_write_that_commits_when_its_body_closes_leaves_no_stale_validator() -> None:
    db = {"doc": "old"}

    class Committing:
        """A write's body whose close() commits it (a transaction held open while it streams)."""

        def __iter__(self) -> Iterator[bytes]:
            yield b"saved"

        def close(self) -> None:
            db["doc"] = "new"

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ["REQUEST_METHOD"] == "PUT":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return Committing()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Cache-Control", "no-cache")])
        return [db["doc"].encode()]

    mw = ETagMiddleware(app, cache=TagCache(timer=FakeClock()))
    old = _warm(mw, path="/doc")
    put = EnvironBuilder(path="/doc", method="PUT", data=b"new").get_environ()
    body = mw(put, lambda status, headers, exc_info=None: lambda data: None)
    assert list(body) == [b"saved"]  # invalidated, but not committed yet
    assert serve(mw, path="/doc").body == b"old"  # a read in the window stores the old validator
    assert serve(mw, path="/doc", headers={"If-None-Match": old}).status == 304
    body.close()  # type: ignore[attr-defined]  # the write commits, then the validators are dropped again
    fresh = serve(mw, path="/doc", headers={"If-None-Match": old})
    assert fresh.status == 200 and fresh.body == b"new"


def test_a_stored_validator_guards_writes_before_they_run() -> None:
    cache = TagCache(timer=FakeClock())
    app = _tagged_app()
    mw = wrap(app, cache=cache)
    _warm(mw, path="/books/1")
    calls = app.calls
    assert serve(mw, path="/books/1", method="PUT", headers={"If-Match": '"stale"'}).status == 412
    assert app.calls == calls


def test_credentialed_requests_skip_stored_validators_unless_scoped() -> None:
    cache = TagCache(timer=FakeClock())
    app = _tagged_app()
    mw = wrap(app, cache=cache)
    tag = _warm(mw)
    calls = app.calls
    for creds in ({"Authorization": "Bearer alice"}, {"Cookie": "session=alice"}):
        got = serve(mw, headers={"If-None-Match": tag, **creds})
        assert got.status == 304  # stateless: the app ran, its body matched
    assert app.calls == calls + 2
    scoped = wrap(app, cache=cache, scope=lambda environ: environ.get("HTTP_AUTHORIZATION"))
    alice = {"Authorization": "Bearer alice"}
    own = _warm(scoped, headers=alice)
    calls = app.calls
    assert serve(scoped, headers={"If-None-Match": own, **alice}).status == 304 and app.calls == calls
    serve(scoped, headers={"If-None-Match": own, "Authorization": "Bearer bob"})
    assert app.calls == calls + 1  # bob never sees alice's stored validator


def test_the_query_is_part_of_the_key_in_canonical_order() -> None:
    cache = TagCache(timer=FakeClock())
    app = _tagged_app()
    mw = wrap(app, cache=cache)
    tag = _warm(mw, query="a=1&b=2")
    calls = app.calls
    assert serve(mw, query="b=2&a=1", headers={"If-None-Match": tag}).status == 304 and app.calls == calls
    serve(mw, query="a=1&b=3", headers={"If-None-Match": tag})
    assert app.calls == calls + 1


def test_vary_selects_the_stored_variant() -> None:
    cache = TagCache(timer=FakeClock())

    def negotiating(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        body = environ.get("HTTP_ACCEPT", "none").encode()
        start_response(
            "200 OK",
            [
                ("Content-Type", "text/plain"),
                ("Vary", "Accept"),
                ("Cache-Tag", "n"),
                ("Content-Length", str(len(body))),
            ],
        )
        return [body]

    mw = wrap(negotiating, cache=cache)
    json_tag = _warm(mw, headers={"Accept": "application/json"})
    html_tag = _warm(mw, headers={"Accept": "text/html"})
    assert json_tag != html_tag
    assert serve(mw, headers={"Accept": "application/json", "If-None-Match": json_tag}).status == 304
    assert serve(mw, headers={"Accept": "text/html", "If-None-Match": json_tag}).status == 200


def test_store_trouble_means_stateless_reads_counted_and_refused_writes() -> None:

    from etagkit.cache.redis import RedisStore

    metrics = Metrics()
    dead = TagCache(RedisStore(f"redis://127.0.0.1:{free_port()}/0", prefix="etagkit-test-dead:"))
    app = _tagged_app()
    mw = wrap(app, cache=dead, metrics=metrics)
    tag = serve(mw).header("ETag")
    assert tag == str(generate_etag(BODY))
    got = serve(mw, headers={"If-None-Match": tag})
    assert got.status == 304 and app.calls == 2
    # a write whose invalidation cannot be recorded is refused before the app runs (issue 12)
    refused = serve(mw, method="PUT")
    assert refused.status == 503 and refused.header("Retry-After") == "1" and app.calls == 2
    snapshot = json.dumps(metrics.snapshot())
    assert "stateless_fallback" in snapshot


def test_metrics_count_statuses_and_bytes_saved() -> None:
    metrics = Metrics()
    cache = TagCache(timer=FakeClock())
    app = _tagged_app()
    mw = wrap(app, cache=cache, metrics=metrics, route=lambda environ: "books")
    tag = _warm(mw)
    serve(mw, headers={"If-None-Match": tag})  # stored 304
    cache.invalidate_tags("books")
    serve(mw, headers={"If-None-Match": tag})  # stateless 304
    serve(mw, headers={"If-Match": '"nope"'})
    serve(wrap(app, require_precondition=True, metrics=metrics, route=lambda e: "books"), method="PUT")
    counts = metrics.counts()
    assert counts[("responses", "books", "200")] == 1
    assert counts[("responses", "books", "304")] == 4  # two while warming, one stored, one stateless
    assert counts[("responses", "books", "412")] == 1
    assert counts[("responses", "books", "428")] == 1
    assert counts[("stored_304", "books", "")] == 2  # the second warming one was stored already
    assert counts[("bytes_saved", "books", "")] == 4 * len(BODY)


def test_werkzeug_test_client_sees_the_same() -> None:
    client = Client(wrap(App()))
    first = client.get("/")
    assert first.status_code == 200 and first.headers["ETag"] == str(generate_etag(BODY))
    second = client.get("/", headers={"If-None-Match": first.headers["ETag"]})
    assert second.status_code == 304 and second.data == b""
    first.close()
    second.close()


# -- configuration and hostile input ---------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"max_buffer": -1},
        {"max_buffer": True},
        {"tag_header": "Cache Tag"},
        {"tag_header": ""},
        {"validator": "not callable"},
        {"scope": 5},
        {"cache": object()},
        {"ttl": -5},
        {"ttl": float("nan")},
        {"ttl": "60"},
        {"weak": "no"},
        {"weaken_encoded": 1},
        {"require_precondition": "yes"},
        {"keep_tag_header": None},
        {"json_errors": "maybe"},
    ],
)
def test_misconfiguration_raises_at_construction(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        ETagMiddleware(App(), **options)
    with pytest.raises(ConfigurationError):
        ETagMiddleware("not an app")  # type: ignore[arg-type]


def test_a_validator_store_refuses_a_bad_ttl_or_cache() -> None:
    for ttl in (-5, 0, "60", True):
        with pytest.raises(ConfigurationError, match="ttl"):
            ValidatorStore(TagCache(), ttl=ttl)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="cache"):
        ValidatorStore(object())  # type: ignore[arg-type]
    assert ValidatorStore(TagCache(), ttl=30).ttl == 30.0


_FIELDS = [
    "If-None-Match",
    "If-Match",
    "If-Modified-Since",
    "If-Unmodified-Since",
    "If-Range",
    "Range",
    "Cache-Control",
    "Authorization",
    "Cookie",
    "Accept",
    "Accept-Encoding",
]
_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=80
)
_shared_cache = TagCache(timer=FakeClock())
_fuzzed: Callable[..., Any] = wrap(_tagged_app(), cache=_shared_cache, require_precondition=True)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(["GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"]),
    headers=st.dictionaries(
        st.sampled_from(_FIELDS), st.one_of(_text, st.sampled_from(["*", '"a"', 'W/"a"'])), max_size=6
    ),
    query=_text,
)
def test_fuzzed_request_headers_never_break_the_middleware(
    method: str, headers: dict[str, str], query: str
) -> None:
    headers = {k: v.strip() for k, v in headers.items()}
    got = serve(_fuzzed, method=method, headers=headers, query=query.replace(" ", "+").replace("#", ""))
    assert got.status in (200, 304, 412, 428)


def test_an_invalidation_while_the_app_runs_is_never_lost() -> None:
    cache = TagCache(timer=FakeClock())
    app = _tagged_app()
    mw = wrap(app, cache=cache)
    tag = _warm(mw)
    cache.invalidate_tags("books")
    racing = App(headers=app.headers)

    def writer_lands_meanwhile(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        result = racing(environ, start_response)
        cache.invalidate_tags("books")  # a write commits while the old body is being produced
        return result

    raced = wrap(writer_lands_meanwhile, cache=cache)
    assert serve(raced, headers={"If-None-Match": tag}).status == 304  # a miss: the app ran
    assert serve(raced, headers={"If-None-Match": tag}).status == 304
    assert racing.calls == 2  # the validator computed during the write was never stored


@pytest.mark.redis
def test_redis_dying_mid_run_degrades_to_stateless_etags(private_redis: Any) -> None:
    from etagkit.cache.redis import RedisStore

    metrics = Metrics()
    cache = TagCache(RedisStore(private_redis.url, prefix="etagkit-test-dying:", socket_timeout=0.5))
    app = _tagged_app()
    mw = wrap(app, cache=cache, metrics=metrics)
    tag = _warm(mw)
    calls = app.calls
    assert serve(mw, headers={"If-None-Match": tag}).status == 304 and app.calls == calls
    private_redis.stop()  # the store dies: every request still gets its right answer
    for _ in range(5):
        assert serve(mw, headers={"If-None-Match": tag}).status == 304
        assert serve(mw).status == 200
    assert app.calls == calls + 10
    assert "stateless_fallback" in json.dumps(metrics.snapshot())

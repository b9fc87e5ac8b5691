"""read_current_validator: the GET sub-request that reads a target's current validator for a write."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from wsgiref.validate import validator as pep3333

import pytest

from etagkit import ETag, parse_http_date
from etagkit._readback import read_current_validator

WRITE = {
    "REQUEST_METHOD": "PUT",
    "SCRIPT_NAME": "",
    "PATH_INFO": "/doc",
    "QUERY_STRING": "v=1",
    "SERVER_NAME": "127.0.0.1",
    "SERVER_PORT": "80",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "HTTP_HOST": "127.0.0.1",
    "HTTP_IF_MATCH": '"old"',
    "HTTP_IF_UNMODIFIED_SINCE": "Sun, 06 Nov 1994 08:49:37 GMT",
    "HTTP_AUTHORIZATION": "Bearer alice",
    "CONTENT_TYPE": "application/json",
    "CONTENT_LENGTH": "9",
    "wsgi.version": (1, 0),
    "wsgi.url_scheme": "http",
    "wsgi.errors": __import__("sys").stderr,
    "wsgi.multithread": False,
    "wsgi.multiprocess": False,
    "wsgi.run_once": False,
}


def _environ() -> dict[str, Any]:
    import io

    return {**WRITE, "wsgi.input": io.BytesIO(b'{"a": 1}\n')}


class Closing:
    """A body that records that the server closed it."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.chunks)

    def close(self) -> None:
        self.closed = True


def responder(status: str, headers: list[tuple[str, str]], seen: list[dict[str, Any]], body: Closing) -> Any:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Closing:
        seen.append(dict(environ))
        start_response(status, headers)
        return body

    return app


def test_a_2xx_gives_the_etag_and_last_modified_a_get_would_send() -> None:
    seen: list[dict[str, Any]] = []
    body = Closing([b"hello"])
    headers = [
        ("ETag", '"v2"'),
        ("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
        ("Content-Type", "text/plain"),
    ]
    app = pep3333(responder("200 OK", headers, seen, body))
    found = read_current_validator(app, _environ())
    assert found is not None
    assert found.etag == ETag("v2") and found.exists
    assert found.last_modified == parse_http_date("Mon, 01 Jan 2024 00:00:00 GMT")
    assert body.closed
    sub = seen[0]
    assert sub["REQUEST_METHOD"] == "GET" and sub["PATH_INFO"] == "/doc" and sub["QUERY_STRING"] == "v=1"
    assert sub["HTTP_AUTHORIZATION"] == "Bearer alice"  # the same credentials read the same resource
    assert not any(k.startswith("HTTP_IF_") for k in sub)
    assert "CONTENT_LENGTH" not in sub and "CONTENT_TYPE" not in sub and sub["wsgi.input"].read(100) == b""


@pytest.mark.parametrize("status", ["404 Not Found", "410 Gone"])
def test_a_missing_target_has_no_current_representation(status: str) -> None:
    found = read_current_validator(responder(status, [], [], Closing([b"no"])), _environ())
    assert found is not None and not found.exists


@pytest.mark.parametrize(
    "status", ["401 Unauthorized", "403 Forbidden", "405 Method Not Allowed", "500 Oops"]
)
def test_an_unreadable_state_is_unknown(status: str) -> None:
    body = Closing([b"x"])
    assert read_current_validator(responder(status, [], [], body), _environ()) is None
    assert body.closed


def test_a_2xx_without_validators_exists_but_matches_no_tag() -> None:
    found = read_current_validator(responder("200 OK", [], [], Closing([b"x"])), _environ())
    assert found is not None and found.exists and found.etag is None and found.last_modified is None


def test_an_app_that_starts_lazily_and_raises_is_closed() -> None:
    closed: list[bool] = []

    class Lazy:
        def __init__(self, start_response: Callable[..., Any]) -> None:
            self.start_response = start_response

        def __iter__(self) -> Iterator[bytes]:
            self.start_response("200 OK", [("ETag", '"lazy"')])
            yield b"x"
            raise RuntimeError("boom")

        def close(self) -> None:
            closed.append(True)

    with pytest.raises(RuntimeError):
        read_current_validator(lambda environ, start_response: Lazy(start_response), _environ())
    assert closed == [True]

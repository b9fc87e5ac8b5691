"""Hypothesis fuzz of request headers against the bookstore over real HTTP (issue 13): the example
runs under waitress in a subprocess (memory store, and Redis), and every generated request goes over
a loopback socket as raw bytes, so values no HTTP client would send (binary, huge, unbalanced quotes,
10,000-member ETag lists, odd methods and versions) reach the server. No answer may be a 5xx.

``ETAGKIT_FUZZ_REQUESTS`` sets the examples per store (default 300, about 10 s): the long run is the
same test with a larger number.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import free_port, serve_process

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "bookstore.py"
REQUESTS = int(os.environ.get("ETAGKIT_FUZZ_REQUESTS", "300"))
TALLY: Counter[str] = Counter()


@pytest.fixture(scope="module", params=["memory", "redis"])
def bookstore(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = free_port()
    argv = [sys.executable, str(EXAMPLE), "--port", str(port), "--books", "50"]
    prefix = None
    if request.param == "redis":
        redis_url = request.getfixturevalue("redis_url")
        prefix = f"etagkit-test:{uuid.uuid4().hex[:12]}:{{fuzz}}:"
        argv += ["--redis", redis_url, "--redis-prefix", prefix]
    try:
        with serve_process(argv, port, log=tmp_path_factory.mktemp("fuzz") / "server.log", cwd=ROOT):
            yield port
    finally:
        if prefix is not None:
            import redis

            client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
            keys = list(client.scan_iter(match=prefix + "*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()


CONDITIONAL = ["If-None-Match", "If-Match", "If-Modified-Since", "If-Unmodified-Since", "If-Range", "Range"]
OTHER = ["Cache-Control", "Pragma", "Accept", "Accept-Encoding", "Cookie", "Authorization", "Host", "Vary",
         "Content-Type", "X-API-Key", "Expect", "Transfer-Encoding", "Connection"]  # fmt: skip
TAGS = ['"1-1"', 'W/"1-1"', "*", '"', "W/", '""', 'w/"x"', '"a,b"', '"\x80\xff"']
DATES = ["Wed, 01 May 2024 12:00:00 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "0"]
# field values without CR/LF (those end a header line: the request would only be malformed)
_LATIN1 = st.characters(min_codepoint=0, max_codepoint=255, exclude_characters="\r\n")
VALUES = st.one_of(
    st.sampled_from(TAGS + DATES + ["", " ", "bytes=0-1", "no-cache", "max-age=-1", "gzip;q=2"]),
    st.lists(st.sampled_from(TAGS), max_size=12).map(", ".join),
    st.text(_LATIN1, max_size=64),
    st.builds(lambda tag, n: ", ".join([tag] * n), st.sampled_from(TAGS), st.integers(1000, 10_000)),
    st.integers(1, 60_000).map(lambda n: "x" * n),
)
NAMES = st.one_of(
    st.sampled_from(CONDITIONAL + OTHER), st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,20}", fullmatch=True)
)
METHODS = st.sampled_from(
    ["GET", "GET", "HEAD", "PUT", "DELETE", "POST", "PATCH", "OPTIONS", "PROPFIND", "g3t"]
)
PATHS = st.sampled_from(
    ["/books", "/books/1", "/books/7", "/books/999999", "/books/x", "/authors/top", "/stats",
     "/books?limit=2&limit=3", "/authors/top?%ff=%00", "/nope"]
)  # fmt: skip
BODIES = st.one_of(
    st.just(b""),
    st.just(b'{"title": "T", "author": "A", "year": 2000}'),
    st.binary(max_size=64),
)
VERSIONS = st.sampled_from(["HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/0.9"])


def exchange(port: int, raw: bytes) -> int | None:
    """Send one raw request (Connection: close); the answer's status, or None if none came.

    A server may answer (a 400, say) and close before it read all of a bad request: the unread bytes
    then make its kernel reset the connection, which ends the read here and keeps the status."""
    data = b""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            sock.sendall(raw)
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):  # to the close, so the server is done with it
                data += chunk
    parts = data.split(b"\r\n", 1)[0].split()
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None


REQUEST = st.fixed_dictionaries(
    {
        "method": METHODS,
        "path": PATHS,
        "version": VERSIONS,
        "headers": st.lists(st.tuples(NAMES, VALUES), max_size=6),
        "body": BODIES,
    }
)
_FRAMING = ("content-length", "connection")  # set below, so that every request is framed alike


@settings(
    max_examples=REQUESTS,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(request=REQUEST)
def test_fuzzed_requests_never_get_a_5xx(bookstore: int, request: dict[str, Any]) -> None:
    body: bytes = request["body"]
    lines = [f"{request['method']} {request['path']} {request['version']}", f"Host: 127.0.0.1:{bookstore}"]
    lines += [f"{name}: {value}" for name, value in request["headers"] if name.lower() not in _FRAMING]
    lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
    raw = "\r\n".join(lines).encode("latin-1") + body
    status = exchange(bookstore, raw)
    TALLY["requests"] += 1
    if status is not None and status >= 500 and _rfc_5xx(status, request):
        TALLY[f"{status} (the server's RFC answer)"] += 1
        return
    TALLY[f"{status // 100}xx" if status is not None else "no answer"] += 1
    assert status is None or status < 500, raw[:300]


def _rfc_5xx(status: int, request: dict[str, Any]) -> bool:
    """The two 5xx the RFCs ask of the server itself (waitress), before any app runs: 501 for a
    transfer coding it does not implement (RFC 9112 §6.1), 505 for an HTTP major version it does
    not support (RFC 9110 §15.6.6)."""
    names = {name.lower() for name, _ in request["headers"]}
    return (status == 501 and "transfer-encoding" in names) or (
        status == 505 and request["version"] not in ("HTTP/1.1", "HTTP/1.0")
    )


def test_the_bookstore_still_answers_after_the_fuzz(bookstore: int) -> None:
    raw = f"GET /books HTTP/1.1\r\nHost: 127.0.0.1:{bookstore}\r\nConnection: close\r\n\r\n".encode()
    assert exchange(bookstore, raw) == 200
    print(f"fuzz tally so far: {dict(TALLY)}")
    assert TALLY["requests"] > 0 and TALLY["5xx"] == 0

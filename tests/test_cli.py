"""`etagkit check` against real servers on loopback: a correct app, broken apps, and no app at all."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import pytest
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st
from support import free_port, waitress_server

from etagkit import __version__, parse_http_date
from etagkit.cli import CheckError, _parse_wire, _wire_exchange, build_cli
from etagkit.core.audit import Probe
from etagkit.core.preconditions import Outcome, evaluate, not_modified_headers

Environ = dict[str, Any]
BODY = b'{"title": "Dune", "year": 1965}'
ETAG = '"dune-v1"'
LAST_MODIFIED = "Mon, 02 Jan 2023 00:00:00 GMT"
FULL = [
    ("Content-Type", "application/json"),
    ("Content-Length", str(len(BODY))),
    ("ETag", ETAG),
    ("Last-Modified", LAST_MODIFIED),
    ("Cache-Control", "no-cache"),
    ("Vary", "Accept-Encoding"),
]


def request_headers(environ: Environ) -> dict[str, str]:
    return {k[5:].replace("_", "-"): v for k, v in environ.items() if k.startswith("HTTP_")}


def good_app(environ: Environ, start_response: Any) -> Iterable[bytes]:
    """A correct origin: the core's evaluate() decides, the app only translates (as an adapter)."""
    method, headers = environ["REQUEST_METHOD"], request_headers(environ)
    if method == "PUT" and "IF-MATCH" not in headers:
        start_response("428 Precondition Required", [("Content-Type", "text/plain")])
        return [b"If-Match required"]
    outcome = evaluate(method, headers, etag=ETAG, last_modified=parse_http_date(LAST_MODIFIED))
    if outcome is Outcome.NOT_MODIFIED:
        start_response("304 Not Modified", not_modified_headers(FULL))
        return []
    if outcome is Outcome.PRECONDITION_FAILED:
        start_response("412 Precondition Failed", [("Content-Type", "text/plain")])
        return [b"stale"]
    if method == "PUT":
        start_response("204 No Content", [("ETag", ETAG)])
        return []
    start_response("200 OK", FULL)
    return [] if method == "HEAD" else [BODY]


def broken_app(*, no_etag: bool = False, body_on_304: bool = False, changing_etag: bool = False) -> Any:
    """An origin with one chosen defect; wsgiref sends whatever it is given, like a careless server."""
    counter = iter(range(1_000_000))

    def app(environ: Environ, start_response: Any) -> Iterable[bytes]:
        etag = f'"v{next(counter)}"' if changing_etag else ETAG
        headers = [("Content-Type", "application/json"), ("Cache-Control", "no-cache")]
        if not no_etag:
            headers.append(("ETag", etag))
        if request_headers(environ).get("IF-NONE-MATCH") == etag and not changing_etag:
            start_response("304 Not Modified", headers if body_on_304 else [("ETag", etag)])
            return [BODY] if body_on_304 else []
        start_response("200 OK", headers)
        return [] if environ["REQUEST_METHOD"] == "HEAD" else [BODY]

    return app


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serve_wsgiref(app: Any) -> Iterator[str]:
    server: WSGIServer = make_server("127.0.0.1", 0, app, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/books/1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextlib.contextmanager
def serve_waitress(app: Any) -> Iterator[str]:
    with waitress_server(app, threads=2) as port:  # stopped from its own loop (support.py)
        yield f"http://127.0.0.1:{port}/books/1"


@contextlib.contextmanager
def serve_tcp(reply: bytes | None) -> Iterator[str]:
    """A TCP server that is not HTTP: writes ``reply`` and closes, or (None) never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()
    held: list[socket.socket] = []

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if reply is None:
                held.append(conn)
            else:
                with conn:
                    conn.recv(65536)
                    conn.sendall(reply)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    finally:
        stop.set()
        thread.join(timeout=10)
        listener.close()
        for conn in held:
            conn.close()


def run(*args: str) -> Result:
    return CliRunner().invoke(build_cli(), ["check", *args], catch_exceptions=False)


def checks_of(result: Result) -> dict[str, str]:
    return {c["name"]: c["verdict"] for c in json.loads(result.stdout)["checks"]}


def test_correct_app_passes_with_writes() -> None:
    with serve_waitress(good_app) as url:
        result = run(url, "--json", "--writes")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["summary"]["fail"] == 0
    found = checks_of(result)
    for name in ("etag-stable", "if-none-match-304", "304-no-body", "304-headers", "head-no-body"):
        assert found[name] == "pass", name
    assert found["put-stale-if-match"] == "pass"
    assert found["put-without-if-match"] == "pass"


def test_table_output_is_plain_text_off_a_terminal() -> None:
    with serve_waitress(good_app) as url:
        result = run(url)
    assert result.exit_code == 0
    assert "if-none-match-304" in result.stdout and "pass" in result.stdout
    assert "\x1b[" not in result.stdout  # no colour codes when not a terminal


def test_middleware_wrapped_app_passes() -> None:
    """A plain app behind etagkit's own ETagMiddleware passes the audit."""
    from etagkit.wsgi import ETagMiddleware

    def plain(environ: Environ, start_response: Any) -> Iterable[bytes]:
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]
        start_response("200 OK", [*headers, ("Cache-Control", "no-cache")])
        return [] if environ["REQUEST_METHOD"] == "HEAD" else [BODY]

    with serve_waitress(ETagMiddleware(plain)) as url:
        result = run(url, "--json")
    assert result.exit_code == 0, result.stdout
    assert checks_of(result)["if-none-match-304"] == "pass"


@pytest.mark.parametrize(
    ("defect", "failing"),
    [
        ({"no_etag": True}, "etag-present"),
        ({"body_on_304": True}, "304-no-body"),
        ({"changing_etag": True}, "etag-stable"),
    ],
)
def test_broken_apps_fail(defect: dict[str, bool], failing: str) -> None:
    with serve_wsgiref(broken_app(**defect)) as url:
        result = run(url, "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["ok"] is False
    assert checks_of(result)[failing] == "fail"


def test_a_304_with_a_body_fails_the_table_too() -> None:
    with serve_wsgiref(broken_app(body_on_304=True)) as url:
        result = run(url)
    assert result.exit_code == 1
    assert "304-no-body" in result.stdout and "fail" in result.stdout


def one_line_error(result: Result, *needles: str) -> str:
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_unreachable_port_is_one_line_and_exit_2() -> None:
    port = free_port()
    one_line_error(run(f"http://127.0.0.1:{port}/"), "cannot connect", f"127.0.0.1:{port}")


def test_non_http_answer_is_one_line_and_exit_2() -> None:
    with serve_tcp(b"SSH-2.0-OpenSSH_9.6\r\n") as url:
        one_line_error(run(url), "not an HTTP answer")


def test_timeout_is_one_line_and_exit_2() -> None:
    with serve_tcp(None) as url:
        one_line_error(run(url, "--timeout", "0.3"), "timeout")


@pytest.mark.parametrize(
    "args",
    [["ftp://example.org/"], ["not a url"], ["http://127.0.0.1:99999/"], ["http://x/", "--header", "bad"]],
)
def test_usage_problems_are_one_line_and_exit_2(args: list[str]) -> None:
    one_line_error(run(*args))


def test_installed_console_script_in_a_subprocess() -> None:
    exe = shutil.which("etagkit", path=str(Path(sys.executable).parent))
    assert exe is not None, "the etagkit console script is not installed next to this Python"
    with serve_waitress(good_app) as url:
        ok = subprocess.run(
            [exe, "check", url, "--json"], capture_output=True, text=True, timeout=120, check=False
        )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert json.loads(ok.stdout)["ok"] is True
    with serve_wsgiref(broken_app(body_on_304=True)) as url:
        bad = subprocess.run([exe, "check", url], capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode == 1
    assert "304-no-body" in bad.stdout


def test_missing_cli_extra_is_one_line_and_exit_2() -> None:
    code = "import sys; sys.modules['rich'] = None; from etagkit.cli import main; main(['check', 'x'])"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        'etagkit: the command line needs click, rich and httpx: pip install "etagkit[cli]"'
    ]


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=200)
    | st.builds(
        lambda s, rest: b"HTTP/1.1 " + s + b"\r\n" + rest, st.binary(max_size=8), st.binary(max_size=80)
    )
)
def test_wire_parser_never_raises_anything_but_check_error(data: bytes) -> None:
    try:
        answer = _parse_wire(data, "127.0.0.1:1", "HEAD")
    except CheckError as exc:
        assert "not an HTTP answer" in str(exc)
    else:
        assert 100 <= answer.status <= 999


def test_wire_parser_keeps_bytes_after_the_header_section() -> None:
    data = b'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 304 Not Modified\r\nETag: "a"\r\nbad line\r\n\r\n0\r\n\r\n'
    answer = _parse_wire(data, "h:1", "GET")
    assert (answer.status, answer.headers, answer.body) == (304, (("ETag", '"a"'),), b"0\r\n\r\n")


def test_httpx_drops_a_304_body_that_the_wire_probe_keeps() -> None:
    """Why cli.py keeps its own small raw-socket probe: httpx (via h11) ends a 304 at its header
    section (RFC 9112 §6.3) and silently drops what a careless server writes after it, so only the
    raw stream can show such a body. If httpx ever exposes those bytes, this test fails: use httpx."""
    reply = b'HTTP/1.1 304 Not Modified\r\nETag: "a"\r\nContent-Length: 5\r\n\r\nstray'
    with serve_tcp(reply) as url:
        with httpx.Client() as client:
            seen = client.get(url)
        assert (seen.status_code, seen.content) == (304, b"")
        answer = _wire_exchange(urlsplit(url), Probe("GET", wire=True), (), 5.0)
    assert (answer.status, answer.headers, answer.body) == (
        304,
        (("ETag", '"a"'), ("Content-Length", "5")),
        b"stray",
    )


def test_help_and_version() -> None:
    runner = CliRunner()
    assert "check" in runner.invoke(build_cli(), ["--help"]).stdout
    assert __version__ in runner.invoke(build_cli(), ["--version"]).stdout

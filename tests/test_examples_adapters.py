"""The adapter examples run for real: started on a free loopback port, driven over HTTP, stopped."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import free_port, wait_for_port

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _start(script: str) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / script), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()


@pytest.fixture
def plain_wsgi() -> Iterator[str]:
    yield from _start("plain_wsgi.py")


@pytest.fixture
def custom_server() -> Iterator[str]:
    yield from _start("custom_server.py")


def test_plain_wsgi_example(plain_wsgi: str) -> None:
    with httpx.Client(base_url=plain_wsgi, timeout=10) as client:
        first = client.get("/notes/1")
        assert first.status_code == 200 and first.json() == {"id": "1", "text": "Buy milk"}
        assert "cache-tag" not in first.headers
        tag = first.headers["etag"]
        for _ in range(2):  # the 200 saw new tags (store refused); the first revalidation stores it
            assert client.get("/notes/1", headers={"If-None-Match": tag}).status_code == 304
        calls = client.get("/calls").json()["app_calls"]
        hit = client.get("/notes/1", headers={"If-None-Match": tag})
        assert hit.status_code == 304 and hit.content == b""
        assert client.get("/calls").json()["app_calls"] == calls  # answered without the app
        written = client.put("/notes/1", content=b"Buy oat milk")
        assert written.status_code == 200
        fresh = client.get("/notes/1", headers={"If-None-Match": tag})
        assert fresh.status_code == 200 and fresh.json()["text"] == "Buy oat milk"
        assert fresh.headers["etag"] != tag


@pytest.mark.parametrize("script", ["plain_wsgi.py", "custom_server.py"])
def test_etagkit_check_passes_against_the_examples(script: str) -> None:
    """The examples revalidate by the RFC as ``etagkit check`` sees it (a 304 with a wrong
    Content-Length, e.g. wsgiref's ``0``, fails it)."""
    path = "/notes/1" if script == "plain_wsgi.py" else "/items/1"
    for base in _start(script):
        checked = subprocess.run(
            [str(Path(sys.executable).with_name("etagkit")), "check", base + path],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_custom_server_example(custom_server: str) -> None:
    with httpx.Client(base_url=custom_server, timeout=10) as client:
        first = client.get("/items/1")
        assert first.status_code == 200 and first.json()["name"] == "lamp"
        tag = first.headers["etag"]
        renders = client.get("/renders").json()["count"]
        hit = client.get("/items/1", headers={"If-None-Match": tag})
        assert hit.status_code == 304 and hit.headers["etag"] == tag
        head = client.head("/items/1", headers={"If-None-Match": tag})
        assert head.status_code == 304
        assert client.get("/renders").json()["count"] == renders  # nothing rendered
        assert client.put("/items/1", content=b"chair").status_code == 428
        assert client.put("/items/1", content=b"chair", headers={"If-Match": '"old"'}).status_code == 412
        current = client.put("/items/1", content=b"chair", headers={"If-Match": tag})
        assert current.status_code == 204
        assert client.put("/items/1", content=b"sofa", headers={"If-Match": tag}).status_code == 412
        updated = client.get("/items/1", headers={"If-None-Match": tag})
        assert updated.status_code == 200 and updated.json()["name"] == "chair"
        assert updated.headers["etag"] == current.headers["etag"]
        assert client.put("/items/7", content=b"new", headers={"If-None-Match": "*"}).status_code == 204
        assert client.get("/items/9").status_code == 404


def _raw_status(base_url: str, request: bytes) -> int:
    """Send raw bytes (httpx never sends a malformed Content-Length) and read the status code."""
    port = int(base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        head = b""
        while b"\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                break
            head += chunk
    assert head.startswith(b"HTTP/1."), head  # an answer, not an empty reply
    return int(head.split(b" ", 2)[1])


@pytest.mark.parametrize(("example", "path"), [("plain_wsgi", "/notes/1"), ("custom_server", "/items/1")])
@pytest.mark.parametrize(
    ("length", "status"), [("abc", 400), ("-1", 400), ("1e3", 400), ("99999999999", 413)]
)
def test_examples_answer_a_bad_content_length(
    request: pytest.FixtureRequest, example: str, path: str, length: str, status: int
) -> None:
    base_url = request.getfixturevalue(example)
    put = f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nIf-Match: *\r\nContent-Length: {length}\r\n\r\n"
    assert _raw_status(base_url, put.encode()) == status
    with httpx.Client(base_url=base_url, timeout=10) as client:  # the server still serves
        assert client.get(path).status_code == 200

"""``etagkit check`` against hostile servers on loopback (issue 13.5): an endless chunked body, a
header byte per second, a body byte every half second, 1 MiB of ``100 Continue``, an endless header
section. Each run of the real command (a subprocess) exits 2 with one line on stderr, within its
``--timeout`` plus 5 s, and its peak memory (the child's own rusage) stays under 400 MiB."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 3.0
LIMIT_MIB = 400
HEAD_200 = b'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nETag: "x"\r\n'

Handler = Callable[[socket.socket, bytes, threading.Event], None]


def endless_chunked(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
    conn.sendall(HEAD_200 + b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
    while not stop.is_set():
        conn.sendall(chunk)


def header_drip(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
    for byte in HEAD_200 + b"Content-Length: 2\r\n\r\nok":
        if stop.wait(1.0):
            return
        conn.sendall(bytes([byte]))


def body_drip(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
    conn.sendall(HEAD_200 + b"Content-Length: 1000000\r\n\r\n")
    while not stop.wait(0.5):
        conn.sendall(b"x")


INTERIM = b"HTTP/1.1 100 Continue\r\n\r\n" * ((1 << 20) // 25 + 1)  # 1 MiB of interim answers


def continue_flood(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
    """1 MiB of ``100 Continue`` to every request, then silence (the connection held open)."""
    conn.sendall(INTERIM)
    stop.wait(60)


def continue_flood_on_revalidation(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
    """A fine 200 to plain GETs; 1 MiB of ``100 Continue`` and silence to a revalidation: the raw
    probe of ``etagkit check`` (If-None-Match) reads its 1 MiB and must parse it in one pass."""
    if b"if-none-match" not in request.lower():
        conn.sendall(HEAD_200 + b"Content-Length: 2\r\nConnection: close\r\n\r\nok")
        return
    continue_flood(conn, request, stop)


def endless_header(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
    conn.sendall(HEAD_200)
    line = b"X-Padding: " + b"p" * 1000 + b"\r\n"
    while not stop.is_set():
        conn.sendall(line)


@contextlib.contextmanager
def hostile_server(handler: Handler) -> Iterator[str]:
    """A loopback TCP server that reads each request's head and then runs ``handler`` on the
    connection (in a thread per connection) until the client goes away or the test ends."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def serve(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            conn.settimeout(30)
            handler(conn, conn.recv(65536), stop)
            conn.shutdown(socket.SHUT_WR)
            while conn.recv(65536):  # let the client read everything before the close
                pass

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=serve, args=(conn,), daemon=True)
            thread.start()
            threads.append(thread)

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    finally:
        stop.set()
        acceptor.join(timeout=10)
        listener.close()
        for thread in threads:
            thread.join(timeout=10)


def run_check(url: str, *args: str) -> tuple[int, str, float, float]:
    """Run ``etagkit check`` as a user would; (exit code, stderr, seconds, peak RSS in MiB)."""
    argv = [sys.executable, "-c", "from etagkit.cli import main; main()", "check", url, *args]
    started = time.monotonic()
    with subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as proc:
        chunks: list[bytes] = []

        def read() -> None:
            assert proc.stderr is not None
            chunks.append(proc.stderr.read())

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - started > TIMEOUT + 120:  # never hang the suite: a hard stop
                os.kill(proc.pid, signal.SIGKILL)
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        reader.join(timeout=10)
    return proc.returncode, b"".join(chunks).decode(errors="replace"), elapsed, usage.ru_maxrss / 1024


@pytest.mark.parametrize(
    ("handler", "said"),
    [
        (endless_chunked, "the body is larger than 16777216 bytes (--max-body)"),
        (header_drip, "no complete answer from 127.0.0.1"),
        (body_drip, "no complete answer from 127.0.0.1"),
        (continue_flood, "no complete answer from 127.0.0.1"),
        (continue_flood_on_revalidation, "interim 1xx answers and no final one in the"),
        (endless_header, "not an HTTP answer from 127.0.0.1"),
    ],
    ids=[
        "endless-chunked-body",
        "header-byte-per-second",
        "body-byte-per-half-second",
        "1MiB-of-100-continue",
        "1MiB-of-100-continue-to-the-raw-probe",
        "endless-header-section",
    ],
)
def test_hostile_server_exits_2_with_one_line(handler: Handler, said: str) -> None:
    with hostile_server(handler) as url:
        code, err, elapsed, peak = run_check(url, "--timeout", str(TIMEOUT))
    print(f"{handler.__name__}: exit {code} in {elapsed:.1f} s, peak RSS {peak:.0f} MiB: {err.strip()}")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("etagkit check: error: "), err
    assert said in lines[0]
    assert elapsed < TIMEOUT + 5
    assert peak < LIMIT_MIB


def test_max_body_is_configurable() -> None:
    with hostile_server(endless_chunked) as url:
        code, err, _, peak = run_check(url, "--timeout", str(TIMEOUT), "--max-body", "100000")
    assert code == 2 and "larger than 100000 bytes (--max-body)" in err
    assert peak < LIMIT_MIB


def test_the_raw_probe_skips_a_megabyte_of_interim_answers_in_one_pass() -> None:
    from etagkit.cli import CheckError, _parse_wire

    final = b'HTTP/1.1 304 Not Modified\r\nETag: "x"\r\n\r\nstray'
    answer = _parse_wire(INTERIM + final, "h:1", "GET")
    assert (answer.status, answer.headers, answer.body) == (304, (("ETag", '"x"'),), b"stray")
    with pytest.raises(CheckError, match=r"41944 interim 1xx answers and no final one in the 1048600 bytes"):
        _parse_wire(INTERIM, "h:1", "GET")
    with pytest.raises(CheckError, match=r"41944 interim 1xx answers and no final one in the 1048654 bytes"):
        _parse_wire(INTERIM + HEAD_200, "h:1", "GET")  # a final head that never ends
    with pytest.raises(CheckError, match=r"41944 interim 1xx answers and no final one in the 1048601 bytes"):
        _parse_wire(INTERIM + b"H", "h:1", "GET")  # the read limit cut the next answer short
    with pytest.raises(CheckError, match=r"not an HTTP answer from h:1 to GET: b'HTTP/1\.1 999999"):
        _parse_wire(INTERIM + b"HTTP/1.1 999999\r\n\r\n", "h:1", "GET")

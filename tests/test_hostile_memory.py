"""Memory an attacker can feed is bounded in bytes (issue 13.1), measured on a real server process.

The bookstore runs under waitress in a subprocess; 2,500 GETs with 100 KB unique query strings and
unique Host headers go to a route with stored validators (every one a new representation key and
path tag). The server's resident memory may grow by less than 150 MiB.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from support import free_port, serve_process

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "bookstore.py"
REQUESTS = 2500
QUERY_BYTES = 100 * 1024
LIMIT_MIB = 150


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    """Resident set size of a process (Linux /proc), in MiB; ``VmHWM``: its peak so far."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for {pid}")


def _read_response(sock: socket.socket, buffer: bytearray) -> int:
    """Read one HTTP/1.1 response with a Content-Length off a keep-alive socket; its status."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed mid-body")
        rest += chunk
    buffer[:] = rest[length:]
    return status


def send_unique(port: int, count: int, start: int) -> dict[int, int]:
    """``count`` GET /authors/top, each with a 100 KB query and a Host never sent before; statuses."""
    statuses: dict[int, int] = {}
    filler = "x" * (QUERY_BYTES - 40)
    buffer = bytearray()
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        for i in range(start, start + count):
            request = (
                f"GET /authors/top?q{i}={i}-{filler} HTTP/1.1\r\n"
                f"Host: h{i}.attacker.test\r\n"
                f'If-None-Match: "nope-{i}"\r\n\r\n'
            ).encode()
            sock.sendall(request)
            status = _read_response(sock, buffer)
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        sock.close()
    return statuses


def test_unique_long_queries_and_hosts_do_not_grow_memory(tmp_path: Path) -> None:
    port = free_port()
    argv = [sys.executable, str(EXAMPLE), "--port", str(port)]
    with serve_process(argv, port, log=tmp_path / "server.log", cwd=ROOT) as proc:
        send_unique(port, 100, 0)  # warm up: imports, first allocations, the thread pool
        before = rss_mib(proc.pid)
        statuses = send_unique(port, REQUESTS, 1000)
        after, peak = rss_mib(proc.pid), rss_mib(proc.pid, "VmHWM")
    growth = after - before
    print(f"RSS {before:.1f} -> {after:.1f} MiB (+{growth:.1f}), peak {peak:.1f} MiB: {statuses}")
    assert statuses == {200: REQUESTS}
    assert growth < LIMIT_MIB, f"memory grew by {growth:.1f} MiB"

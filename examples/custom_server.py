"""A custom server (stdlib ``http.server``) using etagkit's flow for custom servers: no framework, no WSGI.

Run it::

    python examples/custom_server.py --port 8002
    curl -i http://127.0.0.1:8002/items/1                               # 200 + ETag
    curl -i http://127.0.0.1:8002/items/1 -H 'If-None-Match: "<etag>"'  # 304, nothing rendered
    curl -i -X PUT http://127.0.0.1:8002/items/1 -d 'x'                 # 428: say which version
    curl -i -X PUT http://127.0.0.1:8002/items/1 -d 'x' -H 'If-Match: "<etag>"'   # 204

The handler calls one object, :class:`etagkit.flow.ConditionalFlow`, which runs the same exchange as
the WSGI middleware and the Flask extension:

1. ``flow.open(method, target, headers, ...)``: a stored validator (the list, tagged ``items``) or the
   item's version answers 304 / 412 / 428 before any work (``request.answer``);
2. otherwise render, then ``request.respond(status, headers, body)``: the ETag is added (or the 200
   becomes a 304), the validator stored under a ticket taken before rendering, a write invalidates.
"""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import cast

from etagkit import Reply, Validator, etag_from_version
from etagkit.cache import TagCache
from etagkit.flow import ConditionalFlow

ITEMS: dict[str, dict[str, object]] = {
    "1": {"name": "lamp", "version": 1},
    "2": {"name": "desk", "version": 1},
}
MAX_BODY = 64 * 1024  # the largest request body read (an item's name is short)
RENDERS = {"count": 0}  # how often a body was rendered: GET /renders shows it
LOCK = threading.Lock()
FLOW = ConditionalFlow(TagCache(), require_precondition=True)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _handle(self) -> None:
        path = self.path.partition("?")[0]
        if path == "/renders":
            self._send(Reply(200, (("Content-Type", "application/json"),)), json.dumps(RENDERS).encode())
            return
        host, port = cast(tuple[str, int], self.server.server_address)[:2]
        request = FLOW.open(
            self.command,
            self.path,
            list(self.headers.items()),
            host=host,
            port=port,
            validator=current(path),  # an item's version: known without rendering
            tags=["items"] if path == "/items" else (),  # the list: a stored validator, tagged
            cache_control="no-cache",  # on every 200, and on a 304 answered before rendering
        )
        if request.answer is not None:  # 304 / 412 / 428: nothing rendered, nothing written
            self._skip_body()
            self._send(request.answer)
            return
        if self.command == "PUT":
            status, headers, body = self._write(path)
        else:
            status, headers, body = render(path)
        reply = request.respond(status, headers, body)
        self._send(reply, body)
        request.close()

    def _skip_body(self) -> None:
        """A request answered before its body was read: read it (small) or close the connection
        afterwards (its end is unknown or too far), so the next request on it parses cleanly."""
        length = body_length(self.headers.get("Content-Length"))
        if length is None or length > MAX_BODY or "Transfer-Encoding" in self.headers:
            self.close_connection = True
        elif length:
            self.rfile.read(length)

    def _write(self, path: str) -> tuple[int, list[tuple[str, str]], bytes]:
        length = body_length(self.headers.get("Content-Length"))
        if length is None or length > MAX_BODY:
            # RFC 9112 §6.3: an invalid Content-Length is a 400 and the connection closes (the body's
            # end is unknown); a body over the cap is refused with 413 (RFC 9110 §15.5.14)
            self.close_connection = True
            return (400 if length is None else 413), [("Connection", "close")], b"bad body\n"
        data = self.rfile.read(length).decode("utf-8", "replace")
        with LOCK:
            item = ITEMS.get(path.rsplit("/", 1)[-1])
            version = int(str(item["version"])) + 1 if item else 1
            ITEMS[path.rsplit("/", 1)[-1]] = {"name": data, "version": version}
        return 204, [("ETag", str(etag_from_version(version)))], b""

    def _send(self, reply: Reply, body: bytes = b"") -> None:
        payload = reply.body if reply.replaces_body else body
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        if reply.status not in (204, 304) and not any(
            k.lower() == "content-length" for k, _ in reply.headers
        ):
            self.send_header("Content-Length", str(len(payload or b"")))
        self.end_headers()
        if self.command != "HEAD" and payload and reply.status not in (204, 304):
            self.wfile.write(payload)


def current(path: str) -> Validator | None:
    """The cheap current validator of an item (its version), or None where none is known (the list,
    whose ETag is a hash of its body)."""
    if not path.startswith("/items/"):
        return None
    with LOCK:
        item = ITEMS.get(path[7:])
    return Validator(etag_from_version(int(str(item["version"])))) if item else Validator(exists=False)


def body_length(value: str | None) -> int | None:
    """A request's Content-Length (0 when absent), or None when it is not a decimal number."""
    if value is None:
        return 0
    value = value.strip(" \t")
    return int(value) if value.isascii() and value.isdigit() else None


def render(path: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """The expensive part a 304 skips: build the response for a path (an item's ETag is its version,
    given by :func:`current`; the list's is a hash of its body)."""
    with LOCK:
        RENDERS["count"] += 1
        if path == "/items":
            body = json.dumps(ITEMS, sort_keys=True).encode()
        elif path.startswith("/items/") and path[7:] in ITEMS:
            body = json.dumps(ITEMS[path[7:]], sort_keys=True).encode()
        else:
            return 404, [("Content-Type", "application/json")], b'{"error": "not found"}'
    return 200, [("Content-Type", "application/json")], body


def _port(text: str) -> int:
    """A TCP port number (0: any free one), or argparse's usage error."""
    if not (text.isascii() and text.isdigit() and int(text) <= 65535):
        raise argparse.ArgumentTypeError(f"not a port number (0-65535): {text!r}")
    return int(text)


def main() -> None:
    """Serve until Ctrl-C (quietly); a port that is taken is one line on stderr and exit status 2."""
    import contextlib
    import sys

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=_port, default=8002)
    args = parser.parse_args()
    try:
        server = ThreadingHTTPServer((args.host, args.port), Handler)
    except OSError as exc:  # the port is taken, the host is not this machine's, ...
        print(
            f"custom_server: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr
        )
        sys.exit(2)
    with server, contextlib.suppress(KeyboardInterrupt):
        print(f"serving on http://{args.host}:{server.server_port}", flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()

"""A custom server (stdlib ``http.server``) using etagkit's direct-call API: no framework, no WSGI.

Run it::

    python examples/custom_server.py --port 8002
    curl -i http://127.0.0.1:8002/items/1                               # 200 + ETag
    curl -i http://127.0.0.1:8002/items/1 -H 'If-None-Match: "<etag>"'  # 304, nothing rendered
    curl -i -X PUT http://127.0.0.1:8002/items/1 -d 'x'                 # 428: say which version
    curl -i -X PUT http://127.0.0.1:8002/items/1 -d 'x' -H 'If-Match: "<etag>"'   # 204

What the handler does with plain values, in the order a request needs it:

1. ``representation_key`` + ``ValidatorStore.lookup``: is a validator of this URL stored?
2. ``check_preconditions``: with that validator (or the item's version, for writes) decide 304 /
   412 / 428 before doing any work.
3. render, then ``conditional_response``: add the ETag, or turn the 200 into a 304 / 412.
4. ``StoredValidator.from_response`` + ``ValidatorStore.store`` under a ticket taken before
   rendering (race-safe), and ``ValidatorStore.invalidate`` after a write.
"""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from etagkit import (
    ETag,
    Reply,
    StoredValidator,
    Validator,
    ValidatorStore,
    check_preconditions,
    conditional_response,
    etag_from_version,
    path_tag,
    representation_key,
    request_origin,
)
from etagkit.cache import TagCache

ITEMS: dict[str, dict[str, object]] = {
    "1": {"name": "lamp", "version": 1},
    "2": {"name": "desk", "version": 1},
}
MAX_BODY = 64 * 1024  # the largest request body read (an item's name is short)
RENDERS = {"count": 0}  # how often a body was rendered: GET /renders shows it
LOCK = threading.Lock()
STORE = ValidatorStore(TagCache())


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._read()

    def do_HEAD(self) -> None:
        self._read()

    def do_PUT(self) -> None:
        self._write()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _origin(self) -> str:
        """``http://host[:port]`` of this request: keys and path tags are per origin (virtual hosts)."""
        name, port = self.server.server_address[:2]
        return request_origin(
            {"HTTP_HOST": self.headers.get("Host", ""), "SERVER_NAME": name, "SERVER_PORT": port}
        )

    # -- reads: stored validator first, render only when needed ------------------------------------

    def _read(self) -> None:
        path, _, query = self.path.partition("?")
        headers = list(self.headers.items())
        if path == "/renders":
            self._send(Reply(200, (("Content-Type", "application/json"),)), json.dumps(RENDERS).encode())
            return
        origin = self._origin()
        key = representation_key(self.command, path, query, origin=origin)
        record = STORE.lookup(key, headers)
        early = check_preconditions(
            self.command,
            headers,
            record.validator() if record is not None else None,
            response_headers=record.headers if record is not None else (),
        )
        if early is not None:  # a 304 (or 412) straight from the stored validator
            self._send(early)
            return
        ticket = STORE.begin([path_tag(path, origin), "items"])  # BEFORE rendering: race-safe
        status, response_headers, body, version = render(path)
        reply = conditional_response(self.command, headers, status, response_headers, body, etag=version)
        record = StoredValidator.from_response(status, reply.headers, reply.etag, len(body))
        if record is not None:
            STORE.store(key, headers, record, ticket=ticket, tags=[path_tag(path, origin), "items"])
        self._send(reply, body)

    # -- writes: optimistic concurrency with If-Match ----------------------------------------------

    def _write(self) -> None:
        path = self.path.partition("?")[0]
        headers = list(self.headers.items())
        length = body_length(self.headers.get("Content-Length"))
        if length is None or length > MAX_BODY:
            # RFC 9112 §6.3: an invalid Content-Length is a 400 and the connection closes (the body's
            # end is unknown); a body over the cap is refused with 413 (RFC 9110 §15.5.14)
            self.close_connection = True
            status = 400 if length is None else 413
            self._send(
                Reply(status, (("Content-Type", "text/plain"), ("Connection", "close"))), b"bad body\n"
            )
            return
        data = self.rfile.read(length).decode("utf-8", "replace")
        item_id = path.rsplit("/", 1)[-1]
        with LOCK:
            item = ITEMS.get(item_id)
            current = (
                Validator(etag_from_version(int(str(item["version"])))) if item else Validator(exists=False)
            )
            early = check_preconditions("PUT", headers, current, require_precondition=True)
            if early is not None:  # 428 without If-Match, 412 when it names an old version
                self._send(early)
                return
            version = int(str(item["version"])) + 1 if item else 1
            ITEMS[item_id] = {"name": data, "version": version}
        STORE.invalidate(path_tag(path, self._origin()), "items")
        self._send(Reply(204, (("ETag", str(etag_from_version(version))),)))

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


def body_length(value: str | None) -> int | None:
    """A request's Content-Length (0 when absent), or None when it is not a decimal number."""
    if value is None:
        return 0
    value = value.strip(" \t")
    return int(value) if value.isascii() and value.isdigit() else None


def render(path: str) -> tuple[int, list[tuple[str, str]], bytes, ETag | None]:
    """The expensive part a 304 skips: build the response for a path. An item's ETag is its version
    (the same tag PUT's If-Match is checked against); the list's is a hash of its body."""
    with LOCK:
        RENDERS["count"] += 1
        version: ETag | None = None
        if path == "/items":
            body = json.dumps(ITEMS, sort_keys=True).encode()
        elif path.startswith("/items/") and path[7:] in ITEMS:
            item = ITEMS[path[7:]]
            body = json.dumps(item, sort_keys=True).encode()
            version = etag_from_version(int(str(item["version"])))
        else:
            return 404, [("Content-Type", "application/json")], b'{"error": "not found"}', None
    headers = [("Content-Type", "application/json"), ("Cache-Control", "no-cache")]
    return 200, headers, body, version


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

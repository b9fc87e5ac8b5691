"""ETagMiddleware around a plain WSGI app (no framework): ETags, 304s, stored ETags, safe writes.

Run it::

    python examples/plain_wsgi.py --port 8001
    curl -i http://127.0.0.1:8001/notes/1                       # 200 with an ETag
    curl -i http://127.0.0.1:8001/notes/1 -H 'If-None-Match: "<that etag>"'   # 304
    curl -i http://127.0.0.1:8001/calls                         # how often the app itself ran
    curl -i -X PUT http://127.0.0.1:8001/notes/1 -d 'new text' -H 'If-Match: "<that etag>"'

The app below knows nothing about ETags. It only names the cache tags of what it renders in a
``Cache-Tag`` response header; the middleware hashes bodies, answers revalidations from stored
validators without calling the app, and invalidates them after a successful write. Every 200 the
app answers stores its validator (only revalidations look one up), but a tag seen for the very
first time cannot be stored yet (it has no invalidation mark): from the first revalidation of a
note on, ``/calls`` stops counting.
"""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Iterable
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, make_server
from wsgiref.types import StartResponse, WSGIEnvironment

from etagkit.cache import TagCache
from etagkit.wsgi import ETagMiddleware

NOTES: dict[str, str] = {"1": "Buy milk", "2": "Call Ada"}
MAX_BODY = 64 * 1024  # the largest note read
CALLS = {"app": 0}  # how often the app itself ran: GET /calls shows it
_lock = threading.Lock()


def notes_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """A plain WSGI app: GET /notes, GET /notes/<id>, PUT /notes/<id>, GET /calls."""
    method = environ["REQUEST_METHOD"]
    parts = [p for p in environ.get("PATH_INFO", "").split("/") if p]
    if parts == ["calls"]:
        return _send(start_response, "200 OK", {"app_calls": CALLS["app"]}, [("Cache-Control", "no-store")])
    with _lock:
        CALLS["app"] += 1
    if parts == ["notes"] and method == "GET":
        return _send(start_response, "200 OK", NOTES, [("Cache-Tag", "notes")])
    if len(parts) == 2 and parts[0] == "notes":
        note_id = parts[1]
        if method == "GET" and note_id in NOTES:
            body = {"id": note_id, "text": NOTES[note_id]}
            return _send(start_response, "200 OK", body, [("Cache-Tag", f"notes note:{note_id}")])
        if method == "PUT":
            size = _body_length(environ.get("CONTENT_LENGTH"))
            if size is None:  # not a number: the body's end is unknown (RFC 9112 §6.3)
                return _send(start_response, "400 Bad Request", {"error": "bad Content-Length"}, [])
            if size > MAX_BODY:
                return _send(start_response, "413 Content Too Large", {"error": "body too large"}, [])
            text = environ["wsgi.input"].read(size).decode("utf-8", "replace")
            with _lock:
                NOTES[note_id] = text
            # a successful write: the middleware invalidates this path and the tags named here
            return _send(start_response, "200 OK", {"id": note_id, "text": text}, [("Cache-Tag", "notes")])
    return _send(start_response, "404 Not Found", {"error": "not found"}, [])


def _body_length(value: str | None) -> int | None:
    """CONTENT_LENGTH as an int (0 when absent or empty, PEP 3333), None when it is not a number."""
    value = (value or "0").strip(" \t")
    return int(value) if value.isascii() and value.isdigit() else None


def _send(
    start_response: StartResponse, status: str, data: object, extra: list[tuple[str, str]]
) -> list[bytes]:
    body = json.dumps(data).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *extra]
    start_response(status, headers)
    return [body]


# The whole integration: one line. Stored validators live in an in-process TagCache here; give it
# a RedisStore (etagkit.cache.redis) to share them between workers.
app = ETagMiddleware(notes_app, cache=TagCache())


class _BodylessAware(ServerHandler):
    """wsgiref's handler, except that a 304 or 204 without a body gets no ``Content-Length: 0``:
    RFC 9110 §8.6 allows a 304 only the Content-Length its 200 would have had (wsgiref adds 0)."""

    def finish_content(self) -> None:
        sent, status = getattr(self, "headers_sent", False), getattr(self, "status", None) or ""
        if not sent and status[:3] in ("204", "304"):
            self.send_headers()
            return
        super().finish_content()


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # keep the example's output short
        pass

    def handle(self) -> None:
        """One request, as wsgiref's own handle() does, served by :class:`_BodylessAware`."""
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.send_error(414)
            return
        if not self.parse_request():
            return
        handler = _BodylessAware(self.rfile, self.wfile, self.get_stderr(), self.get_environ())  # type: ignore[arg-type]
        handler.request_handler = self  # type: ignore[attr-defined]
        handler.run(self.server.get_app())  # type: ignore[attr-defined]


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
    parser.add_argument("--port", type=_port, default=8001)
    args = parser.parse_args()
    try:
        server = make_server(args.host, args.port, app, handler_class=_QuietHandler)
    except OSError as exc:  # the port is taken, the host is not this machine's, ...
        print(f"plain_wsgi: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        sys.exit(2)
    with server, contextlib.suppress(KeyboardInterrupt):
        print(f"serving on http://{args.host}:{server.server_port}", flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()

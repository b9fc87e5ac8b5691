"""Revalidations through a real WSGI server: does a 304 keep the connection open? (issue 15)

waitress closes a connection after a response it cannot delimit: a 304 without Content-Length is
one (it does not know the response has no body by status alone). A client that revalidates over a
keep-alive connection then pays a new TCP connection per revalidation. RFC 9110 §8.6 lets a 304
carry the Content-Length of the 200 it replaces; but waitress 3.0.2 (``task.py``,
``build_response_header``) drops a Content-Length from any 304 and then, finding none, closes the
connection after every 304 whatever the app sends (and a Content-Length given to start_response
also makes it log "application returned too few bytes"). The rows say what the server does today.

For each app, one ``http.client`` connection sends a 200 GET and then ``REVALIDATIONS`` conditional
GETs with the ETag it got; the row counts the 304s after which the server closed the connection
(target 0: every revalidation reuses it). Apps: the Flask extension's stored-ETag 304, the WSGI
``ETagMiddleware`` stored and stateless 304s, and a raw WSGI app's constant 304 without
Content-Length (the server's own behaviour, for reference).

Run alone: ``python -m benchmarks.bench_servers``.
"""

from __future__ import annotations

import http.client
import importlib.metadata
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the test suite's real-server helpers: one implementation

from support import waitress_server  # type: ignore[import-not-found]  # noqa: E402

from etagkit.cache import TagCache  # noqa: E402

REVALIDATIONS = 20
BODY = json.dumps({"books": [{"id": i, "title": f"Title {i}"} for i in range(40)]}).encode()

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _plain(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))])
    return [BODY]


def _constant_304(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    if environ.get("HTTP_IF_NONE_MATCH") == '"constant"':
        start_response("304 Not Modified", [("ETag", '"constant"')])
        return []
    headers = [("ETag", '"constant"'), ("Content-Length", str(len(BODY)))]
    start_response("200 OK", headers)
    return [BODY]


def _flask() -> WSGIApp:
    from flask import Flask

    from etagkit.flask import ETagKit

    app = Flask("servers")
    kit = ETagKit(app, cache=TagCache())

    @app.get("/books")
    @kit.conditional(tags=["books"])
    def books() -> Any:
        return json.loads(BODY)

    return app


def _apps() -> dict[str, WSGIApp]:
    from etagkit.wsgi import ETagMiddleware

    return {
        "Flask stored-ETag 304": _flask(),
        "ETagMiddleware stored 304": ETagMiddleware(_plain, cache=TagCache(), stored=True),
        "ETagMiddleware stateless 304": ETagMiddleware(_plain),
        "raw WSGI constant 304 (no Content-Length)": _constant_304,
    }


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def closes_after_304(app: WSGIApp) -> tuple[int, int]:
    """(304s after which the server closed the connection, 304s received) over one connection."""
    with waitress_server(app, threads=2) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
        try:
            conn.request("GET", "/books")
            first = conn.getresponse()
            first.read()
            etag = first.getheader("ETag")
            if first.status != 200 or etag is None:
                raise RuntimeError(f"benchmark setup: expected a 200 with an ETag, got {first.status}")
            closed = not_modified = 0
            for _ in range(REVALIDATIONS):
                conn.request("GET", "/books", headers={"If-None-Match": etag})
                response = conn.getresponse()
                response.read()
                if response.status != 304:
                    raise RuntimeError(f"benchmark setup: expected 304, got {response.status}")
                not_modified += 1
                if response.will_close:  # the server said it closes (or could not keep it open)
                    closed += 1
                    conn.close()  # http.client reconnects on the next request
        finally:
            conn.close()
    return closed, not_modified


def run(quick: bool) -> list[dict[str, Any]]:
    """One row per app: 304s that closed the connection under waitress (target 0)."""
    rows = []
    for name, app in _apps().items():
        closed, total = closes_after_304(app)
        reference = name.startswith("raw")
        rows.append(
            {
                "scenario": f"{name} under waitress: connections closed by {total} revalidations",
                "etagkit_s": float(closed),
                "baseline": "0 (every revalidation reuses the connection)",
                "baseline_s": 0.0,
                "ratio": None,
                "target": "" if reference else "0 closed",
                "met": None if reference else closed == 0,
                "unit": "closed",
                "note": f"one keep-alive http.client connection, waitress {_version('waitress')}; a "
                "close is a 304 answered with Connection: close (waitress 3.0.2 closes after every "
                "304, whatever its headers: see the module doc)",
            }
        )
    return rows


if __name__ == "__main__":
    from benchmarks.__main__ import table

    print(table(run("--quick" in sys.argv[1:])))

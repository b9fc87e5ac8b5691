"""Both sides of etagkit on the wire: the async client against ``ETagMiddleware`` under a real server."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIEnvironment

from etagkit.client import ETagClient, Source
from etagkit.wsgi import ETagMiddleware


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class Catalog:
    """A WSGI app with no ETag logic of its own: the middleware adds the ETag and answers 304s."""

    def __init__(self) -> None:
        self.books = [{"id": 1, "title": "Dune"}]
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        with self.lock:
            self.calls += 1
            body = json.dumps(self.books).encode()
        start_response(
            "200 OK",
            [
                ("Content-Type", "application/json"),
                ("Cache-Control", "no-cache"),
                ("Content-Length", str(len(body))),
            ],
        )
        return [body]


@contextmanager
def serving(app: Catalog) -> Iterator[str]:
    server = make_server(
        "127.0.0.1", 0, ETagMiddleware(app), server_class=_ThreadingServer, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_the_client_revalidates_against_the_middleware() -> None:
    app = Catalog()

    async def main(base: str) -> None:
        async with ETagClient(base_url=base) as client:
            first = await client.get("/books")
            assert (first.status_code, first.extensions["etagkit"]) == (200, Source.NETWORK)
            assert first.headers["ETag"].startswith('"')
            again = await client.get("/books")
            assert (again.json(), again.extensions["etagkit"]) == (first.json(), Source.REVALIDATED)
            many = await asyncio.gather(*(client.get("/books") for _ in range(20)))
            assert {r.extensions["etagkit"] for r in many} == {Source.REVALIDATED}
            app.books.append({"id": 2, "title": "Emma"})
            changed = await client.get("/books")
            assert (len(changed.json()), changed.extensions["etagkit"]) == (2, Source.NETWORK)
            stats = client.stats()
            # 200, 304, one 304 shared by the 20 concurrent GETs, 200
            assert (stats.requests_sent, stats.responses_200, stats.responses_304) == (4, 2, 2)
            assert app.calls == 4

    with serving(app) as base:
        asyncio.run(main(base))

"""The load run's floor: a raw WSGI app that answers a matching revalidation with a constant 304.

Under the same gunicorn as the bookstore it shows what the server, the connection handling and the
load tool cost by themselves: the most any app could reach on this machine.
"""

from __future__ import annotations

from collections.abc import Iterable
from wsgiref.types import StartResponse, WSGIEnvironment

ETAG = '"constant"'


def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """304 when If-None-Match is exactly the constant ETag, else a tiny 200 carrying it."""
    if environ.get("HTTP_IF_NONE_MATCH") == ETAG:
        start_response("304 Not Modified", [("ETag", ETAG)])
        return []
    start_response("200 OK", [("ETag", ETAG), ("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]

"""Stored revalidations answered before a framework dispatches (opt-in, e.g. ``ETAGKIT_EARLY_304``).

A WSGI wrapper in front of a framework's own WSGI app: an anonymous GET/HEAD whose If-None-Match a
stored validator matches gets its 304 here, from the same exchange every face drives, without the
framework's routing, request object or hooks (``before_request`` does not run for it). Anything
else, a miss included, goes to the framework untouched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from ._driver import Driver
from ._environ import wsgi_request
from .core.exchange import Answer, Exchange, Settings

__all__ = ["EarlyRevalidation"]

_READS = frozenset({"GET", "HEAD"})


class EarlyRevalidation:
    """Answer stored 304s of ``app``'s routes before ``app`` runs (see the module doc).

    ``route(environ)`` names the route counted in the metrics (called only when they are on).
    """

    __slots__ = ("app", "driver", "route", "settings")

    def __init__(
        self,
        app: WSGIApplication,
        driver: Driver,
        defaults: Settings,
        route: Callable[[WSGIEnvironment], str],
    ) -> None:
        self.app = app
        self.driver = driver
        self.settings = dataclasses.replace(defaults, stored=True)  # only a stored record answers here
        self.route = route

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD")
        if method in _READS and "HTTP_IF_NONE_MATCH" in environ:
            exchange = Exchange(self.settings, wsgi_request(environ, method), has_store=True)
            record = self.driver.lookup(exchange, "")
            if record is not None:
                step = exchange.before(record)
                if isinstance(step, Answer) and step.reply.status == 304:
                    route = self.route(environ) if self.driver.metrics is not None else ""
                    self.driver.settle(exchange, step, None, route)
                    start_response(step.reply.status_line, list(step.reply.headers))
                    return []
        return self.app(environ, start_response)

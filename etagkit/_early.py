"""Stored revalidations answered before a framework dispatches (opt-in, e.g. ``ETAGKIT_EARLY_304``).

A WSGI wrapper in front of a framework's own WSGI app: an anonymous GET/HEAD whose If-None-Match a
stored validator matches gets its 304 here, from the lane every WSGI face takes (``_lane.py``: the
exchange's own stored 304), without the framework's routing, request object or hooks
(``before_request`` does not run for it). Anything else, a miss included, goes to the framework
untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from ._driver import Driver
from ._errors import ConfigurationError
from ._lane import RevalidationLane
from .core.exchange import Settings

__all__ = ["EarlyRevalidation"]


class EarlyRevalidation:
    """Answer stored 304s of ``app``'s routes before ``app`` runs (see the module doc).

    ``route(environ)`` names the route counted in the metrics (called only when they are on).
    """

    __slots__ = ("app", "driver", "lane", "route")

    def __init__(
        self,
        app: WSGIApplication,
        driver: Driver,
        defaults: Settings,
        route: Callable[[WSGIEnvironment], str],
    ) -> None:
        if driver.store is None:
            raise ConfigurationError("an early revalidation needs a store")
        self.app = app
        self.driver = driver
        self.lane = RevalidationLane(defaults, driver.store)  # only a stored record answers here
        self.route = route

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if "HTTP_IF_NONE_MATCH" in environ:
            fast, _ = self.lane.read(environ, "")
            if fast is not None:
                route = self.route(environ) if self.driver.metrics is not None else ""
                self.driver.count(route, fast.tally, None)
                start_response(fast.reply.status_line, list(fast.reply.headers))
                return []
        return self.app(environ, start_response)

"""``ETagMiddleware`` for ASGI apps (Starlette, FastAPI, Litestar, Quart, Django's ASGI handler ...).

The same exchange as the WSGI middleware (:mod:`etagkit.core.exchange` decides everything HTTP); this
face translates the ASGI messages: it reads the scope into a request, runs the app when told, hands the
exchange the app's ``http.response.start`` and body, and lets the shared driver perform the steps'
operations (store calls off the event loop when the store may block: :mod:`etagkit._adriver`).

The ASGI spec is kept to the letter: only ``http`` scopes are touched (``lifespan`` and ``websocket``
pass through untouched); header names go out lower-cased as bytes; a body is hashed only when it is
already complete (one ``http.response.body`` with ``more_body`` False) or declares a Content-Length
within ``max_buffer``, so the first byte of a stream is never delayed; once this face has completed the
response for the app (a 304 in place of its body, HEAD), the app's further messages are dropped and its
``receive`` answers ``http.disconnect``, as a server's does after a response, so a stream stops.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

try:
    import anyio
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without anyio
    raise ImportError("etagkit.asgi needs anyio: pip install 'etagkit[asgi]'") from exc

from ._adriver import AsyncDriver, ReadBackHead
from ._errors import ConfigurationError
from ._scope import asgi_request, raw_headers
from ._validators import MetricsSink
from .core.exchange import Answer, Exchange, Hash, Send
from .core.readback import READ_BACK_DROPPED
from .core.reply import Reply, Validator
from .wsgi import ETagMiddleware as _Options

__all__ = ["READBACK_SCOPE_KEY", "ASGIApp", "ETagMiddleware", "Message", "Receive", "Scope", "SendFn"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
SendFn = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, SendFn], Awaitable[None]]
Validating = Callable[[Scope], "Validator | Awaitable[Validator | None] | None"]

READBACK_SCOPE_KEY = "etagkit.readback"  # set in a read-back's scope (its answer is not counted)
_DROPPED = frozenset(name.encode() for name in READ_BACK_DROPPED)
_DISCONNECT: Message = {"type": "http.disconnect"}
_STREAMED = frozenset({"http.response.pathsend", "http.response.zerocopysend"})  # extensions


def _no_app(environ: Any, start_response: Any) -> Any:  # pragma: no cover - never called
    raise AssertionError


class ETagMiddleware:
    """Wrap an ASGI app: ETags for its GET/HEAD responses, preconditions, optional stored ETags.

    The options are those of :class:`etagkit.wsgi.ETagMiddleware` (``cache``, ``stored``,
    ``tag_header``, ``require_precondition``, ``json_errors``, ``metrics``, ``ttl`` ...), with the
    ASGI ``scope`` in place of the environ: ``validator(scope)`` (it may be ``async def``: a version
    read from the database before the app), ``scope(scope) -> str | None`` (the auth scope of a
    credentialed request), ``route(scope) -> str`` (the route counted in ``metrics``).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        cache: Any = None,
        max_buffer: int = 1 << 20,
        weak: bool = False,
        weaken_encoded: bool = False,
        validator: Validating | None = None,
        scope: Callable[[Scope], str | None] | None = None,
        require_precondition: bool = False,
        tag_header: str = "Cache-Tag",
        keep_tag_header: bool = False,
        json_errors: bool | None = None,
        metrics: MetricsSink | None = None,
        route: Callable[[Scope], str] | None = None,
        ttl: float | None = None,
        stored: bool | None = None,
        credential_headers: Iterable[str] = (),
        allowed_hosts: Iterable[str] | None = None,
    ) -> None:
        if not callable(app):
            raise ConfigurationError(f"app must be an ASGI callable, not {app!r}")
        options = _Options(  # one implementation of the options and their checks
            _no_app, cache=cache, max_buffer=max_buffer, weak=weak, weaken_encoded=weaken_encoded,
            validator=validator, scope=scope, require_precondition=require_precondition,  # type: ignore[arg-type]
            tag_header=tag_header, keep_tag_header=keep_tag_header, json_errors=json_errors,
            metrics=metrics, route=route, ttl=ttl, stored=stored, credential_headers=credential_headers,
            allowed_hosts=allowed_hosts,
        )  # fmt: skip
        self.app = app
        self.settings = options.settings
        self.store = options.store
        self.driver = AsyncDriver(options.driver, cache)
        self.validator = validator
        self.scope = scope
        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: SendFn) -> None:
        if scope["type"] != "http":  # lifespan, websocket, any other: untouched
            await self.app(scope, receive, send)
            return
        method = str(scope.get("method", "GET")).upper()
        route = self.route(scope) if self.route is not None else ""
        current: Validator | None = None
        if self.validator is not None:
            given = self.validator(scope)
            current = await given if inspect.isawaitable(given) else given
        auth = self.scope
        exchange = Exchange(
            self.settings,
            asgi_request(scope, method),
            validator=current,
            scope=(lambda: auth(scope)) if auth is not None else None,
            has_store=self.store is not None,
        )
        counted = READBACK_SCOPE_KEY not in scope  # a write's read-back GET is not traffic
        step = await self.driver.start(exchange, route, lambda: self._read_back(scope))
        if isinstance(step, Answer):
            await self.driver.settle(exchange, step, None, route, counted=counted)
            await send_reply(send, step.reply, head=method == "HEAD")
            return
        if step.drop_range or step.head_as_get:
            scope = dict(scope)
            if step.drop_range:  # If-Range not confirmed: the full representation (RFC 9110 §13.1.5)
                scope["headers"] = [
                    (k, v) for k, v in scope["headers"] if k.lower() not in (b"range", b"if-range")
                ]
            if step.head_as_get:  # HEAD gets the ETag GET would get; the body is dropped
                scope["method"] = "GET"
        ticket = await self.driver.begin(step, route)
        call = _Call(self.driver, exchange, ticket, receive, send, route=route, drop_body=step.head_as_get)
        call.counted = counted
        try:
            await self.app(scope, call.receive, call.send)
            await call.end()
        finally:
            await self.driver.again_later(call.step, route)

    async def _read_back(self, scope: Scope) -> ReadBackHead:
        """GET the write's target through this middleware (so its ETag is the one a GET gets): the
        same scope and credentials, no body, no conditions (see :mod:`etagkit._readback`)."""
        sub = dict(scope)
        sub["method"] = "GET"
        sub["headers"] = [(k, v) for k, v in scope.get("headers", ()) if bytes(k).lower() not in _DROPPED]
        sub[READBACK_SCOPE_KEY] = True
        head: list[tuple[int, list[tuple[str, str]]]] = []
        ended = anyio.Event()
        asked = [False]

        async def receive() -> Message:
            if not asked[0]:
                asked[0] = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await ended.wait()  # like a server: nothing more until the response is complete
            return dict(_DISCONNECT)

        async def send(message: Message) -> None:
            kind = message.get("type")
            if kind == "http.response.start" and not head:
                text = [
                    (bytes(k).decode("latin-1"), bytes(v).decode("latin-1")) for k, v in message["headers"]
                ]
                head.append((int(message["status"]), text))
            elif kind != "http.response.start" and head:
                ended.set()  # the head is all a read-back needs: the app may stop its stream

        try:
            await self(sub, receive, send)
        finally:
            ended.set()
        return head[0] if head else None


async def send_reply(send: SendFn, reply: Reply, *, head: bool) -> None:
    """Send an exchange's reply (a 304 / 412 / 428, or a cached response) as two ASGI messages."""
    start: Message = {
        "type": "http.response.start",
        "status": reply.status,
        "headers": raw_headers(reply.headers),
    }
    await send(start)
    await send({"type": "http.response.body", "body": b"" if head else reply.body or b"", "more_body": False})


class _Call:
    """One app call: holds its ``http.response.start`` until the exchange decided from the first body
    message (or a complete body), then gives the server what the exchange decided."""

    __slots__ = (
        "chunks",
        "counted",
        "driver",
        "drop_body",
        "exchange",
        "route",
        "server_receive",
        "server_send",
        "size",
        "start",
        "state",
        "step",
        "ticket",
        "trailers",
    )

    def __init__(
        self,
        driver: AsyncDriver,
        exchange: Exchange,
        ticket: Any,
        receive: Receive,
        send: SendFn,
        *,
        route: str,
        drop_body: bool,
    ) -> None:
        self.driver, self.exchange, self.ticket, self.route = driver, exchange, ticket, route
        self.server_receive, self.server_send = receive, send
        self.drop_body, self.counted = drop_body, True
        self.start: Message | None = None
        self.state = "head"  # head -> hash (collecting) | pass (streaming) [-> trailers] -> done
        self.trailers = False  # the head sent announced trailers
        self.step: Answer | Send | None = None
        self.chunks: list[bytes] = []
        self.size = 0

    async def receive(self) -> Message:
        if self.state == "done":  # the response is complete: what a server answers then
            return dict(_DISCONNECT)
        return await self.server_receive()

    async def send(self, message: Message) -> None:
        kind = message.get("type")
        if self.state == "done":
            return  # completed for the app already (a 304 in place of its body, HEAD): dropped
        if kind == "http.response.start":
            if self.start is not None:
                raise RuntimeError("http.response.start sent twice (ASGI spec)")
            self.start = message
            return
        if self.start is None:
            raise RuntimeError(f"{kind!r} sent before http.response.start (ASGI spec)")
        if kind == "http.response.body":
            await self._body(bytes(message.get("body", b"")), bool(message.get("more_body", False)))
        elif self.state == "head" and kind in _STREAMED:  # a file the server sends: never hashed
            await self._head(self._stream_step())
            if self.state == "pass":
                await self.server_send(message)
        elif self.state in ("pass", "trailers"):  # trailers, other extensions
            await self.server_send(message)
            if kind == "http.response.trailers" and not message.get("more_trailers", False):
                self.state = "done"

    async def _body(self, body: bytes, more: bool) -> None:
        if self.state == "head":
            status, headers = self._status_headers()
            step = self.exchange.respond(
                status, headers, length=None if more else len(body), complete=not more
            )
            if not isinstance(step, Hash):
                await self._head(step)
            else:
                self.state = "hash"
        if self.state == "hash":
            self.chunks.append(body)
            self.size += len(body)
            if self.size > self.exchange.settings.max_buffer:  # the declared length lied: stream it
                held, self.chunks = self.chunks, []
                await self._head(self.exchange.overflow())
                await self._pass(b"".join(held), more)
            elif not more:
                whole, self.chunks = b"".join(self.chunks), []
                await self._head(self.exchange.finish(whole))
                await self._pass(whole, False)
            return
        await self._pass(body, more)

    async def _pass(self, body: bytes, more: bool) -> None:
        if self.state == "pass":
            await self.server_send({"type": "http.response.body", "body": body, "more_body": more})
            if not more:  # complete, or its announced trailers follow
                self.state = "trailers" if self.trailers else "done"

    def _status_headers(self) -> tuple[int, list[tuple[str, str]]]:
        start = self.start or {}
        headers = [
            (bytes(k).decode("latin-1"), bytes(v).decode("latin-1")) for k, v in start.get("headers", ())
        ]
        return int(start.get("status", 200)), headers

    def _stream_step(self) -> Answer | Send:
        status, headers = self._status_headers()
        step = self.exchange.respond(status, headers, length=None, complete=False)
        return self.exchange.overflow() if isinstance(step, Hash) else step

    async def _head(self, step: Answer | Send) -> None:
        """Send the response head the exchange decided; complete the response when the app's body
        must not follow (an answer replacing it, or HEAD)."""
        self.step = step
        await self.driver.settle(self.exchange, step, self.ticket, self.route, counted=self.counted)
        trailers = isinstance(step, Send) and not self.drop_body and bool((self.start or {}).get("trailers"))
        if isinstance(step, Answer) or self.drop_body:
            head = self.drop_body or self.exchange.request.method == "HEAD"
            await send_reply(self.server_send, step.reply, head=head)
            self.state = "done"
            return
        start: Message = {"type": "http.response.start", "status": step.reply.status}
        start["headers"] = raw_headers(step.reply.headers)
        if trailers:
            start["trailers"] = self.trailers = True
        await self.server_send(start)
        self.state = "pass"

    async def end(self) -> None:
        """The app returned: what it left undecided goes out as it sent it (a server then sees the
        same incomplete response it would have seen without this middleware)."""
        if self.state == "hash":
            held, self.chunks = b"".join(self.chunks), []
            await self._head(self.exchange.overflow())
            await self._pass(held, True)
        elif self.state == "head" and self.start is not None:
            await self._head(self._stream_step())

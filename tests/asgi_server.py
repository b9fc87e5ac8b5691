"""A real uvicorn server for ASGI tests: on a free loopback port, in a thread, stopped cleanly."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from support import free_port, wait_for_port


@contextlib.contextmanager
def uvicorn_server(app: Any, *, lifespan: str = "off") -> Iterator[int]:
    """``app`` served by uvicorn (h11, one event loop in its own thread); yields the port and stops
    the server (its connections closed, its loop ended) before returning."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan=lifespan, log_level="warning", http="h11",
        ws="websockets-sansio", timeout_graceful_shutdown=5,
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for_port(port)
        yield port
    finally:
        server.should_exit = True
        thread.join(30)
        assert not thread.is_alive(), "uvicorn did not stop"

"""Acknowledgements of published invalidations: an invalidating store waits until every two-level
subscriber that received its message has applied it (read-after-invalidate across processes).

The invalidation script PUBLISHes ``{f, t, c, o}`` and returns how many subscribers received it
(``n``); each subscriber applies it to its local layer, then PUBLISHes the clock ``c`` on the
origin's ack channel ``o``. The origin waits here for ``n`` acknowledgements of ``c``, at most
``timeout`` seconds *since the publish*. When acknowledgements are missing (a hung subscriber, a
foreign ``redis-cli`` on the channel, the ack subscription itself lost) it waits out the whole
timeout: a subscriber trusts its local layer only within a window (``TwoLevelStore.trust_window``,
no longer than this timeout) after a PING it sent came back over its subscription, and a PONG
comes back after every message published before the PING; so once the timeout has passed, a
subscriber that has not applied the message no longer serves from its local layer.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

__all__ = ["AckWaiter"]

log = logging.getLogger("etagkit.cache.redis")

_REMEMBERED = 1024  # acknowledgements of clocks nobody waits for any more (bounded)
_RETRY_SUBSCRIBE = 1.0  # seconds between two attempts to subscribe


class AckWaiter:
    """The subscription to one store's ack channel, opened lazily before its first invalidation."""

    def __init__(self, client: Any, channel: str, *, subscribe_timeout: float = 1.0) -> None:
        self._client = client
        self.channel = channel
        self._subscribe_timeout = subscribe_timeout
        self._pubsub: Any = None
        self._lock = threading.Lock()  # subscribing, closing
        self._reading = threading.Lock()  # one reader of the subscription at a time
        self._counted = threading.Condition()  # guards _heard; notified at every acknowledgement
        self._heard: dict[int, int] = {}
        self._retry_at = 0.0  # after a failed subscription, do not try again before this
        self.timeouts = 0  # waits that ended without every acknowledgement

    def ready(self) -> bool:
        """Subscribe (once) and wait for the confirmation: True if acknowledgements can be heard."""
        with self._lock:
            if self._pubsub is not None:
                return True
            if time.monotonic() < self._retry_at:  # Redis was just unreachable: do not stall again
                return False
            self._retry_at = time.monotonic() + _RETRY_SUBSCRIBE
            pubsub = self._client.pubsub()
            try:
                pubsub.subscribe(self.channel)
                deadline = time.monotonic() + self._subscribe_timeout
                while time.monotonic() < deadline:
                    message = pubsub.get_message(timeout=max(deadline - time.monotonic(), 0.001))
                    if message is not None and message.get("type") == "subscribe":
                        self._pubsub = pubsub
                        return True
            except Exception as exc:
                log.debug("could not subscribe to %s: %s", self.channel, exc)
            pubsub.close()
            return False

    def record(self, clock: int) -> None:
        """Count one acknowledgement of ``clock``."""
        with self._counted:
            if len(self._heard) > _REMEMBERED:
                self._heard.clear()
            self._heard[clock] = self._heard.get(clock, 0) + 1
            self._counted.notify_all()

    def wait(self, clock: int, receivers: int, published_at: float, timeout: float) -> bool:
        """Until ``receivers`` acknowledged ``clock`` or ``timeout`` seconds after ``published_at``
        (``time.monotonic``) passed; True if all were heard. Missing ones: waits out the timeout."""
        deadline = published_at + timeout
        while True:
            with self._counted:
                if self._heard.get(clock, 0) >= receivers:
                    self._heard.pop(clock, None)
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._heard.pop(clock, None)
                    self.timeouts += 1
                    return False
            if self._pubsub is not None and self._reading.acquire(blocking=False):
                try:
                    self._read_one(min(remaining, 0.01))
                finally:
                    self._reading.release()
            else:  # another thread reads (and notifies), or no subscription: the timeout decides
                with self._counted:
                    self._counted.wait(min(remaining, 0.01))

    def _read_one(self, timeout: float) -> None:
        pubsub = self._pubsub
        if pubsub is None:
            return
        try:
            message = pubsub.get_message(timeout=timeout)
        except Exception as exc:  # the subscription broke: later waits wait out their timeout
            log.debug("ack subscription %s lost: %s", self.channel, exc)
            with self._lock:
                self._pubsub = None
            pubsub.close()
            return
        if message is None or message.get("type") != "message":
            return
        try:
            acked = int(message.get("data"))
        except (TypeError, ValueError):
            log.warning("ignored a malformed acknowledgement on %s: %r", self.channel, message.get("data"))
            return
        self.record(acked)

    def close(self) -> None:
        with self._lock:
            if self._pubsub is not None:
                self._pubsub.close()
                self._pubsub = None

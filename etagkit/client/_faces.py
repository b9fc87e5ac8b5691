"""What the sync and async clients share: building the cache, wrapping httpx's transports, and the
fast path that answers from the store without httpx's sending machinery."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import httpx

from .._errors import ConfigurationError
from ._cache import PLAN, Cache, Plan, Step
from ._store import MemoryResponseStore, ResponseStore

__all__ = ["UrlMemo", "fast_answer", "make_cache", "wrap_client_transports"]

T = TypeVar("T")


def make_cache(
    store: ResponseStore | None,
    max_entries: int,
    max_bytes: int,
    heuristic: float | None,
    now: Callable[[], float],
) -> Cache:
    """The cache of one client or transport; configuration mistakes raise ConfigurationError here."""
    if heuristic is not None and (
        isinstance(heuristic, bool) or not isinstance(heuristic, int | float) or not 0 < heuristic <= 1
    ):
        raise ConfigurationError(f"heuristic must be a fraction in (0, 1], not {heuristic!r}")
    if store is None:
        store = MemoryResponseStore(max_entries, max_bytes)
    elif not isinstance(store, ResponseStore):
        raise ConfigurationError(f"store must be a ResponseStore, not {store!r}")
    return Cache(store, heuristic=heuristic, now=now)


def wrap_client_transports(client: Any, wrap: Callable[[Any], T]) -> T:
    """Wrap every transport an httpx client would use (its default one and each mount, proxies from
    ``proxy=`` or the environment included) with ``wrap``; return the wrapped default transport.

    httpx keeps them in ``_transport`` and ``_mounts`` (httpx 0.23 to 0.28+): if that ever changes,
    this raises at construction rather than letting requests bypass the cache.
    """
    transport = getattr(client, "_transport", None)
    mounts = getattr(client, "_mounts", None)
    if transport is None or not isinstance(mounts, dict):
        raise RuntimeError(f"etagkit.client does not know this httpx version's layout ({httpx.__version__})")
    wrapped = wrap(transport)
    client._transport = wrapped
    client._mounts = {pattern: None if t is None else wrap(t) for pattern, t in mounts.items()}
    return wrapped


def fast_answer(client: Any, request: httpx.Request, options: Mapping[str, Any]) -> tuple[Any, Plan] | None:
    """The transport and the planned answer when a request can be answered from the store without
    httpx's send machinery; None to send it the usual way.

    Only when nothing of that machinery could matter: an open client, no auth (client-wide or per
    request: auth may add the Authorization header the cache keys on), no event hooks, and an answer
    that is not a redirect httpx would follow. Stored responses carry no Set-Cookie, so skipping
    cookie extraction loses nothing.
    """
    if client._state is httpx._client.ClientState.CLOSED or client._auth is not None:
        return None
    auth = options.get("auth", httpx.USE_CLIENT_DEFAULT)
    if (auth is not httpx.USE_CLIENT_DEFAULT and auth is not None) or request.method not in ("GET", "HEAD"):
        return None
    hooks = client._event_hooks
    if hooks["request"] or hooks["response"]:
        return None
    transport = client._transport_for_url(request.url)
    cache: Cache | None = getattr(transport, "_cache", None)
    if cache is None:
        return None
    plan = cache.plan(request)
    if plan.step is not Step.ANSWER or plan.answer is None:
        request.extensions[PLAN] = plan  # the transport takes it over instead of planning again
        return None
    if 300 <= plan.answer.status < 400 and "location" in plan.answer.headers:
        follow = options.get("follow_redirects", httpx.USE_CLIENT_DEFAULT)
        if client.follow_redirects if follow is httpx.USE_CLIENT_DEFAULT else follow:
            return None
    return transport, plan


class UrlMemo:
    """httpx's merging of a string URL with ``base_url`` (parsing, normalizing: the largest cost of
    building a request whose answer then comes from the store), remembered for the last few hundred
    strings. httpx URLs are immutable, so requests may share one; a new ``base_url`` is a new key."""

    __slots__ = ("_merged",)
    LIMIT = 512

    def __init__(self) -> None:
        self._merged: dict[str, tuple[object, httpx.URL]] = {}

    def merge(self, url: object, base: object, merge: Callable[[Any], httpx.URL]) -> httpx.URL:
        if not isinstance(url, str):
            return merge(url)
        found = self._merged.get(url)
        if found is not None and found[0] is base:
            return found[1]
        merged = merge(url)
        if len(self._merged) >= self.LIMIT:
            self._merged.clear()
        self._merged[url] = (base, merged)
        return merged

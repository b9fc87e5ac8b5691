"""Clients from URLs, for ``RedisStore`` and ``store_from_url``: a single server or a Redis Cluster.

``redis+cluster://host:port`` (or ``rediss+cluster://``) names a cluster through one of its nodes.
A plain ``redis://`` URL is probed once at start-up (``INFO cluster``): a cluster node behind it is
used as a cluster, so a cluster is never silently turned into "no cache" (every command would
otherwise answer MOVED). If the probe cannot reach Redis, one line says so and the URL is used as a
single server (``RedisStore`` logs one clear line if a MOVED reply shows up later).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from .._errors import ConfigurationError, StoreUnavailableError

__all__ = ["connect", "is_cluster_url"]

log = logging.getLogger("etagkit.cache.redis")

_CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
_PROBE_TIMEOUT = 1.0  # seconds: start-up only, so a loaded machine does not make it guess wrong


def is_cluster_url(url: str) -> bool:
    """True for ``redis+cluster://`` and ``rediss+cluster://`` URLs."""
    return urlsplit(url).scheme.lower() in _CLUSTER_SCHEMES


def _plain(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme=_CLUSTER_SCHEMES[parts.scheme.lower()]))


def _cluster(url: str, socket_timeout: float, connect_timeout: float) -> RedisCluster:
    try:
        return RedisCluster.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=max(connect_timeout, _PROBE_TIMEOUT),
            retry=Retry(NoBackoff(), 0),
        )
    except redis.exceptions.RedisError as exc:
        raise StoreUnavailableError(f"cannot reach the Redis Cluster at {_where(url)}: {exc}") from exc


def _where(url: str) -> str:
    """host:port of a URL, without its password."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 6379}"


def _cluster_enabled(url: str) -> bool | None:
    """Whether the server at ``url`` runs in cluster mode; None if it did not answer."""
    probe = redis.Redis.from_url(url, socket_timeout=_PROBE_TIMEOUT, socket_connect_timeout=_PROBE_TIMEOUT)
    try:
        info: dict[str, Any] = probe.info("cluster")
    except redis.exceptions.RedisError:
        return None
    finally:
        probe.close()
    return bool(info.get("cluster_enabled"))


def connect(url: str, *, socket_timeout: float, connect_timeout: float) -> redis.Redis | RedisCluster:
    """A client for ``url`` with short timeouts and no retries (the breaker decides), a cluster
    client for a cluster URL or for a plain URL whose server turns out to be a cluster node."""
    if not isinstance(url, str) or "://" not in url:
        raise ConfigurationError(f"not a Redis URL: {url!r}")
    if is_cluster_url(url):
        return _cluster(_plain(url), socket_timeout, connect_timeout)
    enabled = _cluster_enabled(url)
    if enabled:
        log.info("Redis at %s is a Redis Cluster node: using it as a cluster", _where(url))
        return _cluster(url, socket_timeout, connect_timeout)
    if enabled is None:
        log.warning(
            "Redis at %s did not answer at start-up; using it as a single server until it does",
            _where(url),
        )
    return redis.Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
        retry=Retry(NoBackoff(), 0),
    )

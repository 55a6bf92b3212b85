"""A Redis client from a REDIS_URL, shared by the gateway and by emitter processes.

It needs only redis-py: a backend process that emits events imports it without the socket
server's libraries. ``redis://``, ``rediss://`` and ``unix://`` are redis-py's own URLs;
``redis+sentinel://[user:password@]host:port[,host:port]/db/service`` asks the sentinels
for the master of ``service`` (the form python-socketio accepts too).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

PUBLISH_TIMEOUT = 2.0
"""Longest wait for one publish; past it the event counts as not sent."""

REDIS_OPTIONS: dict[str, Any] = {
    "socket_connect_timeout": 2,
    "health_check_interval": 10,
    # After Redis restarts, the pool's old connections fail once ("Connection closed by
    # server"); one immediate retry on a fresh connection keeps that from reading as an outage.
    "retry": Retry(NoBackoff(), 1),
    "retry_on_error": [RedisConnectionError],
}


def connect(url: str, *, default_service: str, **options: Any) -> Redis:
    """A client for ``url`` (connections are made on first use). ``default_service`` names
    the sentinel service when the URL does not; ``options`` add to REDIS_OPTIONS."""
    options = {**REDIS_OPTIONS, **options}
    parts = urlsplit(url)
    if parts.scheme != "redis+sentinel":
        return Redis.from_url(url, **options)
    credentials = {
        key: value for key, value in (("username", parts.username), ("password", parts.password)) if value
    }
    hosts = []
    for host_port in parts.netloc.rpartition("@")[2].split(","):
        host, _, port = host_port.rpartition(":")
        hosts.append((host, int(port)))
    db, _, service = parts.path.strip("/").partition("/")
    # redis-py's Sentinel is not annotated.
    sentinel = Sentinel(hosts, **options, **credentials, **({"db": int(db)} if db else {}))  # type: ignore[no-untyped-call]
    client: Redis = sentinel.master_for(service or default_service)
    return client


def safe_url(url: str) -> str:
    """The URL without its password, for logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path}"

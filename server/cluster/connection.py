"""A Redis client from a REDIS_URL, shared by the gateway and by emitter processes.

It needs only redis-py: a backend process that emits events imports it without the socket
server's libraries. ``redis://``, ``rediss://`` and ``unix://`` are redis-py's own URLs;
``redis+sentinel://[user:password@]host:port[,host:port]/db/service`` asks the sentinels
for the master of ``service`` (the form python-socketio accepts too);
``redis+cluster://[user:password@]host:port[,host:port...]`` (``rediss+cluster://`` with
TLS) is a Redis Cluster, found from any of the nodes given.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
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


CLUSTER_SCHEMES = frozenset({"redis+cluster", "rediss+cluster"})

AnyRedis = Redis | RedisCluster
"""A client of one Redis or of a Redis Cluster: scripts and single-slot commands run alike."""


def connect(url: str, *, default_service: str, **options: Any) -> AnyRedis:
    """A client for ``url`` (connections are made on first use). ``default_service`` names
    the sentinel service when the URL does not; ``options`` add to REDIS_OPTIONS."""
    options = {**REDIS_OPTIONS, **options}
    parts = urlsplit(url)
    credentials = {
        key: value for key, value in (("username", parts.username), ("password", parts.password)) if value
    }
    if parts.scheme in CLUSTER_SCHEMES:
        nodes = [ClusterNode(host, port) for host, port in _hosts(parts.netloc)]
        # The cluster client takes its own retry policy; a connection error refreshes its map.
        extra: dict[str, Any] = {k: v for k, v in options.items() if k not in ("retry", "retry_on_error")}
        extra.update(credentials, ssl=parts.scheme == "rediss+cluster")
        return RedisCluster(startup_nodes=nodes, **extra)
    if parts.scheme != "redis+sentinel":
        return Redis.from_url(url, **options)
    hosts = _hosts(parts.netloc)
    db, _, service = parts.path.strip("/").partition("/")
    # redis-py's Sentinel is not annotated.
    sentinel = Sentinel(hosts, **options, **credentials, **({"db": int(db)} if db else {}))  # type: ignore[no-untyped-call]
    client: Redis = sentinel.master_for(service or default_service)
    return client


def _hosts(netloc: str) -> list[tuple[str, int]]:
    hosts = []
    for host_port in netloc.rpartition("@")[2].split(","):
        host, _, port = host_port.rpartition(":")
        hosts.append((host, int(port)))
    return hosts


def safe_url(url: str) -> str:
    """The URL without its password, for logs."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"

"""The public entry for backends in Python: ``get_broadcaster()``.

It answers with the broadcaster of the gateway created in this process (``create_app``
installs it), else with one publishing through Redis when REDIS_URL is set, so the same
line works in the gateway's process and in a worker beside it. The choice lives here, above
both the broadcaster (server/publish/) and the Redis emitter (server/cluster/), so neither
imports the other.

The slot is process-wide on purpose: backends call ``get_broadcaster()`` from wherever they
are, without a reference to the application. A process that creates several gateways (tests
do) gets the last one's.
"""

from __future__ import annotations

import os

from swe_realtime.cluster.emitter import RedisEmitter, redis_broadcaster
from swe_realtime.publish.broadcaster import Broadcaster
from swe_realtime.settings import history_settings, redis_settings

__all__ = ["Broadcaster", "RedisEmitter", "get_broadcaster", "install_broadcaster", "redis_broadcaster"]

_installed: Broadcaster | None = None


def install_broadcaster(broadcaster: Broadcaster) -> None:
    """Make ``broadcaster`` the one ``get_broadcaster()`` returns (``create_app`` does this)."""
    global _installed
    _installed = broadcaster


def get_broadcaster() -> Broadcaster:
    """The broadcaster of the gateway created in this process; in a process without one, a
    broadcaster publishing through Redis (REDIS_URL, REDIS_CHANNEL, HISTORY_SIZE, HISTORY_TTL:
    the same values as the gateways')."""
    global _installed
    if _installed is None:
        redis = redis_settings(os.environ)
        if redis is None:
            raise RuntimeError(
                "no gateway in this process and REDIS_URL is not set: set REDIS_URL (and"
                " REDIS_CHANNEL, HISTORY_SIZE, HISTORY_TTL as the gateways have them) to publish"
                " through Redis, or call create_app() first"
            )
        _installed = redis_broadcaster(redis.url, redis.channel, history_settings(os.environ))
    return _installed

"""Emitting from a process that has no socket server (a worker, a cron job, another service).

``redis_broadcaster(url)`` gives the same Broadcaster the gateway uses, with the same
models and validation, over a write-only AsyncRedisManager: every gateway instance
subscribed to the channel delivers the event to its own connections. Unlike inside the
gateway, a Redis failure raises RedisUnavailable: nothing else would deliver the event.

    broadcaster = redis_broadcaster("redis://redis:6379/0")
    await broadcaster.broadcast_workflow_progress(workflow_id=..., status="running", progress=40)
"""

from __future__ import annotations

from swe_realtime.broadcaster import Broadcaster
from swe_realtime.redis_manager import GatewayRedisManager, RedisHealth
from swe_realtime.settings import DEFAULT_REDIS_CHANNEL


def redis_broadcaster(url: str, channel: str = DEFAULT_REDIS_CHANNEL) -> Broadcaster:
    """A broadcaster that publishes to the gateways on ``channel`` (REDIS_CHANNEL there)."""
    return Broadcaster(GatewayRedisManager(url, channel, RedisHealth(url), write_only=True))

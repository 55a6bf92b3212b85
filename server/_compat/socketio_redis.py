"""python-socketio's AsyncRedisManager, made to live through Redis outages.

Read against python-socketio 5.16.1 to 5.18.1 (the UPSTREAM table below).

The stock manager already delivers an event to this instance's own connections before it
publishes it for the others, so local delivery goes on without Redis. What it does badly
during an outage is speak: two ERROR lines per event published and one per reconnection
attempt, and it gives callers no way to know. Here an outage is one WARNING when it starts
and one line when it ends (with the number of messages the other instances missed), the
state is readable (``RedisHealth``, behind ``/ready``), a publish never waits more than
PUBLISH_TIMEOUT, and the subscriber reconnects with a backoff capped at MAX_BACKOFF.
Local delivery uses the task-free fan-out of server/fanout.py, as the in-memory manager does;
the Redis client comes from server/redis_connection.py, as an emitter process's does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import socketio
from redis.asyncio import Redis

from swe_realtime import metrics
from swe_realtime._compat import Upstream
from swe_realtime._compat.fanout import emit_to_participants
from swe_realtime.gate import Gate
from swe_realtime.redis_connection import PUBLISH_TIMEOUT, connect
from swe_realtime.redis_health import RedisHealth

MAX_BACKOFF = 5.0

UPSTREAM = (
    Upstream(
        "python-socketio",
        "socketio.async_redis_manager:AsyncRedisManager.__init__",
        {"5.16.1": "3360cfacd7923313", "5.18.1": "3360cfacd7923313"},
    ),
    Upstream(
        "python-socketio",
        "socketio.async_redis_manager:AsyncRedisManager._redis_connect",
        {"5.16.1": "0eeb88f082c2329b", "5.18.1": "da4530c936323c25"},
    ),
    Upstream(
        "python-socketio",
        "socketio.async_redis_manager:AsyncRedisManager._publish",
        {"5.16.1": "cd1d7a85d9d88f7b", "5.18.1": "033e4da7cc8768b4"},
    ),
    Upstream(
        "python-socketio",
        "socketio.async_redis_manager:AsyncRedisManager._redis_listen_with_retries",
        {"5.16.1": "8aa5bcb14e5001e0", "5.18.1": "ad347f253fd3423a"},
    ),
    Upstream(
        "python-socketio",
        "socketio.async_redis_manager:AsyncRedisManager._listen",
        {"5.16.1": "3e74fdd1084b4e13", "5.18.1": "3e74fdd1084b4e13"},
    ),
    Upstream(
        "python-socketio",
        "socketio.async_pubsub_manager:AsyncPubSubManager.__init__",
        {"5.16.1": "81c6a9f1e359749a", "5.18.1": "81c6a9f1e359749a"},
    ),
    Upstream(
        "python-socketio",
        "socketio.async_pubsub_manager:AsyncPubSubManager._handle_emit",
        {"5.16.1": "4284671be955f644", "5.18.1": "4284671be955f644"},
    ),
)


class GatewayRedisManager(socketio.AsyncRedisManager):  # type: ignore[misc]
    """python-socketio's Redis manager with the patches listed above."""

    connected: bool
    redis: Redis

    def __init__(self, url: str, channel: str, health: RedisHealth) -> None:
        super().__init__(url, channel=channel)
        self.health = health
        self.gates: dict[str, Gate] = {}

    def _redis_connect(self) -> None:
        """python-socketio's connect, with the client of server/redis_connection.py."""
        self.redis = connect(self.redis_url, default_service=self.channel)
        self.pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        self.connected = True

    def client(self) -> Redis:
        """The current client, made anew after a failure (as python-socketio does)."""
        if not self.connected:
            self._redis_connect()
        return self.redis

    async def _handle_emit(self, message: dict[str, Any]) -> None:
        """Deliver to this instance's connections without a task per recipient (server/fanout.py)."""
        if message.get("callback") is not None or message.get("binary"):
            await super()._handle_emit(message)
            return
        data = message["data"]
        payload = data[0] if isinstance(data, list) and len(data) == 1 else tuple(data)
        await emit_to_participants(
            self,
            message["event"],
            payload,
            message.get("namespace") or "/",
            message.get("room"),
            message.get("skip_sid"),
        )

    async def _publish(self, data: Any) -> None:
        try:
            await asyncio.wait_for(
                self.client().publish(self.channel, self.json.dumps(data)), PUBLISH_TIMEOUT
            )
        except Exception as exc:  # redis, OS and timeout errors alike mean "not published"
            self.publish_failed(exc)
            return
        self.health.succeeded()

    def publish_failed(self, error: Exception) -> None:
        """Count and report a message the other instances did not get."""
        self.connected = False
        self.health.unpublished += 1
        metrics.UNPUBLISHED.inc()
        self.health.failed(error)

    async def _redis_listen_with_retries(self) -> AsyncIterator[Any]:
        backoff = 0.5
        while True:
            try:
                self._redis_connect()
                await self.pubsub.subscribe(self.channel)
                self.health.succeeded()
                backoff = 0.5
                async for message in self.pubsub.listen():
                    yield message
            except Exception as exc:  # the connection is gone whatever the error: reconnect
                self.health.failed(exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

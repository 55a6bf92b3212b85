"""python-socketio's AsyncRedisManager, made to live through Redis outages.

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
import logging
from collections.abc import AsyncIterator
from typing import Any

import socketio
from redis.asyncio import Redis

from swe_realtime import metrics
from swe_realtime.fanout import emit_to_participants
from swe_realtime.gate import Gate
from swe_realtime.redis_connection import PUBLISH_TIMEOUT, connect, safe_url

MAX_BACKOFF = 5.0

_log = logging.getLogger("swe_realtime.redis")


class RedisHealth:
    """Whether Redis answers, as seen by every user of it in this process; logs transitions."""

    def __init__(self, url: str) -> None:
        self.url = safe_url(url)
        self.reachable = False
        self.unpublished = 0
        """Messages that did not reach the other instances, over this process's life."""
        self._outage_reported = False

    def failed(self, error: BaseException) -> None:
        if not self._outage_reported:
            _log.warning(
                "Redis at %s is unreachable (%s: %s): cross-instance delivery stops until it is back;"
                " this instance keeps serving its own connections",
                self.url,
                type(error).__name__,
                error,
            )
            self._outage_reported = True
        self.reachable = False

    def succeeded(self) -> None:
        if self._outage_reported:
            metrics.REDIS_RECONNECTS.inc()
            _log.warning(
                "Redis at %s is reachable again; %d message(s) so far did not reach other instances",
                self.url,
                self.unpublished,
            )
            self._outage_reported = False
        self.reachable = True


class GatewayRedisManager(socketio.AsyncRedisManager):  # type: ignore[misc]
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

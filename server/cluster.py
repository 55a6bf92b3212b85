"""Statistics: of this instance alone, or summed over every live instance through Redis.

Every HEARTBEAT seconds an instance writes its connection and room counts under
``{<channel>:instances}:<id>`` with a time-to-live of three heartbeats, so an instance that
dies drops out of the sums within seconds and nothing needs cleaning up. The writes double
as the readiness probe's view of Redis.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from swe_realtime import tasks
from swe_realtime.redis_connection import AnyRedis, connect
from swe_realtime.redis_health import RedisHealth
from swe_realtime.settings import RedisSettings

HEARTBEAT = 2.0
TTL_SECONDS = 6

Snapshot = dict[str, Any]
_log = logging.getLogger("swe_realtime.cluster")


class Stats(Protocol):
    """Where the stats endpoint gets its numbers; started and stopped with the app."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def snapshot(self) -> Snapshot: ...


class Companion(Protocol):
    """Work that lives as long as this instance's heartbeat (server/cluster_presence.py):
    started with it, and stopped before the heartbeat's entry is withdrawn, so that the other
    instances see this one alive for as long as it holds anything in Redis."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def heartbeat_key(channel: str, instance_id: str) -> str:
    """Where ``instance_id`` heartbeats: while the key exists, the instance counts as alive.
    All instances' keys share one hash slot, so that one MGET reads them on a Redis Cluster."""
    return f"{{{channel}:instances}}:{instance_id}"


async def live_instances(redis: AnyRedis, prefix: str) -> set[str]:
    """The ids of the instances whose heartbeat is there (``prefix``: ``heartbeat_key(channel,
    "")``)."""
    return {key.decode().removeprefix(prefix) async for key in redis.scan_iter(match=prefix + "*", count=500)}


class LocalStats:
    """Without Redis there is one instance: its own counts are the whole story."""

    def __init__(self, instance_id: str, local: Callable[[], Snapshot]) -> None:
        self.instance_id = instance_id
        self._local = local

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def snapshot(self) -> Snapshot:
        return summed({self.instance_id: self._local()}) | {"partial": False}


class ClusterStats:
    """Heartbeats this instance's counts into Redis and sums everyone's on request."""

    def __init__(
        self,
        settings: RedisSettings,
        instance_id: str,
        health: RedisHealth,
        local: Callable[[], Snapshot],
        companions: Sequence[Companion] = (),
    ) -> None:
        self.instance_id = instance_id
        self._health = health
        self._local = local
        self._companions = tuple(companions)
        self._redis: AnyRedis = connect(settings.url, default_service=settings.channel, socket_timeout=2)
        self._prefix = heartbeat_key(settings.channel, "")
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._beat())
        for companion in self._companions:
            await companion.start()

    async def stop(self) -> None:
        """Stop the companions, then beating, and withdraw this instance's entry (best effort)."""
        for companion in self._companions:
            await companion.stop()
        await tasks.stop([self._task])
        try:
            await self._redis.delete(self._prefix + self.instance_id)
        except Exception as exc:  # Redis gone at shutdown: the TTL removes the entry anyway
            _log.info("could not withdraw this instance's stats: %s", exc)
        await self._redis.aclose()

    async def _beat(self) -> None:
        while True:
            try:
                await self._redis.set(
                    self._prefix + self.instance_id, json.dumps(self._local()), ex=TTL_SECONDS
                )
            except Exception as exc:  # any failure means Redis cannot be used right now
                self._health.failed(exc)
            else:
                self._health.succeeded()
            await asyncio.sleep(HEARTBEAT)

    async def snapshot(self) -> Snapshot:
        """Connections and rooms summed over live instances, with a per-instance breakdown.

        This instance counts with its live numbers. If Redis cannot be read, the answer is
        this instance alone, marked ``partial``.
        """
        instances: dict[str, Snapshot] = {}
        partial = False
        try:
            names = sorted(await live_instances(self._redis, self._prefix))
            values = await self._redis.mget([self._prefix + name for name in names]) if names else []
            for name, value in zip(names, values, strict=True):
                if value is not None:
                    instances[name] = json.loads(value)
        except Exception as exc:  # Redis down: say so in the answer, not in the log
            self._health.failed(exc)
            partial = True
        instances[self.instance_id] = self._local()
        return summed(instances) | {"partial": partial}


def summed(instances: dict[str, Snapshot]) -> Snapshot:
    rooms: dict[str, int] = {}
    for counts in instances.values():
        for room, members in counts["rooms"].items():
            rooms[room] = rooms.get(room, 0) + members
    return {
        "connections": sum(counts["connections"] for counts in instances.values()),
        "rooms": dict(sorted(rooms.items())),
        "instances": dict(sorted(instances.items())),
    }

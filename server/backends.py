"""The one choice between a gateway alone in memory and gateways sharing Redis.

Everything that differs between the two is built here, and only here: the client manager
(fan-out, and with Redis the rooms' channels), the history, the per-user counts and agent
presence, the stats, the admin bus, and what readiness waits for. ``create_app`` asks
:func:`backend_for` once and wires the answer.

Parts are built in the order the gateway needs them: the manager before the Socket.IO
server, the history before the broadcaster that publishes into it, the counts after it
(agent presence publishes), the stats and the bus last (they read the registry and answer
for the operator).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from swe_realtime.cluster.admin_bus import AdminBus, Handler, LocalBus, RedisBus
from swe_realtime.cluster.connection import connect
from swe_realtime.cluster.health import RedisHealth
from swe_realtime.cluster.history import RedisHistory
from swe_realtime.cluster.manager import ChannelManager
from swe_realtime.cluster.presence import ClusterPresence, ClusterRegistry, ClusterShares
from swe_realtime.cluster.stats import ClusterStats, LocalStats, Snapshot, Stats
from swe_realtime.cluster.streams import RoomStreams
from swe_realtime.delivery.fanout import FanoutManager
from swe_realtime.delivery.history import History, make_history
from swe_realtime.events import NAMESPACE
from swe_realtime.publish.broadcaster import Broadcaster
from swe_realtime.sessions.presence import Presence
from swe_realtime.sessions.registry import Registry
from swe_realtime.settings import RedisSettings, Settings


class Backend(Protocol):
    """What a gateway is built on."""

    @property
    def manager(self) -> FanoutManager: ...

    @property
    def health(self) -> RedisHealth | None:
        """Whether Redis answers (None: no Redis)."""

    def history(self, server: Any) -> History: ...

    def counts(self, broadcaster: Broadcaster) -> tuple[Registry, Presence]:
        """The live connections with the per-user limit, and agent presence."""

    def stats(self, local: Callable[[], Snapshot]) -> Stats: ...

    def bus(self, answer: Handler) -> AdminBus: ...

    def ready(self) -> bool:
        """Whether every event accepted for this instance's rooms reaches it."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def backend_for(settings: Settings) -> Backend:
    """Redis when REDIS_URL is set, else memory."""
    return RedisBackend(settings, settings.redis) if settings.redis else LocalBackend(settings)


class LocalBackend:
    """One instance, everything in memory."""

    health: RedisHealth | None = None

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.manager = FanoutManager()

    def history(self, server: Any) -> History:
        settings = self._settings
        max_members = settings.max_connections * settings.limits.rooms_per_connection
        return make_history(server, settings.history, max_members=max_members)

    def counts(self, broadcaster: Broadcaster) -> tuple[Registry, Presence]:
        return Registry(self._settings.limits.connections_per_user), Presence(broadcaster)

    def stats(self, local: Callable[[], Snapshot]) -> Stats:
        return LocalStats(self._settings.instance_id, local)

    def bus(self, answer: Handler) -> AdminBus:
        return LocalBus(answer)

    def ready(self) -> bool:
        return True

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


class RedisBackend:
    """Instances sharing one Redis (or Redis Cluster): rooms' streams and channels, counts and
    stats over every instance, an admin bus between them."""

    def __init__(self, settings: Settings, redis: RedisSettings) -> None:
        self._settings = settings
        self._redis = redis
        timings = settings.timings
        # A failed command counts for a heartbeat: the next beat can say Redis is back.
        self.health: RedisHealth = RedisHealth(redis.url, quiet=timings.heartbeat)
        client = connect(
            redis.url, default_service=redis.channel, health_check_interval=timings.redis_health_check
        )
        self._streams = RoomStreams(client, redis.channel, settings.history, url=redis.url)
        self.manager: ChannelManager = ChannelManager(
            self._streams, self.health, sweep=timings.room_sweep, health_check=timings.redis_health_check
        )
        self._shares: ClusterShares | None = None
        """The counts' share in Redis, made with them (it publishes agent presence, so after
        the broadcaster); the stats' heartbeat starts and stops it."""

    def history(self, server: Any) -> History:
        return RedisHistory(self._streams, self.health, kept=self._settings.history.size > 0)

    def counts(self, broadcaster: Broadcaster) -> tuple[Registry, Presence]:
        if self._shares is not None:
            raise RuntimeError("one instance has one share of the counts: counts() is called once")
        timings = self._settings.timings
        self._shares = ClusterShares(
            self._redis,
            self._settings.instance_id,
            broadcaster,
            tick=timings.presence_tick,
            grace=timings.presence_grace,
            health_check=timings.redis_health_check,
        )
        per_user = self._settings.limits.connections_per_user
        return ClusterRegistry(per_user, self._shares), ClusterPresence(broadcaster, self._shares)

    def stats(self, local: Callable[[], Snapshot]) -> Stats:
        if self._shares is None:
            raise RuntimeError("the stats carry the counts' share: counts() comes first")
        timings = self._settings.timings
        return ClusterStats(
            self._redis,
            self._settings.instance_id,
            self.health,
            local,
            [self._shares],
            heartbeat=timings.heartbeat,
            silent=timings.silent_instance,
            health_check=timings.redis_health_check,
        )

    def bus(self, answer: Handler) -> AdminBus:
        return RedisBus(
            self._redis,
            self._settings.instance_id,
            answer,
            health_check=self._settings.timings.redis_health_check,
            silent=self._settings.timings.silent_instance,
        )

    def ready(self) -> bool:
        return self.health.reachable and self.manager.channels.ready

    async def start(self) -> None:
        manager = self.manager
        manager.channels.start(lambda: manager.local_rooms(NAMESPACE), manager.expire)

    async def stop(self) -> None:
        await self.manager.channels.stop()

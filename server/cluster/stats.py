"""Statistics: of this instance alone, or summed over every live instance through Redis.

Every heartbeat (HEARTBEAT_INTERVAL, 2 s) an instance writes its connection and room counts
under ``{<channel>:instances}:<id>`` with a time-to-live of three heartbeats (in milliseconds:
tests beat every few tenths of a second), so an instance that dies drops out of the sums
within seconds and nothing needs cleaning up. The writes double as the readiness probe's
view of Redis. In the same step it enters itself in the roster
``{<channel>:instances}``, a sorted set scored by when its entry expires (Redis's clock), so
that "who is alive?" is one read of one key, not a scan of a keyspace that holds every
room's history (the admin API asks it on every request, server/cluster/admin_bus.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from swe_realtime import background
from swe_realtime.cluster.connection import AnyRedis, connect
from swe_realtime.cluster.health import RedisHealth
from swe_realtime.settings import DEFAULT_TIMINGS, RedisSettings

TOKEN = secrets.token_hex(8)
"""This process's mark on its heartbeats (their ``owner``): tells its own entry from another
process's with the same id (server/cluster/identity.py)."""

BEATS_TO_LIVE = 3
"""A heartbeat's entry outlives that many heartbeats: one late beat is not a death."""

Snapshot = dict[str, Any]


def heartbeat_ttl_ms(heartbeat: float) -> int:
    """How long a heartbeat's entry lives, in milliseconds: BEATS_TO_LIVE heartbeats."""
    return max(1, round(BEATS_TO_LIVE * heartbeat * 1000))


def stamped(counts: Snapshot) -> str:
    """A heartbeat's value: ``counts`` as JSON, marked as this process's (``owner``)."""
    return json.dumps(counts | {"owner": TOKEN})


_log = logging.getLogger("swe_realtime.cluster")


class Stats(Protocol):
    """Where the stats endpoint gets its numbers; started and stopped with the app."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def snapshot(self) -> Snapshot: ...


class Companion(Protocol):
    """Work that lives as long as this instance's heartbeat (server/cluster/presence.py):
    started with it, and stopped before the heartbeat's entry is withdrawn, so that the other
    instances see this one alive for as long as it holds anything in Redis."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


# KEYS: the instance's heartbeat, the roster. ARGV: its counts, the TTL in milliseconds, its
# id, how long past its TTL an entry lingers (milliseconds). Roster scores stay in seconds
# (with a fraction) and say when an entry stops being alive, as instances of earlier versions
# read them. Returns 0, and writes nothing, when the key holds another process's counts (their
# "owner", server/cluster/identity.py): two processes with one id must not take turns at one entry.
_BEAT = """
local held = redis.call('GET', KEYS[1])
if held then
    local owner = cjson.decode(held)['owner']
    if owner and owner ~= cjson.decode(ARGV[1])['owner'] then
        return 0
    end
end
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]) / 1000, ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[4]) / 1000)
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[2]) + tonumber(ARGV[4]))
return 1
"""

# KEYS: the roster. ARGV: how long past its expiry an entry counts (milliseconds; 0: alive
# now). Returns the ids whose entry counts.
_LIVE = """
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
local since = now - tonumber(ARGV[1]) / 1000
return redis.call('ZRANGEBYSCORE', KEYS[1], string.format('(%.6f', since), '+inf')
"""


class Roster:
    """The instances alive on one channel: each beats (counts and roster entry in one step),
    anyone reads who is alive in one command."""

    def __init__(
        self,
        redis: AnyRedis,
        channel: str,
        *,
        heartbeat: float = DEFAULT_TIMINGS.heartbeat,
        silent: float = DEFAULT_TIMINGS.silent_instance,
    ) -> None:
        """``heartbeat``: how often ``beat`` is called; an entry lives BEATS_TO_LIVE of them.
        ``silent``: how long an entry is kept after that, for ``lately`` (Timings.silent_instance).
        Who only reads the roster (the admin bus) may leave ``heartbeat`` out."""
        self._redis = redis
        self._channel = channel
        self._ttl_ms = heartbeat_ttl_ms(heartbeat)
        self._silent_ms = max(0, round(silent * 1000))
        self._key = f"{{{channel}:instances}}"
        self._beat = redis.register_script(_BEAT)
        self._live = redis.register_script(_LIVE)

    async def beat(self, instance_id: str, counts: str) -> bool:
        """Write ``counts`` (JSON) as ``instance_id``'s; False if another process holds the
        entry (its counts carry another ``owner``)."""
        written = await self._beat(
            keys=[heartbeat_key(self._channel, instance_id), self._key],
            args=[counts, self._ttl_ms, instance_id, self._silent_ms],
        )
        return bool(written)

    async def withdraw(self, instance_id: str) -> None:
        await self._redis.delete(heartbeat_key(self._channel, instance_id))
        await self._redis.zrem(self._key, instance_id)

    async def live(self) -> set[str]:
        """The instances beating now."""
        return {name.decode() for name in await self._live(keys=[self._key], args=[0])}

    async def lately(self) -> set[str]:
        """The instances beating now, and those silent for less than ``silent``: stalled or
        cut off, their connections may still be alive."""
        return {name.decode() for name in await self._live(keys=[self._key], args=[self._silent_ms])}


def heartbeat_key(channel: str, instance_id: str) -> str:
    """Where ``instance_id`` heartbeats: while the key exists, the instance counts as alive.
    All instances' keys share one hash slot, so that one MGET reads them on a Redis Cluster."""
    return f"{{{channel}:instances}}:{instance_id}"


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
        *,
        heartbeat: float,
        health_check: float,
        silent: float = DEFAULT_TIMINGS.silent_instance,
    ) -> None:
        """``heartbeat`` (HEARTBEAT_INTERVAL), ``health_check`` (REDIS_HEALTH_CHECK_INTERVAL)
        and ``silent`` (how long the roster keeps a silent instance: Timings.silent_instance)
        in seconds."""
        self.instance_id = instance_id
        self._health = health
        self._local = local
        self._companions = tuple(companions)
        self._redis: AnyRedis = connect(
            settings.url,
            default_service=settings.channel,
            socket_timeout=2,
            health_check_interval=health_check,
        )
        self._prefix = heartbeat_key(settings.channel, "")
        self._heartbeat = heartbeat
        self._roster = Roster(self._redis, settings.channel, heartbeat=heartbeat, silent=silent)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._beat())
        for companion in self._companions:
            await companion.start()

    async def stop(self) -> None:
        """Stop the companions, then beating, and withdraw this instance's entry (best effort)."""
        for companion in self._companions:
            await companion.stop()
        await background.stop([self._task])
        try:
            await self._roster.withdraw(self.instance_id)
        except Exception as exc:  # Redis gone at shutdown: the TTL removes the entry anyway
            _log.info("could not withdraw this instance's stats: %s", exc)
        await self._redis.aclose()

    async def _beat(self) -> None:
        while True:
            try:
                counts = stamped(self._local())
                if not await self._roster.beat(self.instance_id, counts):
                    _log.error(
                        "instance id %r is in use by another live gateway process: give each its"
                        " own INSTANCE_ID; this one stays out of the cluster's stats",
                        self.instance_id,
                    )
            except Exception as exc:  # any failure means Redis cannot be used right now
                self._health.failed(exc, "heartbeat")
            else:
                self._health.succeeded("heartbeat")
            await asyncio.sleep(self._heartbeat)

    async def snapshot(self) -> Snapshot:
        """Connections and rooms summed over live instances, with a per-instance breakdown.

        This instance counts with its live numbers. If Redis cannot be read, the answer is
        this instance alone, marked ``partial``.
        """
        instances: dict[str, Snapshot] = {}
        partial = False
        try:
            names = sorted(await self._roster.live())
            values = await self._redis.mget([self._prefix + name for name in names]) if names else []
            for name, value in zip(names, values, strict=True):
                if value is not None:
                    counts = json.loads(value)
                    counts.pop("owner", None)
                    instances[name] = counts
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

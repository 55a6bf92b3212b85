"""One instance id, one live process: claimed in Redis before the gateway serves.

Everything an instance shares is keyed by its id (INSTANCE_ID): its heartbeat and roster
entry (server/cluster/stats.py), its admin answers (server/cluster/admin_bus.py), its share
of the per-user counts and presence (server/cluster/presence.py). Two live processes with
one id overwrite each other there: stats undercount, the admin listing shows either half,
presence shares flap (issue 26). So a process claims its id's heartbeat key first, and
refuses to start while another live process holds it.

Each process stamps its heartbeats with ``stats.TOKEN`` (``stats.stamped``), drawn at random
when it starts. A key with another token is either a live process's or a dead one's (the
previous life of this same id, killed before it could withdraw): the live one beats again
within a heartbeat and so pushes the key's expiry forward, the dead one's key only runs out.
The claim waits for one or the other, at most one heartbeat key's life (three heartbeats).
"""

from __future__ import annotations

import asyncio
import logging
import time

from redis.exceptions import RedisError

from swe_realtime.cluster.connection import connect
from swe_realtime.cluster.stats import BEATS_TO_LIVE, heartbeat_key, heartbeat_ttl_ms, stamped
from swe_realtime.settings import RedisSettings

_log = logging.getLogger("swe_realtime.cluster")


class InstanceIdTaken(Exception):
    """Another live process holds this instance id; the message says what to do."""


async def claim(settings: RedisSettings, instance_id: str, *, heartbeat: float) -> None:
    """Write this process's heartbeat key for ``instance_id`` (no counts yet, and no roster
    entry: nobody takes it for alive before it beats), or raise :class:`InstanceIdTaken`.

    Redis unreachable: a warning, and the gateway starts as it always did with Redis down
    (serving locally); its heartbeats still never overwrite another process's entry."""
    try:
        await _claim(settings, instance_id, heartbeat=heartbeat)
    except (RedisError, OSError) as exc:
        _log.warning("could not check that instance id %r is free: %s", instance_id, exc)


async def _claim(settings: RedisSettings, instance_id: str, *, heartbeat: float) -> None:
    redis = connect(settings.url, default_service=settings.channel, socket_timeout=5)
    key = heartbeat_key(settings.channel, instance_id)
    ttl_ms = heartbeat_ttl_ms(heartbeat)
    mine = stamped({"connections": 0, "rooms": {}})
    deadline = time.monotonic() + 2 * BEATS_TO_LIVE * heartbeat
    left: int | None = None
    try:
        while not await redis.set(key, mine, nx=True, px=ttl_ms):
            now_left = int(await redis.pttl(key))
            if (left is not None and now_left > left) or time.monotonic() > deadline:
                raise InstanceIdTaken(
                    f"instance id {instance_id!r} is in use by another live gateway process on"
                    f" REDIS_CHANNEL {settings.channel!r}: give each process its own INSTANCE_ID"
                    " (or leave it unset for host-pid), or stop the other one first"
                )
            left = now_left if now_left > 0 else None
            await asyncio.sleep(min(heartbeat / 4, 0.5))
    finally:
        await redis.aclose()

"""Emitting from a process that has no socket server (a worker, a cron job, another service).

``redis_broadcaster(url)`` gives the same Broadcaster the gateway uses, with the same models
and validation, publishing through the rooms' Redis streams exactly as the gateway does
(server/cluster/streams.py): the event gets its positions, is kept for recovery, and every gateway
instance delivers it to its own connections. A Redis failure raises RedisUnavailable:
nothing else would deliver the event.

It needs only pydantic and redis (``pip install swe-realtime``, without the ``gateway``
extra).

    broadcaster = redis_broadcaster("redis://redis:6379/0")
    await broadcaster.broadcast_workflow_progress(workflow_id=..., status="running", progress=40)
"""

from __future__ import annotations

from collections.abc import Sequence

from swe_realtime.cluster.connection import connect
from swe_realtime.cluster.streams import RoomStreams
from swe_realtime.publish.broadcaster import Broadcaster
from swe_realtime.publish.message import Outgoing
from swe_realtime.settings import DEFAULT_REDIS_CHANNEL, HistorySettings


class RedisEmitter:
    """The broadcaster's sink in a process without a gateway: the rooms' streams in Redis.

    ``history`` must match the gateways' HISTORY_SIZE and HISTORY_TTL, as ``channel`` must
    match their REDIS_CHANNEL.
    """

    def __init__(
        self, url: str, channel: str = DEFAULT_REDIS_CHANNEL, history: HistorySettings | None = None
    ) -> None:
        redis = connect(url, default_service=channel)
        self._streams = RoomStreams(redis, channel, history or HistorySettings(), url=url)

    async def send(self, events: Sequence[Outgoing]) -> list[BaseException | None]:
        return await self._streams.publish(events)  # RedisUnavailable: not stored, not sent

    async def aclose(self) -> None:
        """Close the connections to Redis."""
        await self._streams.redis.aclose()


def redis_broadcaster(
    url: str, channel: str = DEFAULT_REDIS_CHANNEL, history: HistorySettings | None = None
) -> Broadcaster:
    """A broadcaster that publishes to the gateways on ``channel`` (REDIS_CHANNEL there)."""
    return Broadcaster(RedisEmitter(url, channel, history))

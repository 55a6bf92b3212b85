"""Histories in the rooms' Redis streams (server/cluster/streams.py), shared by every instance.

The same History as the in-memory one (server/delivery/history.py): positions are given by
the append script as the event is stored, windows are read from the streams. A publish that
Redis does not take raises RedisUnavailable: an event that is neither stored nor sent is the
publisher's to know about (HTTP 503), never a silent success.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from swe_realtime.cluster.connection import PUBLISH_TIMEOUT
from swe_realtime.cluster.health import RedisHealth
from swe_realtime.cluster.streams import RoomStreams
from swe_realtime.delivery.history import Window, judge
from swe_realtime.events.commands import RecoveryFailure
from swe_realtime.events.envelope import StreamPosition
from swe_realtime.publish.message import Outgoing
from swe_realtime.telemetry import metrics

_log = logging.getLogger("swe_realtime.history")


class RedisHistory:
    """The rooms' histories in their Redis streams."""

    def __init__(self, streams: RoomStreams, health: RedisHealth, *, kept: bool) -> None:
        self._streams = streams
        self._health = health
        self._kept = kept

    async def send(self, events: Sequence[Outgoing]) -> list[BaseException | None]:
        errors = await self._streams.publish(events)
        failed = [error for error in errors if error is not None]
        if failed:
            self._health.unpublished += len(failed)
            metrics.UNPUBLISHED.inc(len(failed))
            self._health.failed(failed[0].__cause__ or failed[0])
        else:
            self._health.succeeded()
        return errors

    async def windows(self, requests: Sequence[tuple[str, StreamPosition | None]]) -> list[Window]:
        return list(await asyncio.gather(*(self._window(room, after) for room, after in requests)))

    async def recent(self, room: str, count: int) -> Window:
        """Read with the newest ``count`` entries only. A failure here is not Redis's health:
        an operator's look into a long history must not take the instance out of /ready."""
        if not self._kept:
            return Window(None, failure=RecoveryFailure.HISTORY_OFF)
        try:
            state = await asyncio.wait_for(
                self._streams.read(room, 0 if count else None, most=count, look=True), PUBLISH_TIMEOUT
            )
        except Exception as exc:
            _log.info("could not read the history of %s for the admin API: %s", room, exc or "timed out")
            return Window(None, failure=RecoveryFailure.HISTORY_UNAVAILABLE)
        if not state.epoch:
            return Window(None)
        return Window(StreamPosition(epoch=state.epoch, offset=state.top), state.entries)

    async def _window(self, room: str, after: StreamPosition | None) -> Window:
        if not self._kept:
            return Window(None, failure=RecoveryFailure.HISTORY_OFF)
        try:
            state = await asyncio.wait_for(
                self._streams.read(room, None if after is None else after.offset), PUBLISH_TIMEOUT
            )
        except Exception as exc:  # the room is joined all the same; the client is told
            self._health.failed(exc)
            return Window(None, failure=RecoveryFailure.HISTORY_UNAVAILABLE)
        return judge(state.epoch, state.top, state.first, after, state.entries)

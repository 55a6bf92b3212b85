"""Per-room history: a position for every event in every room, and the events to replay.

Which rooms: all of them. Every room of the catalogue carries state a client renders
(progress bars, statuses, reviews), and a client cannot know in advance in which rooms it
will miss something; a per-room opt-in would leave exactly the rooms nobody thought of
without recovery. The cost is bounded instead: HISTORY_SIZE events per room, none older than
HISTORY_TTL (a room idle that long is forgotten), and HISTORY_SIZE=0 turns it all off. The
fan-out benchmark runs with and without history (bench/RESULTS.md).

A position is ``(epoch, offset)``: offsets count a room's events from 1, and the epoch, a
random token made when the room's history is created, changes whenever that history is lost
(expired, Redis restarted or flushed). An offset is only ever compared within its epoch.

With Redis the histories are the rooms' streams (server/streams.py), written by whoever
publishes, and delivery goes through the rooms' channels (server/room_channels.py). Without
Redis the same happens in memory, under a lock. A publish that Redis does not take fails: it
is neither kept nor sent anywhere, so no instance's clients see an event the others miss.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, Protocol

from swe_realtime import metrics
from swe_realtime._compat.fanout import emit_to_participants
from swe_realtime.errors import RedisUnavailable
from swe_realtime.events.commands import RecoveryFailure
from swe_realtime.events.envelope import StreamPosition
from swe_realtime.redis_connection import PUBLISH_TIMEOUT
from swe_realtime.redis_health import RedisHealth
from swe_realtime.settings import HistorySettings
from swe_realtime.streams import Entry, RoomStreams, new_epoch


@dataclass(frozen=True, slots=True)
class Window:
    """What a room's history says about a client's position: the room's position now, and
    the events after the client's (or why they cannot be had)."""

    position: StreamPosition | None
    entries: tuple[Entry, ...] = ()
    failure: RecoveryFailure | None = None


class History(Protocol):
    """Publishes events with positions and answers for rooms' histories."""

    async def emit(self, event: str, data: Any, *, room: list[str], namespace: str) -> None:
        """Assign positions, record, and deliver (the broadcaster's Emitter)."""

    async def window(self, room: str, after: StreamPosition | None) -> Window:
        """The room's position now and, given a position, the events after it."""


def judge(epoch: str, top: int, first: int, after: StreamPosition | None, entries: Sequence[Entry]) -> Window:
    """The window for a client at ``after`` in a room at ``(epoch, top)`` whose oldest kept
    event is ``first`` (top + 1 when none is kept); ``entries`` are those after ``after``."""
    position = StreamPosition(epoch=epoch, offset=top)
    if after is None:
        return Window(position)
    if after.epoch != epoch:
        return Window(position, failure=RecoveryFailure.EPOCH_CHANGED)
    if after.offset > top:
        return Window(position, failure=RecoveryFailure.POSITION_AHEAD)
    if after.offset + 1 < first:
        return Window(position, failure=RecoveryFailure.HISTORY_TRIMMED)
    return Window(position, tuple(entries))


class NoHistory:
    """HISTORY_SIZE=0: events go out without positions, and nothing can be recovered."""

    def __init__(self, emitter: Any) -> None:
        self._emitter = emitter

    async def emit(self, event: str, data: Any, *, room: list[str], namespace: str) -> None:
        await self._emitter.emit(event, data, room=room, namespace=namespace)

    async def window(self, room: str, after: StreamPosition | None) -> Window:
        return Window(None, failure=RecoveryFailure.HISTORY_OFF)


@dataclass(slots=True)
class _RoomLog:
    epoch: str
    top: int
    touched: float
    entries: deque[tuple[int, float, Entry]] | None = None
    """(offset, monotonic time, entry); made with the first event (rooms that are only
    subscribed to, often one per connection, cost no deque)."""


class MemoryHistory:
    """One instance, no Redis: bounded deques per room, swept of idle rooms."""

    SWEEP_EVERY = 1000
    """Publishes between sweeps of rooms idle for longer than the TTL."""

    def __init__(self, manager: Any, settings: HistorySettings) -> None:
        self._manager = manager
        self._size = settings.size
        self._ttl = float(settings.ttl)
        self._rooms: dict[str, _RoomLog] = {}
        self._published = 0
        self._lock = asyncio.Lock()

    async def emit(self, event: str, data: Any, *, room: list[str], namespace: str) -> None:
        async with self._lock:  # offsets are handed out in the order events are delivered
            now = time.monotonic()
            self._published += 1
            if self._published % self.SWEEP_EVERY == 0:
                self._sweep(now)
            logs = [self._log(name, now) for name in room]
            positions = data["positions"] = {}
            entry = Entry(event, data, tuple(room))
            for name, log in zip(room, logs, strict=True):
                log.top += 1
                log.touched = now
                if log.entries is None:
                    log.entries = deque(maxlen=self._size)
                log.entries.append((log.top, now, entry))
                positions[name] = {"epoch": log.epoch, "offset": log.top}
            await emit_to_participants(self._manager, event, data, namespace, room, None)

    async def window(self, room: str, after: StreamPosition | None) -> Window:
        now = time.monotonic()
        log = self._log(room, now)
        kept = log.entries if log.entries is not None else deque()
        while kept and kept[0][1] < now - self._ttl:
            kept.popleft()
        first = kept[0][0] if kept else log.top + 1
        skip = 0 if after is None else max(0, after.offset + 1 - first)
        entries = [entry for _, _, entry in islice(kept, skip, None)] if after is not None else []
        return judge(log.epoch, log.top, first, after, entries)

    def _log(self, room: str, now: float) -> _RoomLog:
        log = self._rooms.get(room)
        if log is None or log.touched < now - self._ttl:
            log = self._rooms[room] = _RoomLog(new_epoch(), 0, now)
        return log

    def _sweep(self, now: float) -> None:
        for name in [name for name, log in self._rooms.items() if log.touched < now - self._ttl]:
            del self._rooms[name]


class RedisHistory:
    """Histories in the rooms' Redis streams (server/streams.py), shared by every instance.

    A publish that Redis does not take raises RedisUnavailable: an event that is neither
    stored nor sent is the publisher's to know about (HTTP 503), never a silent success.
    """

    def __init__(self, streams: RoomStreams, health: RedisHealth, *, kept: bool) -> None:
        self._streams = streams
        self._health = health
        self._kept = kept

    async def emit(self, event: str, data: Any, *, room: list[str], namespace: str) -> None:
        try:
            await self._streams.publish(event, data, room)
        except RedisUnavailable as exc:
            self._health.unpublished += 1
            metrics.UNPUBLISHED.inc()
            self._health.failed(exc.__cause__ or exc)
            raise
        self._health.succeeded()

    async def window(self, room: str, after: StreamPosition | None) -> Window:
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


def make_history(server: Any, settings: HistorySettings) -> History:
    """The history of a gateway without Redis: in memory, or none (HISTORY_SIZE=0)."""
    if settings.size == 0:
        return NoHistory(server)
    return MemoryHistory(server.manager, settings)

"""Per-room history: a position for every event in every room, and the events to replay.

Which rooms: all of them. Every room of the catalogue carries state a client renders
(progress bars, statuses, reviews), and a client cannot know in advance in which rooms it
will miss something; a per-room opt-in would leave exactly the rooms nobody thought of
without recovery. The cost is bounded instead: HISTORY_SIZE events per room, none older than
HISTORY_TTL (a room idle that long is forgotten), in memory at most as many rooms as can have
members at once (see MemoryHistory), and HISTORY_SIZE=0 turns it all off. The
fan-out benchmark runs with and without history (bench/RESULTS.md).

A position is ``(epoch, offset)``: offsets count a room's events from 1, and the epoch, a
random token made when the room's history is created, changes whenever that history is lost
(expired, Redis restarted or flushed). An offset is only ever compared within its epoch.

With Redis the histories are the rooms' streams (server/cluster/streams.py), written by whoever
publishes, and delivery goes through the rooms' channels (server/cluster/channels.py). Without
Redis the same happens in memory, under a lock. A publish that Redis does not take fails: it
is neither kept nor sent anywhere, so no instance's clients see an event the others miss.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, Protocol

from swe_realtime.delivery.fanout import emit_to_participants
from swe_realtime.events import NAMESPACE
from swe_realtime.events.commands import RecoveryFailure
from swe_realtime.events.envelope import StreamPosition, new_epoch
from swe_realtime.publish.message import Outgoing, RoomMessage
from swe_realtime.settings import HistorySettings
from swe_realtime.telemetry import metrics


@dataclass(frozen=True, slots=True)
class Entry:
    """One event as the in-memory history keeps it (``positions`` filled in)."""

    event: str
    payload: dict[str, Any]
    rooms: tuple[str, ...]
    """All the rooms the event went to, in publishing order."""

    @property
    def positions(self) -> dict[str, Any]:
        positions: dict[str, Any] = self.payload.get("positions") or {}
        return positions

    @property
    def accepted(self) -> float:
        return metrics.accepted_at(self.payload) or 0.0


Kept = Entry | RoomMessage
"""An event a history gives back: kept in memory, or as a Redis stream holds its message."""


@dataclass(frozen=True, slots=True)
class Window:
    """What a room's history says about a client's position: the room's position now, and
    the events after the client's (or why they cannot be had)."""

    position: StreamPosition | None
    entries: tuple[Kept, ...] = ()
    failure: RecoveryFailure | None = None


class History(Protocol):
    """Publishes events with positions and answers for rooms' histories."""

    async def send(self, events: Sequence[Outgoing]) -> list[BaseException | None]:
        """Assign positions, record, and deliver (the broadcaster's sink)."""

    async def windows(self, requests: Sequence[tuple[str, StreamPosition | None]]) -> list[Window]:
        """For each (room, position): the room's position now and, given a position, the
        events after it. Rooms are asked together: in memory without a task each, in Redis
        at the same time."""

    async def recent(self, room: str, count: int) -> Window:
        """The room's position and its last ``count`` events kept, oldest first (the admin
        API's room view)."""


def judge(epoch: str, top: int, first: int, after: StreamPosition | None, entries: Sequence[Kept]) -> Window:
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

    def __init__(self, server: Any) -> None:
        self._server = server

    async def send(self, events: Sequence[Outgoing]) -> list[BaseException | None]:
        for event in events:
            await self._server.emit(event.event, event.payload(), room=event.rooms, namespace=NAMESPACE)
        return [None] * len(events)

    async def windows(self, requests: Sequence[tuple[str, StreamPosition | None]]) -> list[Window]:
        return [Window(None, failure=RecoveryFailure.HISTORY_OFF) for _ in requests]

    async def recent(self, room: str, count: int) -> Window:
        return Window(None, failure=RecoveryFailure.HISTORY_OFF)


@dataclass(slots=True)
class _RoomLog:
    epoch: str
    top: int
    touched: float
    entries: deque[tuple[int, float, Entry]] | None = None
    """(offset, monotonic time, entry); made with the first event (rooms that are only
    subscribed to, often one per connection, cost no deque)."""


MAX_HISTORY_ROOMS = 100_000
"""The most rooms an in-memory history keeps, whatever the limits allow. An entry of a room
without events costs about 330 bytes (measured: the log, its epoch and the room's name), so
this ceiling is some 35 MB; the default limits (10,000 connections x 100 rooms) would allow
ten times as many, far more than a gateway's clients use at once."""


class MemoryHistory:
    """One instance, no Redis: bounded deques per room, in at most ``max_rooms`` rooms.

    Rooms are kept in the order they were last touched (created or published to), so the
    ones idle longer than HISTORY_TTL are at the front and go at the next touch, a few at a
    time: forgetting needs no publish and no timer. When a new room would pass the bound, the
    room idle longest goes first. A room forgotten either way starts a new epoch when next
    used: a client recovering from an old position is told ``epoch_changed`` and refetches.
    """

    def __init__(self, manager: Any, settings: HistorySettings, max_rooms: int) -> None:
        self._manager = manager
        self._size = settings.size
        self._ttl = float(settings.ttl)
        self._max_rooms = max_rooms
        self._rooms: OrderedDict[str, _RoomLog] = OrderedDict()
        self._lock = asyncio.Lock()

    async def send(self, events: Sequence[Outgoing]) -> list[BaseException | None]:
        for event in events:
            await self._emit(event.event, event.payload(), event.rooms)
        return [None] * len(events)

    async def _emit(self, event: str, data: dict[str, Any], room: list[str]) -> None:
        async with self._lock:  # offsets are handed out in the order events are delivered
            now = time.monotonic()
            logs = [self._touch(name, now) for name in room]
            positions = data["positions"] = {}
            entry = Entry(event, data, tuple(room))
            for name, log in zip(room, logs, strict=True):
                log.top += 1
                if log.entries is None:
                    log.entries = deque(maxlen=self._size)
                log.entries.append((log.top, now, entry))
                positions[name] = {"epoch": log.epoch, "offset": log.top}
            await emit_to_participants(self._manager, event, data, NAMESPACE, room, None)

    async def windows(self, requests: Sequence[tuple[str, StreamPosition | None]]) -> list[Window]:
        return [self._window(room, after) for room, after in requests]

    async def recent(self, room: str, count: int) -> Window:
        if room not in self._rooms:  # not made for a look: it would push out a room in use
            return Window(None)
        log, kept = self._kept(room)
        entries = [entry for _, _, entry in islice(kept, max(0, len(kept) - count), None)]
        return Window(StreamPosition(epoch=log.epoch, offset=log.top), tuple(entries))

    def _window(self, room: str, after: StreamPosition | None) -> Window:
        log, kept = self._kept(room)
        first = kept[0][0] if kept else log.top + 1
        skip = 0 if after is None else max(0, after.offset + 1 - first)
        entries = [entry for _, _, entry in islice(kept, skip, None)] if after is not None else []
        return judge(log.epoch, log.top, first, after, entries)

    def _kept(self, room: str) -> tuple[_RoomLog, deque[tuple[int, float, Entry]]]:
        """The room's log and its entries younger than the TTL."""
        now = time.monotonic()
        log = self._log(room, now)
        kept = log.entries if log.entries is not None else deque()
        while kept and kept[0][1] < now - self._ttl:
            kept.popleft()
        return log, kept

    def _log(self, room: str, now: float) -> _RoomLog:
        """The room's log, made (with a new epoch) if the room is not kept; forgets the rooms
        idle past the TTL first, and the idlest one if a new room would pass the bound."""
        while self._rooms and next(iter(self._rooms.values())).touched < now - self._ttl:
            self._forget()
        log = self._rooms.get(room)
        if log is None:
            if len(self._rooms) >= self._max_rooms:
                self._forget()
            log = self._rooms[room] = _RoomLog(new_epoch(), 0, now)
            metrics.HISTORY_ROOMS.inc()
        return log

    def _touch(self, room: str, now: float) -> _RoomLog:
        """The room's log, moved to the back: the room was just used."""
        log = self._log(room, now)
        log.touched = now
        self._rooms.move_to_end(room)
        return log

    def _forget(self) -> None:
        """Drop the room touched longest ago."""
        self._rooms.popitem(last=False)
        metrics.HISTORY_ROOMS.dec()


class CountedSink:
    """An event sink that counts the events handed to it, by type (the gateway wraps its history in it)."""

    def __init__(self, sink: History) -> None:
        self._sink = sink

    async def send(self, events: Sequence[Outgoing]) -> list[BaseException | None]:
        errors = await self._sink.send(events)
        for event, error in zip(events, errors, strict=True):
            if error is None:
                metrics.published(event.event).inc()
        return errors


def make_history(server: Any, settings: HistorySettings, *, max_members: int) -> History:
    """The history of a gateway without Redis: in memory, or none (HISTORY_SIZE=0).

    ``max_members`` is MAX_CONNECTIONS x MAX_ROOMS_PER_CONNECTION, the most rooms that can
    have a member at once: the history keeps as many rooms, up to MAX_HISTORY_ROOMS.
    """
    if settings.size == 0:
        return NoHistory(server)
    return MemoryHistory(server.manager, settings, min(max_members, MAX_HISTORY_ROOMS))

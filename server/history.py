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

With Redis, one Lua script per event assigns the offsets, appends the event to each room's
stream (bounded by count and age), and publishes it to every instance, atomically: all
instances receive a room's events in offset order, the order the streams hold. Even the
publishing instance delivers from the channel, so that its connections see that order too.
Without Redis the same happens in memory, under a lock. Each event also gets a global
sequence number, by which replays of several rooms are merged.

A publish that cannot reach Redis is still delivered to this instance's connections
(without positions), and the rooms it went to have their history reset once Redis is back:
a client that missed it elsewhere then sees a new epoch and refetches, instead of a replay
with a silent hole in it.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, Protocol

from redis.asyncio import Redis

from swe_realtime.events.commands import RecoveryFailure
from swe_realtime.events.envelope import StreamPosition
from swe_realtime.fanout import emit_to_participants
from swe_realtime.redis_manager import PUBLISH_TIMEOUT, GatewayRedisManager
from swe_realtime.settings import HistorySettings

_SLOT = "<payload>"
"""Where the script puts the payload in the channel message it publishes."""

SOURCE_HOST = "history"
"""The host id of channel messages sent by the publish script: no instance's own, so every
instance, the publishing one included, delivers them from the channel."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One event in a room's history, as delivered (``positions`` filled in)."""

    seq: int
    event: str
    payload: dict[str, Any]


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


def new_epoch() -> str:
    return secrets.token_urlsafe(9)


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
        self._seq = 0
        self._lock = asyncio.Lock()

    async def emit(self, event: str, data: Any, *, room: list[str], namespace: str) -> None:
        async with self._lock:  # offsets are handed out in the order events are delivered
            now = time.monotonic()
            self._seq += 1
            if self._seq % self.SWEEP_EVERY == 0:
                self._sweep(now)
            logs = [self._log(name, now) for name in room]
            positions = data["positions"] = {}
            entry = Entry(self._seq, event, data)
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


# KEYS: the sequence key, then per room its meta hash and its stream.
# ARGV: size, ttl (ms), channel, message head, payload head, message tail, a new epoch,
#       the event's name, then per room its name as a JSON string.
_APPEND = """
local size, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = clock[1] * 1000 + math.floor(clock[2] / 1000)
local seq = redis.call('INCR', KEYS[1])
local rooms = (#KEYS - 1) / 2
local offsets, parts = {}, {}
for i = 1, rooms do
  local meta = KEYS[2 * i]
  local epoch = redis.call('HGET', meta, 'epoch')
  if not epoch then
    epoch = ARGV[7]
    redis.call('HSET', meta, 'epoch', epoch)
  end
  offsets[i] = redis.call('HINCRBY', meta, 'top', 1)
  parts[i] = ARGV[8 + i] .. ':{"epoch":"' .. epoch .. '","offset":' .. offsets[i] .. '}'
end
local payload = ARGV[5] .. '{' .. table.concat(parts, ',') .. '}}'
for i = 1, rooms do
  local meta, stream = KEYS[2 * i], KEYS[2 * i + 1]
  local id = offsets[i] .. '-0'
  redis.call('XADD', stream, 'MAXLEN', size, id, 't', now, 's', seq, 'e', ARGV[8], 'p', payload)
  -- Age: drop what is older than the TTL from the front, a bounded look at a time.
  local oldest = redis.call('XRANGE', stream, '-', '+', 'COUNT', 64)
  local keep = nil
  for _, item in ipairs(oldest) do
    if tonumber(item[2][2]) >= now - ttl then keep = item[1] break end
  end
  if not keep then keep = string.match(oldest[#oldest][1], '^(%d+)') .. '-1' end
  if keep ~= oldest[1][1] then redis.call('XTRIM', stream, 'MINID', keep) end
  redis.call('PEXPIRE', meta, ttl)
  redis.call('PEXPIRE', stream, ttl)
end
redis.call('PUBLISH', ARGV[3], ARGV[4] .. payload .. ARGV[6])
return seq
"""

# KEYS: the room's meta hash and stream. ARGV: a new epoch, the client's offset (-1: none),
# ttl (ms). Returns epoch, top, the oldest kept offset (0: none) and the entries after.
_WINDOW = """
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'top', 0)
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
end
local top = tonumber(redis.call('HGET', KEYS[1], 'top') or '0')
local after = tonumber(ARGV[2])
local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
local first = 0
if oldest[1] then first = tonumber(string.match(oldest[1][1], '^(%d+)')) end
local entries = {}
if after >= 0 and after < top then
  entries = redis.call('XRANGE', KEYS[2], (after + 1) .. '-0', '+')
end
return {epoch, top, first, entries}
"""


class RedisHistory:
    """Histories in Redis streams, shared by every instance on the channel."""

    def __init__(self, manager: GatewayRedisManager, settings: HistorySettings) -> None:
        self._manager = manager
        self._size = settings.size
        self._ttl_ms = settings.ttl * 1000
        self._prefix = f"{manager.channel}:history"
        self._client: Redis | None = None
        self._append: Any = None
        self._window: Any = None
        self._lost: set[str] = set()
        """Rooms that got an event Redis did not record: reset when Redis is back."""

    def _scripts(self) -> Redis:
        """The manager's client (it makes a new one when it reconnects), scripts registered."""
        if not self._manager.connected:
            self._manager._redis_connect()
        redis: Redis = self._manager.redis
        if redis is not self._client:
            self._client = redis
            self._append = redis.register_script(_APPEND)
            self._window = redis.register_script(_WINDOW)
        return redis

    def _keys(self, room: str) -> list[str]:
        return [f"{self._prefix}:{room}:meta", f"{self._prefix}:{room}:stream"]

    async def emit(self, event: str, data: Any, *, room: list[str], namespace: str) -> None:
        data.pop("positions", None)  # the script writes them, last
        body = _compact(data)
        message_head, _, message_tail = _compact(
            {
                "method": "emit",
                "event": event,
                "data": [_SLOT],
                "namespace": namespace,
                "room": room,
                "skip_sid": None,
                "callback": None,
                "binary": False,
                "host_id": SOURCE_HOST,
            }
        ).partition(f'"{_SLOT}"')
        keys = [f"{self._prefix}:seq"] + [key for name in room for key in self._keys(name)]
        args = [
            self._size,
            self._ttl_ms,
            self._manager.channel,
            message_head,
            body[:-1] + ',"positions":',
            message_tail,
            new_epoch(),
            event,
            *map(json.dumps, room),
        ]
        try:
            redis = self._scripts()
            if self._lost:
                await redis.delete(*[key for name in self._lost for key in self._keys(name)])
                self._lost.clear()
            await asyncio.wait_for(self._append(keys=keys, args=args), PUBLISH_TIMEOUT)
        except Exception as exc:  # any failure means: not recorded, not published
            self._manager.publish_failed(exc)  # raises RedisUnavailable when write-only
            self._lost.update(room)
            data["positions"] = {}
            await emit_to_participants(self._manager, event, data, namespace, room, None)
            return
        self._manager.health.succeeded()

    async def window(self, room: str, after: StreamPosition | None) -> Window:
        offset = -1 if after is None else after.offset
        try:
            self._scripts()
            epoch, top, first, raw = await asyncio.wait_for(
                self._window(keys=self._keys(room), args=[new_epoch(), offset, self._ttl_ms]), PUBLISH_TIMEOUT
            )
        except Exception as exc:  # the room is joined all the same; the client is told
            self._manager.health.failed(exc)
            return Window(None, failure=RecoveryFailure.HISTORY_UNAVAILABLE)
        entries = []
        for _, fields in raw:
            values = dict(zip(fields[::2], fields[1::2], strict=True))
            entries.append(Entry(int(values[b"s"]), values[b"e"].decode(), json.loads(values[b"p"])))
        return judge(epoch.decode(), int(top), int(first) or int(top) + 1, after, entries)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def make_history(server: Any, settings: HistorySettings) -> History:
    """The history for a server: in Redis when its manager is, in memory otherwise."""
    if settings.size == 0:
        return NoHistory(server)
    if isinstance(server.manager, GatewayRedisManager):
        return RedisHistory(server.manager, settings)
    return MemoryHistory(server.manager, settings)

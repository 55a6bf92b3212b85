"""Rooms' event streams in Redis: the keys, the append script, the read script, the channels.

One path for every publisher: the gateway (server/history.py) and processes without a socket
server (server/emitter.py) publish through :class:`RoomStreams`, so an event has positions and
is in its rooms' histories whoever sent it. It needs only redis-py.

Everything about a room lives in that room's hash slot (the keys and the shard channel share
the ``{<prefix>:<room>}`` hash tag), so a publish touches only its rooms, no global key, and
rooms spread over the masters of a Redis Cluster. Per room, one Lua script assigns the next
offset, appends the event to the room's stream (bounded by count and age) and SPUBLISHes it on
the room's shard channel, atomically: every instance serving the room receives the room's
events in offset order, the order the stream holds.

An event for several rooms is appended room by room, in the catalogue's room order; each
copy carries the positions assigned so far (its own room and the ones before it). A
connection in several of the rooms is sent the copy of the last of them it is in
(server/room_channels.py), which carries all its positions. Across rooms there is no order:
two events of two rooms may reach two instances in different orders.

The channel message is this module's own: ``{"event", "rooms", "room", "payload"}``.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass
from typing import Any

from redis.commands.core import AsyncScript

from swe_realtime.errors import RedisUnavailable
from swe_realtime.redis_connection import PUBLISH_TIMEOUT, AnyRedis, safe_url
from swe_realtime.settings import HistorySettings

# KEYS: the room's meta hash and stream. ARGV: size, ttl (ms), the room's shard channel, a new
# epoch, the room's name as JSON, the positions so far (JSON members, or ""), the payload up
# to its positions, the message up to its payload, the message's end, the event's name, all
# the event's rooms as JSON.
# Returns the room's epoch and the event's offset.
_APPEND = """
local size, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = clock[1] * 1000 + math.floor(clock[2] / 1000)
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[4]
  redis.call('HSET', KEYS[1], 'epoch', epoch)
end
local offset = redis.call('HINCRBY', KEYS[1], 'top', 1)
local positions = ARGV[6]
if positions ~= '' then positions = positions .. ',' end
positions = positions .. ARGV[5] .. ':{"epoch":"' .. epoch .. '","offset":' .. offset .. '}'
local payload = ARGV[7] .. '{' .. positions .. '}}'
redis.call('XADD', KEYS[2], 'MAXLEN', size, offset .. '-0',
  't', now, 'e', ARGV[10], 'r', ARGV[11], 'p', payload)
-- Age: drop what is older than the TTL from the front, a bounded look at a time.
local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 64)
local keep = nil
for _, item in ipairs(oldest) do
  if tonumber(item[2][2]) >= now - ttl then keep = item[1] break end
end
if not keep then keep = string.match(oldest[#oldest][1], '^(%d+)') .. '-1' end
if keep ~= oldest[1][1] then redis.call('XTRIM', KEYS[2], 'MINID', keep) end
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('SPUBLISH', ARGV[3], ARGV[8] .. payload .. ARGV[9])
return {epoch, offset}
"""

# KEYS: the room's meta hash and stream. ARGV: a new epoch (empty: only look, make nothing),
# the client's offset (-1: none), ttl (ms), how many entries at most (the newest; 0: all).
# Returns epoch (empty when only looking at a room without one), top, the oldest kept offset
# (0: none) and the entries after the offset, oldest first.
_WINDOW = """
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch and ARGV[1] == '' then
  return {'', 0, 0, {}}
end
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
local most = tonumber(ARGV[4])
if after >= 0 and after < top and most > 0 then
  local newest = redis.call('XREVRANGE', KEYS[2], '+', (after + 1) .. '-0', 'COUNT', most)
  for i = #newest, 1, -1 do entries[#entries + 1] = newest[i] end
elseif after >= 0 and after < top then
  entries = redis.call('XRANGE', KEYS[2], (after + 1) .. '-0', '+')
end
return {epoch, top, first, entries}
"""


def new_epoch() -> str:
    """A fresh epoch: a random token naming one life of a room's history."""
    return secrets.token_urlsafe(9)


@dataclass(frozen=True, slots=True)
class Entry:
    """One event as kept in a room's history (``positions`` filled in)."""

    event: str
    payload: dict[str, Any]
    rooms: tuple[str, ...]
    """All the rooms the event went to, in publishing order."""


@dataclass(frozen=True, slots=True)
class StreamState:
    """A room's stream as read: epoch, newest offset, oldest kept offset (top + 1 when none
    is kept), and the entries after the position asked about."""

    epoch: str
    top: int
    first: int
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class ChannelMessage:
    """One event as a room's shard channel carries it."""

    event: str
    rooms: list[str]
    """All the event's rooms, in publishing order."""
    room: str
    """The room whose channel carried this copy."""
    payload: dict[str, Any]

    @classmethod
    def parse(cls, raw: bytes) -> ChannelMessage:
        fields = json.loads(raw)
        return cls(fields["event"], fields["rooms"], fields["room"], fields["payload"])


class RoomStreams:
    """Publishes events into rooms' streams and channels, and reads them back, on one client
    (its connections are remade by redis-py when Redis comes back). A publish is bounded by
    PUBLISH_TIMEOUT; readers bound their reads as they need."""

    def __init__(self, redis: AnyRedis, prefix: str, history: HistorySettings, *, url: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._url = safe_url(url)
        self._size = history.size
        self._ttl_ms = history.ttl * 1000
        self._append: AsyncScript = redis.register_script(_APPEND)
        self._window: AsyncScript = redis.register_script(_WINDOW)

    def keys(self, room: str) -> list[str]:
        """The room's meta hash (epoch, newest offset) and its stream, in the room's slot."""
        return [f"{{{self.prefix}:{room}}}:meta", f"{{{self.prefix}:{room}}}:stream"]

    def channel(self, room: str) -> str:
        """The room's shard channel, in the room's slot."""
        return f"{{{self.prefix}:{room}}}:events"

    async def publish(self, event: str, data: dict[str, Any], rooms: list[str]) -> dict[str, Any]:
        """Append ``data`` to each room's stream, room by room, and send each copy on the
        room's channel; return the event's positions in all its rooms. RedisUnavailable when
        Redis did not take it (redis, OS and timeout errors alike)."""
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT):
                return await self._publish(event, data, rooms)
        except Exception as exc:
            raise RedisUnavailable(
                f"Redis at {self._url} is unreachable: {type(exc).__name__}: {exc}"
            ) from exc

    async def _publish(self, event: str, data: dict[str, Any], rooms: list[str]) -> dict[str, Any]:
        data.pop("positions", None)  # the script writes them, last
        if self._size == 0:  # history off: no positions, nothing kept
            data["positions"] = {}
            for room in rooms:
                await self.redis.spublish(
                    self.channel(room), _message_head(event, rooms, room) + _compact(data) + "}"
                )
            return {}
        head = _compact(data)[:-1] + ',"positions":'
        members: list[str] = []
        positions: dict[str, Any] = {}
        for room in rooms:
            epoch, offset = await self._append(
                keys=self.keys(room),
                args=[
                    self._size,
                    self._ttl_ms,
                    self.channel(room),
                    new_epoch(),
                    _compact(room),
                    ",".join(members),
                    head,
                    _message_head(event, rooms, room),
                    "}",
                    event,
                    _compact(rooms),
                ],
            )
            epoch = epoch.decode() if isinstance(epoch, bytes) else epoch
            positions[room] = {"epoch": epoch, "offset": int(offset)}
            members.append(f"{_compact(room)}:{_compact(positions[room])}")
        data["positions"] = positions
        return positions

    async def read(self, room: str, after: int | None, *, most: int = 0, look: bool = False) -> StreamState:
        """The room's stream now and, given an offset, the entries after it (the ``most``
        newest of them, if given). A room without history gets one (an epoch), unless this
        is only a ``look``: then its epoch reads as empty."""
        epoch, top, first, raw = await self._window(
            keys=self.keys(room),
            args=["" if look else new_epoch(), -1 if after is None else after, self._ttl_ms, most],
        )
        entries = []
        for _, fields in raw:
            values = dict(zip(fields[::2], fields[1::2], strict=True))
            rooms = tuple(json.loads(values[b"r"]))
            entries.append(Entry(values[b"e"].decode(), json.loads(values[b"p"]), rooms))
        return StreamState(epoch.decode(), int(top), int(first) or int(top) + 1, tuple(entries))


def _message_head(event: str, rooms: list[str], room: str) -> str:
    """A :class:`ChannelMessage` up to its payload."""
    return f'{{"event":{_compact(event)},"rooms":{_compact(rooms)},"room":{_compact(room)},"payload":'


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

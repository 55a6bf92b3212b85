"""Rooms' event streams in Redis: the keys, the publish script and the read script.

One path for every publisher: the gateway (server/history.py) and processes without a socket
server (server/emitter.py) publish through :class:`RoomStreams`, so an event has positions and
is in its rooms' histories whoever sent it. It needs only redis-py.

One Lua script per event assigns the offsets, appends the event to each room's stream
(bounded by count and age) and publishes it to every instance, atomically: all instances
receive a room's events in offset order, the order the streams hold. The channel message is
python-socketio's (server/_compat/socketio_pubsub.py) with a host id no instance has, so
every instance, the publishing one included, delivers it from the channel. Each event also
gets a global sequence number, by which replays of several rooms are merged.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from swe_realtime._compat.socketio_pubsub import emit_message
from swe_realtime.settings import HistorySettings

_SLOT = "<payload>"
"""Where the script puts the payload in the channel message it publishes."""

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


def new_epoch() -> str:
    """A fresh epoch: a random token naming one life of a room's history."""
    return secrets.token_urlsafe(9)


@dataclass(frozen=True, slots=True)
class Entry:
    """One event read back from a room's stream."""

    seq: int
    event: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StreamState:
    """A room's stream as read: epoch, newest offset, oldest kept offset (top + 1 when none
    is kept), and the entries after the position asked about."""

    epoch: str
    top: int
    first: int
    entries: tuple[Entry, ...]


class RoomStreams:
    """Publishes events into rooms' streams and reads them back, on a given Redis client.

    The client is passed per call: the gateway's changes when its connection to Redis is
    remade, and the scripts are registered again for the new one.
    """

    def __init__(self, channel: str, history: HistorySettings) -> None:
        self.channel = channel
        self._size = history.size
        self._ttl_ms = history.ttl * 1000
        self._prefix = f"{channel}:history"
        self._registered: tuple[Redis, AsyncScript, AsyncScript] | None = None

    def keys(self, room: str) -> list[str]:
        """The room's meta hash (epoch, newest offset) and its stream."""
        return [f"{self._prefix}:{room}:meta", f"{self._prefix}:{room}:stream"]

    async def publish(
        self, redis: Redis, event: str, data: dict[str, Any], rooms: list[str], namespace: str
    ) -> None:
        """Append ``data`` to each room's stream with its positions, and publish it to every
        instance. With history off (size 0) it is published as it is, without positions."""
        if self._size == 0:
            await redis.publish(
                self.channel, _compact(emit_message(event, data, rooms=rooms, namespace=namespace))
            )
            return
        data.pop("positions", None)  # the script writes them, last
        body = _compact(data)
        head, _, tail = _compact(emit_message(event, _SLOT, rooms=rooms, namespace=namespace)).partition(
            f'"{_SLOT}"'
        )
        keys = [f"{self._prefix}:seq"] + [key for name in rooms for key in self.keys(name)]
        args: list[str | int] = [
            self._size,
            self._ttl_ms,
            self.channel,
            head,
            body[:-1] + ',"positions":',
            tail,
            new_epoch(),
            event,
            *map(json.dumps, rooms),
        ]
        append, _ = self._scripts(redis)
        await append(keys=keys, args=args)

    async def read(self, redis: Redis, room: str, after: int | None) -> StreamState:
        """The room's stream now and, given an offset, the entries after it."""
        _, window = self._scripts(redis)
        epoch, top, first, raw = await window(
            keys=self.keys(room), args=[new_epoch(), -1 if after is None else after, self._ttl_ms]
        )
        entries = []
        for _, fields in raw:
            values = dict(zip(fields[::2], fields[1::2], strict=True))
            entries.append(Entry(int(values[b"s"]), values[b"e"].decode(), json.loads(values[b"p"])))
        return StreamState(epoch.decode(), int(top), int(first) or int(top) + 1, tuple(entries))

    async def forget(self, redis: Redis, rooms: set[str]) -> None:
        """Drop the rooms' histories: their next event starts a new epoch."""
        await redis.delete(*[key for name in rooms for key in self.keys(name)])

    def _scripts(self, redis: Redis) -> tuple[AsyncScript, AsyncScript]:
        if self._registered is None or self._registered[0] is not redis:
            self._registered = (redis, redis.register_script(_APPEND), redis.register_script(_WINDOW))
        return self._registered[1], self._registered[2]


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

"""Rooms' event streams in Redis: the keys, the append script, the read script, the channels.

One path for every publisher: the gateway (server/delivery/history.py) and processes without a socket
server (server/cluster/emitter.py) publish through :class:`RoomStreams`, so an event has positions and
is in its rooms' histories whoever sent it. It needs only redis-py.

Everything about a room lives in that room's hash slot (the keys and the shard channel share
the ``{<prefix>:<room>}`` hash tag), so a publish touches only its rooms, no global key, and
rooms spread over the masters of a Redis Cluster. Per room, one Lua script assigns the next
offset, writes the copy's message (server/publish/message.py: header and ready frame), appends
it to the room's stream and SPUBLISHes it on the room's shard channel, atomically: every
instance serving the room receives the room's events in offset order, the order the stream
holds, as the bytes its members' sockets are written.

The script's work does not grow with the stream. An entry's id is its offset, then the
time it was appended (``<offset>-<ms>``). The append trims by count approximately (``MAXLEN
~``: whole stream nodes at a time, so a stream may hold up to one node, some 100 entries, over
HISTORY_SIZE), and by age with a mark, an offset and its time kept beside the room's position:
once the mark is older than HISTORY_TTL, everything up to it goes (again approximately), the
mark moves to the newest entry and the room's keys are given twice HISTORY_TTL to live. So an
entry may be kept for up to twice HISTORY_TTL, and a room's keys outlive its last event by
HISTORY_TTL to twice that. Neither slack is ever seen: the read script returns no entry
older than HISTORY_TTL or more than HISTORY_SIZE behind the top (a client whose position is
behind that is told ``history_trimmed``).

Publishing is in bulk: what is published in one turn of the event loop (an HTTP batch, or
single publishes arriving together) goes to Redis as one pipeline per master, and the next
batch gathers while one is on its way. An event for several rooms is appended room by room,
in the catalogue's room order; each copy carries the positions assigned so far (its own room
and the ones before it), so its rooms are appended in successive rounds of the batch, each
round one pipeline per master, and a room's appends keep the order of the batch. A
connection in several of the rooms is sent the copy of the last of them it is in
(server/cluster/channels.py), which carries all its positions. Across rooms there is no order:
two events of two rooms may reach two instances in different orders.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import ClusterError, NoScriptError, TryAgainError

from swe_realtime.cluster.connection import PUBLISH_TIMEOUT, AnyRedis, safe_url
from swe_realtime.errors import RedisUnavailable
from swe_realtime.events.envelope import new_epoch
from swe_realtime.publish.message import (
    Outgoing,
    RoomMessage,
    header_head,
    packet_head,
    without_positions,
)
from swe_realtime.settings import HistorySettings

# Appends copies, in the order given. KEYS: per copy, its room's meta hash and stream. ARGV:
# size, ttl (ms), the length of the key prefix, a new epoch for rooms without one, a deadline
# (ms on Redis's clock; 0: none), then per copy the message's header and the packet's text,
# each up to the positions this call adds, and '1' if the copy is of the same event as the
# one before it (its positions so far are carried over). The room's channel and name are read
# from its keys (``{<prefix>:<room>}:meta``). Returns Redis's time, then each copy's epoch
# and offset; past the deadline, an error and nothing appended. Out of memory, Redis refuses
# the script at its first write, and lets one that has written go on: a batch is appended
# whole or not at all. The shebang (Redis 7) checks that only the declared keys are touched.
_APPEND = """#!lua
local size, ttl, skip = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]) + 3
local clock = redis.call('TIME')
local now = clock[1] * 1000 + math.floor(clock[2] / 1000)
local deadline = tonumber(ARGV[5])
if deadline > 0 and now > deadline then
  return redis.error_reply('EXPIRED the append reached Redis ' .. (now - deadline) .. ' ms late')
end
local out = {now}
local carried_header, carried_text = '', ''
for copy = 1, #KEYS / 2 do
  local meta_key, stream_key = KEYS[copy * 2 - 1], KEYS[copy * 2]
  local base = string.sub(meta_key, 1, -5)
  if ARGV[copy * 3 + 5] ~= '1' then carried_header, carried_text = '', '' end
  local meta = redis.call('HMGET', meta_key, 'epoch', 'mark', 'marked')
  local epoch = meta[1]
  if not epoch then
    epoch = ARGV[4]
    redis.call('DEL', stream_key)
    redis.call('HSET', meta_key, 'epoch', epoch)
  end
  local offset = redis.call('HINCRBY', meta_key, 'top', 1)
  local position = epoch .. ':' .. offset
  local member = '"' .. string.sub(base, skip, -3) .. '":{"epoch":"' .. epoch
    .. '","offset":' .. offset .. '}'
  local text = ARGV[copy * 3 + 4] .. carried_text .. member .. '}}]'
  local n = #text
  local head
  if n < 126 then
    head = string.char(129, n)
  elseif n < 65536 then
    head = string.char(129, 126, math.floor(n / 256), n % 256)
  else
    head = string.char(129, 127, 0, 0, 0, 0, math.floor(n / 16777216) % 256,
      math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
  end
  local message = ARGV[copy * 3 + 3] .. carried_header .. position .. '\\n' .. head .. text
  redis.call('XADD', stream_key, 'MAXLEN', '~', size, offset .. '-' .. now, 'm', message)
  if not meta[2] or now - tonumber(meta[3]) > ttl then
    if meta[2] then
      redis.call('XTRIM', stream_key, 'MINID', '~', (tonumber(meta[2]) + 1) .. '-0')
    end
    redis.call('HSET', meta_key, 'mark', offset, 'marked', now)
    redis.call('PEXPIRE', meta_key, 2 * ttl)
    redis.call('PEXPIRE', stream_key, 2 * ttl)
  end
  redis.call('SPUBLISH', base .. 'events', message)
  carried_header = carried_header .. position .. ','
  carried_text = carried_text .. member .. ','
  out[#out + 1] = epoch
  out[#out + 1] = offset
end
return out
"""

# KEYS: the room's meta hash and stream. ARGV: a new epoch (empty: only look, make nothing),
# the client's offset (-1: none), ttl (ms), how many entries at most (the newest; 0: all),
# size. Returns epoch (empty when only looking at a room without one), top, and the kept
# entries after the offset as (id, message), oldest first: none older than the TTL, none
# more than size behind the top.
_WINDOW = """
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'top')
local epoch = meta[1]
if not epoch and ARGV[1] == '' then
  return {'', 0, {}}
end
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'top', 0)
  redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[3]))
end
local top = tonumber(meta[2] or '0')
local after, most = tonumber(ARGV[2]), tonumber(ARGV[4])
local entries = {}
if after >= 0 and after < top then
  local clock = redis.call('TIME')
  local oldest = clock[1] * 1000 + math.floor(clock[2] / 1000) - tonumber(ARGV[3])
  local floor = math.max(after + 1, top - tonumber(ARGV[5]) + 1)
  local raw
  if most > 0 then
    local newest = redis.call('XREVRANGE', KEYS[2], '+', floor .. '-0', 'COUNT', most)
    raw = {}
    for i = #newest, 1, -1 do raw[#raw + 1] = newest[i] end
  else
    raw = redis.call('XRANGE', KEYS[2], floor .. '-0', '+')
  end
  for _, item in ipairs(raw) do
    local fields = item[2]
    if fields[1] == 'm' and tonumber(string.match(item[1], '-(%d+)$')) >= oldest then
      entries[#entries + 1] = {item[1], fields[2]}
    end
  end
end
return {epoch, top, entries}
"""


DEADLINE_MS = (PUBLISH_TIMEOUT - 0.5) * 1000
"""How long after it was sent Redis may still take a batch: half a second less than the
publisher waits, so that a batch Redis took is answered before the publisher gives up."""


MOVING_PAUSE = 0.1
"""Seconds between tries of an append whose slot is being moved (resharding, failover)."""


@dataclass(frozen=True, slots=True)
class StreamState:
    """A room's stream as read: epoch, newest offset, oldest kept offset of those asked for
    (top + 1 when none is), and the kept messages after the position asked about."""

    epoch: str
    top: int
    first: int
    entries: tuple[RoomMessage, ...]


@dataclass(slots=True)
class _Pending:
    """An event being appended: its copies' positions so far, and how it ended."""

    event: Outgoing
    payload_json: str
    """The envelope as JSON without ``positions`` (each copy's are written into it)."""
    packet_head: str
    """The Socket.IO packet's text up to the payload's positions."""
    accepted_ms: int
    positions: list[str] = field(default_factory=list)
    """``epoch:offset`` per room appended so far."""
    members: list[str] = field(default_factory=list)
    """The payload's ``positions`` members so far (``"room":{...}``)."""
    error: BaseException | None = None


class RoomStreams:
    """Publishes events into rooms' streams and channels, and reads them back, on one client
    (its connections are remade by redis-py when Redis comes back). A batch is bounded by
    PUBLISH_TIMEOUT; readers bound their reads as they need."""

    def __init__(self, redis: AnyRedis, prefix: str, history: HistorySettings, *, url: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._url = safe_url(url)
        self._size = history.size
        self._ttl_ms = history.ttl * 1000
        self._append = redis.register_script(_APPEND)
        self._window = redis.register_script(_WINDOW)
        self._waiting: list[tuple[Sequence[Outgoing], asyncio.Future[list[BaseException | None]], float]] = []
        """What was published and not yet sent: the events, their outcome, when they came."""
        self._sender: asyncio.Task[None] | None = None
        self._skew_ms: float | None = None
        """Redis's clock minus this process's, at least (for deadlines: ``_clock``)."""
        self._best_round_trip = 0.0
        self._learned_at = 0.0

    def keys(self, room: str) -> list[str]:
        """The room's meta hash (epoch, newest offset, age mark) and its stream, in the room's slot."""
        return [f"{{{self.prefix}:{room}}}:meta", f"{{{self.prefix}:{room}}}:stream"]

    def channel(self, room: str) -> str:
        """The room's shard channel, in the room's slot."""
        return f"{{{self.prefix}:{room}}}:events"

    async def publish(self, events: Sequence[Outgoing]) -> list[BaseException | None]:
        """Append each event to its rooms' streams and send it on their channels; per event,
        None once every room has it, or why not (RedisUnavailable). Whatever is published in
        the same turn of the loop goes out together."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[list[BaseException | None]] = loop.create_future()
        self._waiting.append((events, done, time.monotonic()))
        if self._sender is None or self._sender.done():
            self._sender = loop.create_task(self._send_waiting())
        return await asyncio.shield(done)

    async def _send_waiting(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            pending = [_pending(event) for events, _, _ in batch for event in events]
            await self._send(pending, since=min(came for _, _, came in batch))
            start = 0
            for events, done, _ in batch:
                end = start + len(events)
                if not done.done():
                    done.set_result([item.error for item in pending[start:end]])
                start = end

    async def _send(self, pending: list[_Pending], *, since: float) -> None:
        """Append every pending event, within PUBLISH_TIMEOUT of ``since`` (when the oldest
        was published: waiting for the batch before counts); a failure is its event's. One
        Redis takes the whole batch in one script: each event reaches all its rooms or none.
        On a Redis Cluster an event's rooms are appended in rounds (their slots are on several
        masters), so a failure between two rounds leaves the event in its first rooms only."""
        started = time.monotonic()
        waited = started - since
        # Redis refuses an append that arrives after this, rather than take an event whose
        # publisher was already told it failed (a paused or stalled Redis catching up late).
        deadline = (
            0 if self._skew_ms is None else round((time.time() - waited) * 1000 + self._skew_ms + DEADLINE_MS)
        )
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT - waited):
                for round_ in _rounds(pending, cluster=isinstance(self.redis, RedisCluster)):
                    await self._send_round(round_, deadline)
        except Exception as exc:
            error = RedisUnavailable(
                f"Redis at {self._url} did not take the events within"
                f" {time.monotonic() - since:.1f} s: {type(exc).__name__}: {exc}"
            )
            error.__cause__ = exc
            for item in pending:
                if item.error is None and len(item.positions) < len(item.event.rooms):
                    item.error = error

    async def _send_round(self, round_: list[tuple[_Pending, int]], deadline: int) -> None:
        """One pipeline: per hash slot (one Redis: all of them), one script appending its
        copies in order; with history off, one SPUBLISH per copy."""
        todo = [(item, index) for item, index in round_ if item.error is None]
        while todo:
            pipe = self.redis.pipeline(transaction=False)
            groups = self._groups(todo)
            for group in groups:
                self._queue(pipe, group, deadline)
            sent = time.time() * 1000
            results = await pipe.execute(raise_on_error=False)
            received = time.time() * 1000
            todo = []
            moving = reload = False
            for group, result in zip(groups, results, strict=True):
                if isinstance(result, NoScriptError):
                    todo += group
                    reload = True
                elif isinstance(result, TryAgainError | ClusterError):
                    # A slot moving or a cluster reconfiguring: the script did not run. Tried
                    # again until the batch's time is up (its deadline keeps a late run out).
                    todo += group
                    moving = True
                elif isinstance(result, Exception):
                    error = RedisUnavailable(f"Redis at {self._url} refused an append: {result}")
                    error.__cause__ = result
                    for item, _ in group:
                        item.error = error
                elif not self._size:
                    group[0][0].positions.append("")  # sent; with history off there is no position
                else:
                    self._clock(int(result[0]), sent, received)
                    self._appended(group, result[1:])
            if reload:  # Redis restarted, or a new master: its script cache is empty
                await self.redis.script_load(_APPEND)
            if moving:
                await asyncio.sleep(MOVING_PAUSE)

    def _clock(self, redis_ms: int, sent: float, received: float) -> None:
        """Learn Redis's clock from an answer: it read ``redis_ms`` between ``sent`` and
        ``received`` (ms, here). The skew taken is its lower bound (Redis's time minus the
        answer's arrival), so that a deadline is never later than meant; from the quickest
        answer of the last minute, so that one slow answer does not make deadlines early."""
        round_trip = received - sent
        if (
            self._skew_ms is None
            or round_trip <= self._best_round_trip
            or received - self._learned_at > 60_000
        ):
            self._skew_ms = redis_ms - received
            self._best_round_trip = round_trip
            self._learned_at = received

    def _groups(self, copies: list[tuple[_Pending, int]]) -> list[list[tuple[_Pending, int]]]:
        """The copies by what one command may hold: one Redis takes keys of any slot in one
        script; a Redis Cluster one slot's. With history off, a copy each."""
        if not self._size:
            return [[copy] for copy in copies]
        if not isinstance(self.redis, RedisCluster):
            return [copies]
        groups: dict[int, list[tuple[_Pending, int]]] = {}
        for item, index in copies:
            slot = key_slot(self.keys(item.event.rooms[index])[0].encode())
            groups.setdefault(slot, []).append((item, index))
        return list(groups.values())

    def _queue(self, pipe: Any, group: list[tuple[_Pending, int]], deadline: int) -> None:
        if not self._size:
            [(item, index)] = group
            event = item.event
            message = without_positions(event.event, item.accepted_ms, index, event.rooms, item.payload_json)
            pipe.spublish(self.channel(event.rooms[index]), message)
            return
        keys: list[str] = []
        args: list[bytes | str | int] = [self._size, self._ttl_ms, len(self.prefix), new_epoch(), deadline]
        previous: _Pending | None = None
        for item, index in group:
            event = item.event
            keys += self.keys(event.rooms[index])
            args.append(
                header_head(event.event, item.accepted_ms, index, event.rooms)
                + "".join(position + "," for position in item.positions).encode()
            )
            args.append(item.packet_head + "".join(member + "," for member in item.members))
            args.append(1 if item is previous else 0)
            previous = item
        pipe.execute_command("EVALSHA", self._append.sha, len(keys), *keys, *args)

    def _appended(self, group: list[tuple[_Pending, int]], result: Any) -> None:
        """Note each copy's position."""
        for (item, index), epoch, offset in zip(group, result[::2], result[1::2], strict=True):
            epoch = epoch.decode() if isinstance(epoch, bytes) else epoch
            item.positions.append(f"{epoch}:{offset}")
            room = item.event.rooms[index]
            item.members.append(f'"{room}":{{"epoch":"{epoch}","offset":{int(offset)}}}')

    async def read(self, room: str, after: int | None, *, most: int = 0, look: bool = False) -> StreamState:
        """The room's stream now and, given an offset, the kept messages after it (the ``most``
        newest of them, if given). A room without history gets one (an epoch), unless this
        is only a ``look``: then its epoch reads as empty."""
        epoch, top, raw = await self._window(
            keys=self.keys(room),
            args=[
                "" if look else new_epoch(),
                -1 if after is None else after,
                self._ttl_ms,
                most,
                self._size,
            ],
        )
        entries = tuple(RoomMessage(message) for _, message in raw)
        first = int(raw[0][0].split(b"-")[0]) if raw else int(top) + 1
        return StreamState(epoch.decode() if isinstance(epoch, bytes) else epoch, int(top), first, entries)


def _pending(event: Outgoing) -> _Pending:
    payload_json = event.payload_json()
    return _Pending(event, payload_json, packet_head(event.event, payload_json), round(event.accepted * 1000))


def _rounds(pending: list[_Pending], *, cluster: bool) -> list[list[tuple[_Pending, int]]]:
    """The copies to append, in rounds. One Redis: one round, event by event, room by room
    (the script carries an event's positions from one of its rooms to the next). A Redis
    Cluster: an event's rooms in successive rounds (each copy carries the positions of the
    ones before), and a room's copies in the batch's order (within a round, a pipeline keeps
    the order they were queued in)."""
    if not cluster:
        return [[(item, index) for item in pending for index in range(len(item.event.rooms))]]
    rounds: list[list[tuple[_Pending, int]]] = []
    last: dict[str, int] = {}
    for item in pending:
        current = -1
        for index, room in enumerate(item.event.rooms):
            current = max(current + 1, last.get(room, 0))
            last[room] = current
            while len(rounds) <= current:
                rounds.append([])
            rounds[current].append((item, index))
    return rounds

"""Per-room channels: this instance hears the events of the rooms it has members in, no others.

A room is subscribed (SSUBSCRIBE on its shard channel, server/streams.py) when it gets its
first local member, and unsubscribed by a sweep after its last has gone. Subscriptions asked
for in one turn of the event loop go out as one command per shard, so a connect storm is not
a subscribe storm, and a join waits until its room's subscription is confirmed: from then on
every event of the room reaches this instance.

Each shard (the one Redis, or each master of a Redis Cluster) has one pub/sub connection and
one reader task. The reader delivers a room's events in offset order and once: it remembers
the last ``(epoch, offset)`` it delivered per room, drops what is at or below it, and when an
offset skips ahead (the connection was lost, Redis restarted) it first reads the missed events
from the room's stream. After a reconnection it resubscribes and catches every room up from
its stream before it counts as ready again (``ready``, behind ``/ready``); nothing accepted is
skipped. A room whose history was lost (a new epoch) can only be delivered from the new
epoch's start: clients see the new epoch and refetch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Container
from dataclasses import dataclass, field

from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from swe_realtime import tasks
from swe_realtime.redis_connection import PUBLISH_TIMEOUT, node_client
from swe_realtime.redis_health import RedisHealth
from swe_realtime.streams import ChannelMessage, RoomStreams

SWEEP_SECONDS = 1.0
"""How often rooms without local members are unsubscribed (in one command per shard)."""
MAX_BACKOFF = 5.0

Deliver = Callable[[ChannelMessage], Awaitable[None]]

_log = logging.getLogger("swe_realtime.redis")


@dataclass(slots=True)
class _Shard:
    """One pub/sub connection and the rooms subscribed through it."""

    address: str
    rooms: dict[str, asyncio.Future[None]] = field(default_factory=dict)
    """Subscribed (or asked for) rooms; a future done once the subscription is confirmed."""
    unconfirmed: set[str] = field(default_factory=set)
    """Rooms (re)subscribed whose confirmation and catch-up are still to come."""
    pubsub: PubSub | None = None
    reader: asyncio.Task[None] | None = None
    connected: bool = False
    failing: bool = False
    """The connection broke and is not back yet: joins do not wait for confirmations."""


class RoomChannels:
    """This instance's room subscriptions, and in-order, once-only delivery of their events."""

    def __init__(self, streams: RoomStreams, deliver: Deliver, health: RedisHealth) -> None:
        self._redis = streams.redis
        self._streams = streams
        self._fan_out = deliver
        self._health = health
        self._shards: dict[str, _Shard] = {}
        self._channel_rooms: dict[str, str] = {}
        self._last: dict[str, tuple[str, int]] = {}
        """Per room, the ``(epoch, offset)`` last delivered on this instance."""
        self._asked: dict[str, set[str]] = {}
        """Per shard, rooms to subscribe at the end of this turn of the loop."""
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        """Every shard connected and caught up (true while nothing is subscribed)."""
        return all(shard.connected and not shard.unconfirmed for shard in self._shards.values())

    def subscribed(self) -> set[str]:
        return {room for shard in self._shards.values() for room in shard.rooms}

    async def want(self, room: str) -> None:
        """Subscribe ``room`` if it is not; return once its events reach this instance. While
        Redis is away it returns at once (or after PUBLISH_TIMEOUT), having noted the room's
        position when it can, so that the reconnection catches the room up from there."""
        try:
            shard = await self._shard_of(room)
        except Exception as exc:  # no cluster map (Redis away at start): a later join retries
            self._health.failed(exc)
            return
        confirmed = shard.rooms.get(room)
        if confirmed is None:
            confirmed = shard.rooms[room] = asyncio.get_running_loop().create_future()
            self._channel_rooms[self._streams.channel(room)] = room
            batch = self._asked.setdefault(shard.address, set())
            if not batch:
                asyncio.get_running_loop().call_soon(self._flush, shard)
            batch.add(room)
        if not shard.failing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(confirmed), PUBLISH_TIMEOUT)
        if not confirmed.done() and room not in self._last:
            # The member reads its position next; the confirmation must catch up from no
            # later than that, not start from the top it finds then.
            with contextlib.suppress(Exception):
                state = await asyncio.wait_for(self._streams.read(room, None), PUBLISH_TIMEOUT)
                self._last.setdefault(room, (state.epoch, state.top))

    def start(self, members: Callable[[], Container[str]]) -> None:
        """Begin sweeping: rooms not in ``members()`` (rooms with local members) are left."""
        self._sweeper = asyncio.create_task(self._sweep_forever(members))

    async def stop(self) -> None:
        await tasks.stop([self._sweeper, *(shard.reader for shard in self._shards.values())])
        for shard in self._shards.values():
            if shard.pubsub is not None:
                await shard.pubsub.aclose()  # type: ignore[no-untyped-call]  # unannotated upstream

    # -- subscriptions -------------------------------------------------------------------------

    async def _shard_of(self, room: str) -> _Shard:
        channel = self._streams.channel(room)
        if isinstance(self._redis, RedisCluster):
            if not self._redis.nodes_manager.slots_cache:
                await self._redis.initialize()
            node = self._redis.get_node_from_key(channel)
            if node is None:
                raise ConnectionError(f"no Redis Cluster node serves {channel}")
            address = node.name
        else:
            address = "redis"
        shard = self._shards.get(address)
        if shard is None:
            shard = self._shards[address] = _Shard(address)
            shard.reader = asyncio.create_task(self._read_forever(shard))
        return shard

    def _flush(self, shard: _Shard) -> None:
        if shard.pubsub is None or not shard.connected:
            return  # the reader subscribes every room of the shard when it (re)connects
        rooms = self._asked.pop(shard.address, set())
        if rooms:
            channels = [self._streams.channel(room) for room in rooms]
            for group in self._by_slot(channels):
                asyncio.create_task(self._command(shard, shard.pubsub.ssubscribe(*group)))  # noqa: RUF006

    def _by_slot(self, channels: list[str]) -> list[list[str]]:
        """Channels grouped so that one command holds one hash slot's: a Redis Cluster refuses
        a sharded (un)subscribe across slots (CROSSSLOT), even on one master."""
        if not isinstance(self._redis, RedisCluster):
            return [channels]
        groups: dict[int, list[str]] = {}
        for channel in channels:
            groups.setdefault(key_slot(channel.encode()), []).append(channel)
        return list(groups.values())

    async def _command(self, shard: _Shard, command: Awaitable[object]) -> None:
        try:
            await command
        except Exception as exc:  # the reader notices the broken connection and reconnects
            self._health.failed(exc)

    async def _sweep_forever(self, members: Callable[[], Container[str]]) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                await self._sweep(members())
            except Exception:  # a sweep that fails is tried again next time
                _log.exception("sweeping room subscriptions failed")

    async def _sweep(self, local: Container[str]) -> None:
        """Unsubscribe the confirmed rooms without a local member, one command per shard."""
        for shard in list(self._shards.values()):
            gone = [
                room
                for room in shard.rooms
                if room not in local and shard.rooms[room].done() and room not in shard.unconfirmed
            ]
            for room in gone:
                del shard.rooms[room]
                self._last.pop(room, None)
                self._channel_rooms.pop(self._streams.channel(room), None)
            if gone and shard.pubsub is not None and shard.connected:
                channels = [self._streams.channel(room) for room in gone]
                for group in self._by_slot(channels):
                    await self._command(shard, shard.pubsub.sunsubscribe(*group))

    # -- reading -------------------------------------------------------------------------------

    async def _read_forever(self, shard: _Shard) -> None:
        backoff = 0.5
        while shard.rooms:  # a shard left without rooms closes; the next want() makes a new one
            try:
                await self._connect(shard)
                backoff = 0.5
                while True:
                    assert shard.pubsub is not None
                    message = await shard.pubsub.get_message(timeout=None)
                    if message is not None:
                        await self._on_message(shard, message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the connection is gone whatever the error: reconnect
                shard.connected = False
                shard.failing = True
                self._health.failed(exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                await self._regroup(shard)
        if self._shards.get(shard.address) is shard:
            del self._shards[shard.address]
        if shard.pubsub is not None:
            with contextlib.suppress(Exception):
                await shard.pubsub.aclose()  # type: ignore[no-untyped-call]  # unannotated upstream

    async def _regroup(self, shard: _Shard) -> None:
        """On a Redis Cluster, hand the shard's rooms whose slot another master serves now
        (failover, resharding) to that master's shard, keeping what they delivered last."""
        if not isinstance(self._redis, RedisCluster):
            return
        with contextlib.suppress(Exception):
            await self._redis.nodes_manager.initialize()
        for room in list(shard.rooms):
            node = self._redis.get_node_from_key(self._streams.channel(room))
            if node is not None and node.name != shard.address:
                shard.rooms.pop(room)
                shard.unconfirmed.discard(room)
                await self.want(room)

    async def _connect(self, shard: _Shard) -> None:
        """A new pub/sub connection, subscribed to every room of the shard; each room is
        caught up from its stream when its confirmation comes (``_on_message``)."""
        if shard.pubsub is not None:
            with contextlib.suppress(Exception):
                await shard.pubsub.aclose()  # type: ignore[no-untyped-call]  # unannotated upstream
        shard.pubsub = node_client(self._redis, shard.address).pubsub()
        subscribed: set[str] = set()
        while missing := set(shard.rooms) - subscribed:  # rooms asked for meanwhile too
            shard.unconfirmed |= missing
            for group in self._by_slot([self._streams.channel(room) for room in missing]):
                await shard.pubsub.ssubscribe(*group)
            subscribed |= missing
        self._asked.pop(shard.address, None)
        shard.connected = True

    async def _on_message(self, shard: _Shard, message: dict[str, object]) -> None:
        kind = message["type"]
        room = self._channel_rooms.get(_text(message["channel"]))
        if room is None or room not in shard.rooms:
            return  # swept meanwhile: its messages and confirmations are moot
        if kind == "ssubscribe":
            await self._confirmed(shard, room)
        elif kind == "sunsubscribe" and shard.rooms[room].done():
            # Not asked for: the slot moved to another master. Reconnecting regroups the rooms.
            raise ConnectionError(f"Redis dropped the subscription of {room}: its slot moved")
        elif kind == "smessage":
            data = message["data"]
            assert isinstance(data, bytes)
            try:
                parsed = ChannelMessage.parse(data)
            except (ValueError, KeyError, TypeError) as exc:
                _log.warning("dropped an unreadable message on %s's channel: %.120s", room, exc)
                return
            await self._accept(parsed)

    async def _confirmed(self, shard: _Shard, room: str) -> None:
        """The room's events now reach this instance: catch up what came since the last one
        delivered, or, on a first subscription, start from the room's top (whoever joins reads
        its position after this, so nothing up to the top is owed to anyone live)."""
        if room in self._last:
            await self._catch_up(room)
        else:
            state = await self._streams.read(room, None)
            self._last[room] = (state.epoch, state.top)
        shard.unconfirmed.discard(room)
        if not shard.unconfirmed:
            shard.failing = False
            self._health.succeeded()
        future = shard.rooms[room]
        if not future.done():
            future.set_result(None)

    async def _accept(self, message: ChannelMessage) -> None:
        """Deliver ``message`` unless already delivered; first what it skipped over."""
        position = message.payload.get("positions", {}).get(message.room)
        if position is None:  # history off: nothing to order by
            await self._deliver(message)
            return
        epoch, offset = position["epoch"], position["offset"]
        last = self._last.get(message.room)
        if last is not None and (last[0] != epoch or offset > last[1] + 1):
            await self._catch_up(message.room)
            last = self._last.get(message.room)
        if last is not None and last[0] == epoch and offset <= last[1]:
            return
        self._last[message.room] = (epoch, offset)
        await self._deliver(message)

    async def _deliver(self, message: ChannelMessage) -> None:
        """Fan one copy out; a failure there is this message's, not the connection's."""
        try:
            await self._fan_out(message)
        except Exception:
            _log.exception("delivering %s to %s failed", message.event, message.room)

    async def _catch_up(self, room: str) -> None:
        """Deliver the room's stored events after the last one delivered here. When the room's
        history was lost meanwhile (a new epoch), what there is starts the new epoch."""
        last_epoch, last_offset = self._last[room]
        state = await asyncio.wait_for(self._streams.read(room, last_offset), PUBLISH_TIMEOUT)
        if state.epoch == last_epoch and state.top < last_offset:
            # Redis went back in time (restored from a snapshot, or a lagging replica took
            # over): the offsets ahead are reused. Follow the stream from where it stands.
            _log.warning("%s's history went back from offset %d to %d", room, last_offset, state.top)
            self._last[room] = (state.epoch, state.top)
            return
        if state.epoch != last_epoch:
            state = await asyncio.wait_for(self._streams.read(room, 0), PUBLISH_TIMEOUT)
        for entry in state.entries:
            self._last[room] = (state.epoch, entry.payload["positions"][room]["offset"])
            await self._deliver(ChannelMessage(entry.event, list(entry.rooms), room, entry.payload))
        if not state.entries and state.epoch != last_epoch:
            self._last[room] = (state.epoch, 0)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

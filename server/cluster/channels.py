"""Per-room channels: this instance hears the events of the rooms it has members in, no others.

A room is subscribed (SSUBSCRIBE on its shard channel, server/cluster/streams.py) when it gets its
first local member, and unsubscribed by a sweep (ROOM_SWEEP_INTERVAL) after its last has
gone. A join waits until its room's subscription is confirmed: from then on every event of
the room reaches this instance. One not confirmed in time while Redis answers fails the join
(the client's subscribe is answered SERVICE_UNAVAILABLE), never silently.

Each shard (the one Redis, or each master of a Redis Cluster) has one pub/sub connection,
owned by one task (server/cluster/pubsub.py), which sends the subscriptions asked for in one go and
hands this module the shard's messages one at a time, in order. Delivery is in offset order
and once: per room, the last ``(epoch, offset)`` delivered is kept, what is at or below it is
dropped, and when an offset skips ahead (the connection was lost, Redis restarted) the missed
messages are read from the room's stream first. After a reconnection every room is
subscribed again and caught up from its stream before the instance counts as ready again
(``ready``, behind ``/ready``); nothing accepted is skipped. A room whose history was lost (a
new epoch) can only be delivered from the new epoch's start: clients see the new epoch and
refetch.

What is delivered is the message as the publisher wrote it (server/publish/message.py): this
instance reads its header, never its JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Container
from dataclasses import dataclass

from redis.asyncio.cluster import RedisCluster

from swe_realtime import background
from swe_realtime.cluster.connection import PUBLISH_TIMEOUT
from swe_realtime.cluster.health import RedisHealth
from swe_realtime.cluster.pubsub import PubSubLink, address_of
from swe_realtime.cluster.streams import RoomStreams
from swe_realtime.errors import SubscriptionUnavailable
from swe_realtime.publish.message import RoomMessage

Deliver = Callable[[RoomMessage], Awaitable[None]]
MAX_REFUSED_PAUSE = 5.0
"""Seconds before a subscription Redis refused (not a moved slot) is asked for again."""

_log = logging.getLogger("swe_realtime.redis")


@dataclass(slots=True)
class _Room:
    name: str
    channel: bytes
    shard: _Shard
    confirmed: asyncio.Future[None]
    """Done once the room's events reach this instance (the first confirmation)."""
    last: tuple[str, int] | None = None
    """``(epoch, offset)`` last delivered here; None before the first event."""


class _Shard:
    """One Redis node's pub/sub link and what it reports about this instance's rooms."""

    def __init__(self, owner: RoomChannels, name: str, interval: float) -> None:
        self.name = name
        self._owner = owner
        redis = owner.redis
        cluster = isinstance(redis, RedisCluster)
        self.link = PubSubLink(
            lambda: address_of(redis, name if cluster else None), self, interval=interval, by_slot=cluster
        )
        self.failing = False
        """The connection broke and is not back yet: joins do not wait for confirmations."""
        self.part = f"pub/sub connection to {name}"
        """What this shard is called in RedisHealth while it cannot connect."""

    async def message(self, channel: bytes, data: bytes) -> None:
        room = self._owner.room_of(channel, self)
        if room is not None:
            await self._owner.offer(room, data)

    async def subscribed(self, channel: bytes) -> None:
        room = self._owner.room_of(channel, self)
        if room is not None:
            await self._owner.confirmed(room)

    async def dropped(self, channels: list[bytes], why: str) -> None:
        await self._owner.regroup(self, channels, why)

    async def up(self) -> None:
        self.failing = False
        self._owner.health.succeeded(self.part)
        self._owner.check_health()

    async def down(self, error: BaseException, *, was_up: bool) -> None:
        self.failing = True
        await self._owner.lost(self, error, was_up=was_up)


class RoomChannels:
    """This instance's room subscriptions, and in-order, once-only delivery of their events."""

    def __init__(
        self,
        streams: RoomStreams,
        deliver: Deliver,
        health: RedisHealth,
        *,
        sweep: float,
        health_check: float,
        subscribe_timeout: float = PUBLISH_TIMEOUT,
    ) -> None:
        self.redis = streams.redis
        self._streams = streams
        self._fan_out = deliver
        self.health = health
        self._sweep_interval = sweep
        self._health_check = health_check
        self._subscribe_timeout = subscribe_timeout
        self._shards: dict[str, _Shard] = {}
        self._rooms: dict[str, _Room] = {}
        self._channels: dict[bytes, _Room] = {}
        self._stale: set[str] = set()
        """Rooms that were delivering and lost their subscription: caught up once it is back."""
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        """Every shard connected and every room caught up (true while nothing is subscribed)."""
        return not self._stale and all(shard.link.up for shard in self._shards.values())

    async def want(self, room: str) -> None:
        """Subscribe ``room`` if it is not; return once its events reach this instance.

        While the room's shard is away it returns at once, having noted the room's position
        when it can, so that the reconnection catches the room up from there. RedisUnavailable
        when Redis answers but did not confirm the subscription in time."""
        state = self._rooms.get(room)
        if state is None:
            try:
                shard = await self._shard_of(room)
            except Exception as exc:  # no cluster map at all (every node away at start)
                self.health.failed(exc)
                raise SubscriptionUnavailable(
                    f"no Redis Cluster node is known to serve {room} yet; retry later"
                ) from None
            # Another join of the room may have added it while the map was read.
            state = self._rooms.get(room) or self._add(room, shard)
        if state.confirmed.done():
            return
        if not state.shard.failing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(state.confirmed), self._subscribe_timeout)
                return
            if not state.shard.failing:
                raise SubscriptionUnavailable(
                    f"Redis did not confirm the subscription of {room} within {self._subscribe_timeout:g} s;"
                    " retry later"
                )
        if state.last is None:
            # The member reads its position next; the confirmation must catch up from no
            # later than that, not start from the top it finds then.
            with contextlib.suppress(Exception):
                found = await asyncio.wait_for(self._streams.read(room, None), PUBLISH_TIMEOUT)
                if state.last is None and self._rooms.get(room) is state:
                    state.last = (found.epoch, found.top)
                    self._stale.add(room)

    def start(self, members: Callable[[], Container[str]], also: Callable[[], Awaitable[None]]) -> None:
        """Begin sweeping: rooms not in ``members()`` (rooms with local members) are left,
        and ``also`` is run (the fan-out's own sweep)."""
        self._sweeper = asyncio.create_task(self._sweep_forever(members, also))

    async def stop(self) -> None:
        await background.stop([self._sweeper])
        for shard in self._shards.values():
            await shard.link.stop()

    # -- what the shards report ------------------------------------------------------------

    def room_of(self, channel: bytes, shard: _Shard) -> _Room | None:
        room = self._channels.get(channel)
        return room if room is not None and room.shard is shard else None

    async def confirmed(self, room: _Room) -> None:
        """The room's events reach this instance (again): catch up what came since the last
        one delivered, or on a first subscription note the room's position (its top): a
        reconnection later catches up from there even if no event came meanwhile, and
        nothing up to it is owed to anyone (whoever joins reads its position after this)."""
        if room.last is None:
            try:
                found = await asyncio.wait_for(self._streams.read(room.name, None), PUBLISH_TIMEOUT)
            except Exception as exc:
                self.health.failed(exc)
                room.shard.link.reconnect(f"the position of {room.name} could not be read: {exc}")
                return
            if room.last is None:
                room.last = (found.epoch, found.top)
        elif not await self._catch_up(room):
            return
        self._stale.discard(room.name)
        if not room.confirmed.done():
            room.confirmed.set_result(None)
        self.check_health()

    def check_health(self) -> None:
        if self.ready:
            self.health.succeeded()

    async def lost(self, shard: _Shard, error: BaseException, *, was_up: bool) -> None:
        """A shard's connection failed: its delivering rooms are caught up when it is back,
        and on a Redis Cluster the rooms whose slot another master serves now (a failover)
        move there. A connection that broke is said once, at WARNING; one that cannot be
        opened is Redis away (RedisHealth says so, once)."""
        rooms = [room for room in self._rooms.values() if room.shard is shard]
        if was_up:
            _log.warning(
                "the pub/sub connection to %s broke (%s: %s); its %d room(s) are subscribed again"
                " and caught up from their streams",
                shard.name,
                type(error).__name__,
                error,
                len(rooms),
            )
        else:
            self.health.failed(error, shard.part)
        self._stale.update(room.name for room in rooms if room.last is not None)
        if isinstance(self.redis, RedisCluster):
            await self._refresh_map()
            moved = [
                room
                for room in self._rooms.values()
                if room.shard is shard and self._node(room) != shard.name
            ]
            await self._move(moved)

    async def regroup(self, shard: _Shard, channels: list[bytes], why: str) -> None:
        """Redis refused or ended some subscriptions of ``shard``: subscribe them where their
        slot is served now (after a pause, lest a stale map make this a busy loop)."""
        rooms = [room for channel in channels if (room := self.room_of(channel, shard)) is not None]
        if not rooms:
            return
        if not isinstance(self.redis, RedisCluster):  # refused outright (an ACL): said, tried again
            _log.warning("Redis refused the subscription of %d room(s): %s", len(rooms), why)
            await asyncio.sleep(MAX_REFUSED_PAUSE)
        else:
            _log.info("%d room subscription(s) on %s moved: %s", len(rooms), shard.name, why)
            await asyncio.sleep(0.1)
            await self._refresh_map()
        for room in rooms:
            if room.last is not None:
                self._stale.add(room.name)
        await self._move(rooms, force=True)

    async def offer(self, room: _Room, data: bytes) -> None:
        """Deliver a message of ``room`` unless already delivered; first what it skipped over."""
        try:
            message = RoomMessage(data)
            position = message.position
        except (ValueError, IndexError, UnicodeDecodeError) as exc:
            _log.warning("dropped an unreadable message on %s's channel: %.120s", room.name, exc)
            return
        if position is not None:
            epoch, offset = position
            last = room.last
            if last is not None and (last[0] != epoch or offset > last[1] + 1):
                if not await self._catch_up(room):
                    return
                last = room.last
            if last is not None and last[0] == epoch and offset <= last[1]:
                return
            room.last = position
        await self._deliver(room, message)

    # -- subscriptions -----------------------------------------------------------------------

    def _add(self, room: str, shard: _Shard) -> _Room:
        channel = self._streams.channel(room).encode()
        state = _Room(room, channel, shard, asyncio.get_running_loop().create_future())
        self._rooms[room] = state
        self._channels[channel] = state
        shard.link.want(channel)
        return state

    async def _shard_of(self, room: str) -> _Shard:
        if isinstance(self.redis, RedisCluster):
            if not self.redis.nodes_manager.slots_cache:
                await self.redis.initialize()
            name = self._node_of(self._streams.channel(room))
        else:
            name = "redis"
        shard = self._shards.get(name)
        if shard is None:
            shard = self._shards[name] = _Shard(self, name, self._health_check)
            shard.link.start()
        return shard

    def _node_of(self, channel: str) -> str:
        assert isinstance(self.redis, RedisCluster)
        node = self.redis.get_node_from_key(channel)
        if node is None:
            raise ConnectionError(f"no Redis Cluster node serves {channel}")
        return str(node.name)

    def _node(self, room: _Room) -> str | None:
        with contextlib.suppress(Exception):
            return self._node_of(self._streams.channel(room.name))
        return None

    async def _refresh_map(self) -> None:
        assert isinstance(self.redis, RedisCluster)
        try:
            await asyncio.wait_for(self.redis.nodes_manager.initialize(), PUBLISH_TIMEOUT)
        except Exception as exc:  # every node away: the next failure tries again
            _log.info("could not read the Redis Cluster's slots: %s", exc)

    async def _move(self, rooms: list[_Room], *, force: bool = False) -> None:
        """Subscribe ``rooms`` on the shard serving their slot now (``force``: even if that is
        the one they are on: Redis dropped them there)."""
        for room in rooms:
            try:
                target = await self._shard_of(room.name)
            except Exception:  # no node for it now: the shard's next failure regroups again
                continue
            if target is room.shard and not force:
                continue
            room.shard.link.unwant([room.channel])
            room.shard = target
            target.link.want(room.channel)

    async def _sweep_forever(
        self, members: Callable[[], Container[str]], also: Callable[[], Awaitable[None]]
    ) -> None:
        while True:
            await asyncio.sleep(self._sweep_interval)
            try:
                self._sweep(members())
                await also()
            except Exception:  # a sweep that fails is tried again next time
                _log.exception("sweeping room subscriptions failed")
            await self._close_idle_shards()

    def _sweep(self, local: Container[str]) -> None:
        """Leave the rooms without a local member (each shard sends one command per slot)."""
        gone = [room for name, room in self._rooms.items() if name not in local]
        for room in gone:
            del self._rooms[room.name]
            del self._channels[room.channel]
            self._stale.discard(room.name)
            room.shard.link.unwant([room.channel])

    async def _close_idle_shards(self) -> None:
        """Close the links that serve no room (a master that failed over, a shard left empty)."""
        for name, shard in list(self._shards.items()):
            if not shard.link.wanted and not any(room.shard is shard for room in self._rooms.values()):
                del self._shards[name]
                await shard.link.stop()
                self.health.succeeded(shard.part)  # gone (a master that failed over): not failing

    # -- delivering --------------------------------------------------------------------------

    async def _deliver(self, room: _Room, message: RoomMessage) -> None:
        """Fan one copy out, if the room is still this instance's (a sweep may have left it
        while its stream was read, and a new member made it anew); a failure there is this
        message's, not the connection's."""
        if self._rooms.get(room.name) is not room:
            return
        try:
            await self._fan_out(message)
        except Exception:
            _log.exception("delivering %s to %s failed", message.event, message.room)

    async def _catch_up(self, room: _Room) -> bool:
        """Deliver the room's stored messages after the last one delivered here; False if the
        stream could not be read (the shard's connection is renewed: everything on it is
        subscribed and caught up again). When the room's history was lost meanwhile (a new
        epoch), what there is starts the new epoch."""
        assert room.last is not None
        last_epoch, last_offset = room.last
        try:
            state = await asyncio.wait_for(self._streams.read(room.name, last_offset), PUBLISH_TIMEOUT)
            if state.epoch == last_epoch and state.top < last_offset:
                # Redis went back in time (restored from a snapshot, or a lagging replica took
                # over): the offsets ahead are reused. Follow the stream from where it stands.
                _log.warning("%s's history went back from offset %d to %d", room.name, last_offset, state.top)
                room.last = (state.epoch, state.top)
                return True
            if state.epoch != last_epoch:
                state = await asyncio.wait_for(self._streams.read(room.name, 0), PUBLISH_TIMEOUT)
        except Exception as exc:
            self.health.failed(exc)
            room.shard.link.reconnect(f"{room.name} could not be caught up: {exc}")
            return False
        for message in state.entries:
            position = message.position
            assert position is not None
            if position[0] == last_epoch and position[1] <= last_offset:
                continue
            room.last = position
            await self._deliver(room, message)
        if room.last[0] != state.epoch:  # a new epoch with nothing kept: follow it from its top
            room.last = (state.epoch, state.top)
        return True

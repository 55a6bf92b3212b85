"""The client manager with Redis: joins subscribe rooms' channels, and each member gets one
copy of an event for several rooms.

A room's first local member subscribes this instance to the room's channel
(server/cluster/channels.py) before its join returns; a join whose subscription Redis does not
confirm is undone and refused. An event of several rooms arrives as one copy per room; the
ledger (server/delivery/several_rooms.py) sends each member the copy of the last of those rooms
it is in, and settles what it owed a member when it leaves a room or the copies come late.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from typing import Any

from swe_realtime.cluster.channels import RoomChannels
from swe_realtime.cluster.connection import PUBLISH_TIMEOUT
from swe_realtime.cluster.health import RedisHealth
from swe_realtime.cluster.streams import RoomStreams
from swe_realtime.delivery.fanout import FanoutManager, send_each
from swe_realtime.delivery.several_rooms import Delivery, Ledger
from swe_realtime.errors import SubscriptionUnavailable
from swe_realtime.events import NAMESPACE
from swe_realtime.protocol.engineio import SharedPacket
from swe_realtime.publish.message import RoomMessage

LEDGER_SECONDS = 2 * PUBLISH_TIMEOUT + 1
"""How long the copies of an event for several rooms may take to arrive one after the other
(a Redis Cluster appends them in rounds, each within PUBLISH_TIMEOUT)."""


class ChannelManager(FanoutManager):
    """The manager with Redis: the room channels it subscribes, and the ledger."""

    def __init__(
        self, streams: RoomStreams, health: RedisHealth, *, sweep: float, health_check: float
    ) -> None:
        super().__init__()
        self.channels = RoomChannels(streams, self.deliver, health, sweep=sweep, health_check=health_check)
        self.ledger = Ledger(ttl=LEDGER_SECONDS)

    async def entered(self, sid: str, namespace: str, room: Any, was_in: bool) -> None:
        try:
            await self.channels.want(room)
        except SubscriptionUnavailable:
            if not was_in:  # undo this join only, not an earlier one of the same room
                await self.leave_room(sid, namespace, room)
            raise

    async def left(self, sid: str, namespace: str, room: Any) -> None:
        await self._send_owed(self.ledger.left(sid, self._member))

    def disconnected(self, sid: str) -> None:
        self.ledger.gone(sid)

    def local_rooms(self, namespace: str) -> Container[str]:
        """The rooms with a member on this instance."""
        rooms: dict[str, Any] = self.rooms.get(namespace, {})
        return rooms

    async def deliver(self, message: RoomMessage) -> None:
        """Fan a room's copy of an event out to the room's members here, as the publisher
        framed it; for an event of several rooms, each member gets one copy, that of the last
        of them it is in (it holds all its positions): server/delivery/several_rooms.py."""
        frames = [SharedPacket.framed(message.frame, message.text)]
        participants = self.get_participants(NAMESPACE, message.room)
        deliveries: Iterable[Delivery]
        if message.several:
            rooms = self.rooms.get(NAMESPACE, {})
            deliveries = self.ledger.arrived(
                message.key,
                message.event,
                message.rooms,
                message.index,
                frames,
                participants,
                self._member,
                lambda name: bool(rooms.get(name)),
            )
        else:
            deliveries = ((sid, eio_sid, frames) for sid, eio_sid in participants)
        await send_each(
            self,
            deliveries,
            positions=lambda: message.positions,
            event=message.event,
            accepted=message.accepted,
        )

    async def expire(self) -> None:
        """Send what the ledger owed for events whose later copies did not come in time."""
        await self._send_owed(self.ledger.expire())

    async def _send_owed(self, owed: list[tuple[str, Delivery]]) -> None:
        """Send copies the ledger kept: late, past gates as an event without positions."""
        for event, delivery in owed:
            await send_each(self, [delivery], positions=lambda: None, event=event, accepted=None)

    def _member(self, sid: str, room: str) -> bool:
        return self.is_member(sid, NAMESPACE, room)

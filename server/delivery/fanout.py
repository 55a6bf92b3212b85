"""Emitting to a room without a task per recipient.

python-socketio's AsyncManager.emit encodes a packet once and then starts one asyncio task
per recipient to hand it over. Handing over is a put on the connection's unbounded
python-engineio queue, which never waits, so the tasks buy nothing but their own cost,
which dominated fan-out profiles (task creation and scheduling per delivery). Here the
packet is encoded (and framed: protocol/frames.py) once and handed to each recipient in a plain loop,
straight to the connection's frame writer where it has one. Emits that expect
acknowledgements keep the library's path.

Read against python-socketio 5.16.1 to 5.18.1 (the UPSTREAM table below): this replaces
``AsyncManager.emit`` for emits without a callback, reads the participants as
``BaseManager.get_participants`` yields them, encodes as the server's ``packet_class`` does,
enters rooms through ``AsyncManager.enter_room`` (ChannelManager subscribes there) and
leaves them through ``AsyncManager.leave_room`` (ChannelManager settles the copies an event
of several rooms owed the member there: server/delivery/several_rooms.py), and
hands packets over with our server's ``deliver`` (socketio.py: the slow-consumer check,
then the frame writer) or, for a session without a writer (long-polling), its
``_send_eio_packet``.

Rooms are plain dicts. python-socketio makes every room a ``bidict`` (two dicts, sid to
Engine.IO sid and back), though it reads the way back only in the namespace's ``None`` room
(``sid_from_eio_sid``, and the duplicate check of ``pre_connect``): a room of one member (each
connection's sid room, a room per user or project) costs 450 bytes as a bidict, 180 as a
dict. Here the ``None`` room stays upstream's bidict and every other room is a dict, made
in ``basic_enter_room`` (with upstream's checks, as 5.18 makes them) and read as a plain
mapping in ``get_participants``; upstream's other uses (``basic_leave_room``,
``is_sid_room``, ``get_rooms``) take either. ``members`` and ``named_rooms`` (the admin API,
the rooms gauge) read the same table, and rely on ``BaseManager.pre_connect`` putting every
sid in the ``None`` room and in a room of its own.

A disconnect leaves only its own rooms. ``BaseManager.basic_disconnect`` copies the
namespace's room table and scans every room for the sid: with a room of its own per
connection (the sid room, the user room, its subscriptions) that is O(connections) per
disconnect, O(n^2) for n clients leaving (1.4 ms of CPU each at 10,000 connections). The
manager here keeps each sid's rooms beside the table, updated where python-socketio
changes membership (``basic_enter_room``, ``basic_leave_room``, which ``basic_close_room``,
``connect`` and, from 5.18, ``pre_connect`` go through), and ``basic_disconnect`` leaves
those, then clears the sid's callbacks and pending states as upstream's does. What this
relies on spans ``BaseManager`` (and ``pre_connect`` exists only from 5.18): the UPSTREAM
entry is the whole class.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Container, Iterable, Iterator
from typing import Any, Protocol

import socketio
from engineio import packet as eio_packet
from socketio import packet

from swe_realtime.cluster.channels import RoomChannels
from swe_realtime.cluster.connection import PUBLISH_TIMEOUT
from swe_realtime.delivery.gate import Gate, Positions
from swe_realtime.delivery.several_rooms import Delivery, Ledger
from swe_realtime.errors import SubscriptionUnavailable
from swe_realtime.events import NAMESPACE
from swe_realtime.protocol import Upstream
from swe_realtime.protocol.engineio import SharedPacket
from swe_realtime.publish.message import RoomMessage
from swe_realtime.telemetry import metrics

LEDGER_SECONDS = 2 * PUBLISH_TIMEOUT + 1
"""How long the copies of an event for several rooms may take to arrive one after the other
(a Redis Cluster appends them in rounds, each within PUBLISH_TIMEOUT)."""

UPSTREAM = (
    Upstream(
        "python-socketio",
        "socketio.async_manager:AsyncManager.emit",
        {"5.16.1": "01ccd5b82b4f955e", "5.18.1": "01ccd5b82b4f955e"},
    ),
    Upstream(
        "python-socketio",
        "socketio.async_manager:AsyncManager.leave_room",  # ChannelManager: the ledger's leave
        {"5.16.1": "2af1184b4bec1ffa", "5.18.1": "2af1184b4bec1ffa"},
    ),
    Upstream(
        "python-socketio",
        "socketio.async_manager:AsyncManager.enter_room",
        {"5.16.1": "fc2bbb63043d4da9", "5.18.1": "fc2bbb63043d4da9"},
    ),
    Upstream(
        "python-socketio",
        "socketio.base_manager:BaseManager",
        {"5.16.1": "2eb78e0c5b73beb6", "5.18.1": "b393b4c05dbd88e2"},
    ),
    Upstream(
        "python-socketio",
        "socketio.base_manager:BaseManager.get_participants",
        {"5.16.1": "7d78ad681c95de5b", "5.18.1": "7d78ad681c95de5b"},
    ),
    Upstream(
        "python-socketio",
        "socketio.packet:Packet.__init__",
        {"5.16.1": "5fe2fa797e082c1d", "5.18.1": "5fe2fa797e082c1d"},
    ),
    Upstream(
        "python-socketio",
        "socketio.packet:Packet.encode",
        {"5.16.1": "513c45be75181da2", "5.18.1": "513c45be75181da2"},
    ),
)


def encode(server: Any, event: str, data: Any, namespace: str) -> list[SharedPacket]:
    """The Engine.IO packet of one event, encoded (and framed, protocol/frames.py) once for however many
    recipients. The gateway's events are JSON: python-socketio's search of the data for
    bytes (a binary packet) is skipped."""
    args = list(data) if isinstance(data, tuple) else [] if data is None else [data]
    encoded = server.packet_class(packet.EVENT, namespace=namespace, data=[event, *args], binary=False)
    return [SharedPacket(eio_packet.MESSAGE, encoded.encode())]


async def emit_to_participants(
    manager: Gated,
    event: str,
    data: Any,
    namespace: str,
    room: Any,
    skip_sid: Any,
) -> None:
    """Encode once, then queue the packet for every participant of ``room`` (a name or a list)."""
    if namespace not in manager.rooms:
        return
    positions = data.get("positions") if isinstance(data, dict) else None
    frames = encode(manager.server, event, data, namespace)
    skipped = skip_sid if isinstance(skip_sid, list) else [skip_sid]
    await send_each(
        manager,
        (
            (sid, eio_sid, frames)
            for sid, eio_sid in manager.get_participants(namespace, room)
            if sid not in skipped
        ),
        positions=lambda: positions,
        event=event,
        accepted=metrics.accepted_at(data),
    )


async def send_each(
    manager: Gated,
    deliveries: Iterable[Delivery],
    *,
    positions: Callable[[], Positions],
    event: str,
    accepted: float | None,
) -> None:
    """Queue each delivery's encoded frames for its member, past the gate of a connection
    that is catching up on missed events (``positions``, read only then, are the event's)."""
    gates = manager.gates
    deliver = manager.server.deliver
    send = manager.server._send_eio_packet
    recipients = 0
    for sid, eio_sid, frames in deliveries:
        if gates:
            gate = gates.get(sid)
            if gate is not None and not gate.admit(positions(), frames):
                if gate.held is not None and len(gate.held) > manager.server.max_queued_packets:
                    # A replay the client reads too slowly: what waits behind it counts too.
                    manager.server.drop_slow(eio_sid, "live events held behind a replay")
                continue
            if gate is not None and gate.idle:
                del gates[sid]
        recipients += 1
        for frame in frames:
            if not deliver(eio_sid, frame):
                await send(eio_sid, frame)
    metrics.delivered(event, accepted, recipients)


class Gated(Protocol):
    """A client manager that fans out through :func:`emit_to_participants`."""

    rooms: dict[str, Any]
    server: Any
    gates: dict[str, Gate]
    """The gates of connections catching up (server/delivery/gate.py), by sid."""

    def get_participants(self, namespace: str, room: Any) -> Iterable[tuple[str, str]]: ...


class FanoutManager(socketio.AsyncManager):  # type: ignore[misc]
    """The in-memory manager, with the task-free emit and a disconnect in O(its rooms)."""

    def __init__(self) -> None:
        super().__init__()
        self.gates: dict[str, Gate] = {}
        self.rooms_of: dict[str, tuple[Any, ...]] = {}
        """The rooms of each sid in ``rooms`` (None and its own among them). A tuple: rooms
        change rarely, and a small tuple is a third of a set's size. Keyed by sid alone:
        python-socketio draws a new random sid for each namespace a session joins."""

    def members(self, namespace: str, room: str) -> Collection[str]:
        """The sids in ``room`` on this instance (a live view: copy it before awaiting)."""
        members: dict[str, str] = self.rooms.get(namespace, {}).get(room, {})
        return members.keys()

    def named_rooms(self, namespace: str) -> int:
        """How many rooms have a member here, python-socketio's own aside (``None``, which
        holds every sid, and each sid's room of its own)."""
        rooms = self.rooms.get(namespace, {})
        return len(rooms) - (1 + len(rooms[None]) if None in rooms else 0)

    def basic_enter_room(self, sid: str, namespace: str, room: Any, eio_sid: str | None = None) -> None:
        if room is None:  # the namespace's sids: upstream's bidict
            super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        else:
            if eio_sid is None and namespace not in self.rooms:
                raise ValueError("sid is not connected to requested namespace")
            rooms = self.rooms.setdefault(namespace, {})
            if sid != room and room in rooms.get(None, {}):
                raise ValueError("cannot enter a sid room")
            rooms.setdefault(room, {})[sid] = rooms[None][sid] if eio_sid is None else eio_sid
        joined = self.rooms_of.get(sid, ())
        if room not in joined:
            self.rooms_of[sid] = (*joined, room)

    def get_participants(self, namespace: str, room: Any) -> Iterator[tuple[str, str]]:
        """The members of ``room`` (or of each room of a list), as a copy taken now."""
        rooms = self.rooms.get(namespace, {})
        participants: dict[str, str] = {}
        for name in room if hasattr(room, "__len__") and not isinstance(room, str) else (room,):
            participants.update(rooms.get(name, {}))
        yield from participants.items()

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> None:
        super().basic_leave_room(sid, namespace, room)
        rooms = self.rooms_of.get(sid, ())
        if room in rooms:
            left = tuple(other for other in rooms if other != room)
            if left:
                self.rooms_of[sid] = left
            else:
                del self.rooms_of[sid]

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        if namespace not in self.rooms:
            return
        for room in self.rooms_of.pop(sid, ()):
            super().basic_leave_room(sid, namespace, room)
        self.callbacks.pop(sid, None)
        # python-socketio 5.16 has no pending_connect: its connects were not two-phase.
        for pending in (getattr(self, "pending_connect", {}), self.pending_disconnect):
            sids = pending.get(namespace)
            if sids is not None and sid in sids:
                sids.remove(sid)
                if not sids:
                    del pending[namespace]

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        if callback is not None:
            await super().emit(
                event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, to=to, **kwargs
            )
            return
        await emit_to_participants(self, event, data, namespace, to or room, skip_sid)


class ChannelManager(FanoutManager):
    """The manager with Redis: a room's first local member subscribes this instance to the
    room's channel (server/cluster/channels.py) before its join returns, and the copies of an
    event for several rooms go through a ledger (server/delivery/several_rooms.py)."""

    def __init__(self) -> None:
        super().__init__()
        self.channels: RoomChannels | None = None
        self.ledger = Ledger(ttl=LEDGER_SECONDS)

    async def enter_room(self, sid: str, namespace: str, room: str, eio_sid: str | None = None) -> None:
        was_in = self._member(sid, room) if namespace == NAMESPACE else True
        await super().enter_room(sid, namespace, room, eio_sid=eio_sid)
        if self.channels is not None and room != sid:
            try:
                await self.channels.want(room)
            except SubscriptionUnavailable:
                if not was_in:  # undo this join only, not an earlier one of the same room
                    await self.leave_room(sid, namespace, room)
                raise

    async def leave_room(self, sid: str, namespace: str, room: str) -> None:
        await super().leave_room(sid, namespace, room)
        await self._send_owed(self.ledger.left(sid, self._member))

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        super().basic_disconnect(sid, namespace, **kwargs)
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
        return sid in self.rooms.get(NAMESPACE, {}).get(room, ())

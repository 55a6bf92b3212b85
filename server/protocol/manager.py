"""python-socketio's client manager, as the seam the gateway's fan-out plugs into.

What this opens, and nothing more: the room table, how one event is encoded for many
recipients, and hooks: ``fan_out`` (an emit without a callback), ``entered``, ``left`` and
``disconnected`` (after a join, a leave, a disconnect). Who gets which copy, gates, ledgers
and Redis channels are decided above it (server/delivery/fanout.py, server/cluster/manager.py).

Why not the public API: python-socketio lets an application replace the client manager
(``client_manager=``) but offers no hook inside it. Its ``AsyncManager.emit`` encodes once and
then starts one asyncio task per recipient, whose only work is a put on the connection's
unbounded queue, which never waits: the tasks were most of a fan-out's cost. Its rooms are
``bidict``s, and its disconnect scans every room. Each needs the override below.

Read against python-socketio 5.16.1 to 5.18.1 (the UPSTREAM table below; the packet class
:func:`encode` builds is the server's, in socketio.py's table):

- **Emit.** ``AsyncManager.emit`` is replaced for emits without a callback (those with one
  keep the library's path): ``fan_out`` gets the event, and :func:`encode` builds its packet
  as the server's ``packet_class`` does, once (and framed once, protocol/frames.py). The
  gateway's events are JSON: the library's search of the data for bytes is skipped.
- **Joins and leaves.** ``AsyncManager.enter_room`` and ``leave_room`` run as upstream's, then
  call ``entered`` / ``left``.
- **Rooms are plain dicts.** python-socketio makes every room a ``bidict`` (two dicts, sid to
  Engine.IO sid and back), though it reads the way back only in the namespace's ``None`` room
  (``sid_from_eio_sid``, and the duplicate check of ``pre_connect``): a room of one member
  (each connection's sid room, a room per user or project) costs 450 bytes as a bidict, 180
  as a dict. Here the ``None`` room stays upstream's bidict and every other room is a dict,
  made in ``basic_enter_room`` (with upstream's checks, as 5.18 makes them) and read as a
  plain mapping in ``get_participants``; upstream's other uses (``basic_leave_room``,
  ``is_sid_room``, ``get_rooms``) take either. ``members`` and ``named_rooms`` read the same
  table, and rely on ``BaseManager.pre_connect`` putting every sid in the ``None`` room and
  in a room of its own.
- **A disconnect leaves only its own rooms.** ``BaseManager.basic_disconnect`` copies the
  namespace's room table and scans every room for the sid: with a room of its own per
  connection that is O(connections) per disconnect, O(n^2) for n clients leaving (1.4 ms of
  CPU each at 10,000 connections). The table here keeps each sid's rooms beside it, updated
  where python-socketio changes membership (``basic_enter_room``, ``basic_leave_room``,
  which ``basic_close_room``, ``connect`` and, from 5.18, ``pre_connect`` go through), and
  ``basic_disconnect`` leaves those, then clears the sid's callbacks and pending states as
  upstream's does. What this relies on spans ``BaseManager`` (and ``pre_connect`` exists only
  from 5.18): the UPSTREAM entry is the whole class.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any

import socketio
from engineio import packet as eio_packet
from socketio import packet

from swe_realtime.protocol import Upstream
from swe_realtime.protocol.engineio import SharedPacket

UPSTREAM = (
    Upstream(
        "python-socketio",
        "socketio.async_manager:AsyncManager",
        {"5.16.1": "ce8d6cee81062df6", "5.18.1": "93e3af0127f9a042"},
        why="Subclassed (RoomTable, given as client_manager=, the public way): emit,"
        " enter_room and leave_room are overridden, for the hooks and the fan-out; the"
        " manager interface has no hook inside them.",
    ),
    Upstream(
        "python-socketio",
        "socketio.base_manager:BaseManager",
        {"5.16.1": "2eb78e0c5b73beb6", "5.18.1": "b393b4c05dbd88e2"},
        why="Subclassed: the room table's layout (rooms, bidicts, the None room) and the"
        " methods that change it (basic_enter_room, basic_leave_room, basic_disconnect,"
        " get_participants, pre_connect) are read or overridden; none is a hook.",
    ),
)


def encode(server: Any, event: str, data: Any, namespace: str) -> list[SharedPacket]:
    """The Engine.IO packet of one event, encoded (and framed) once for however many
    recipients."""
    args = list(data) if isinstance(data, tuple) else [] if data is None else [data]
    encoded = server.packet_class(packet.EVENT, namespace=namespace, data=[event, *args], binary=False)
    return [SharedPacket(eio_packet.MESSAGE, encoded.encode())]


class RoomTable(socketio.AsyncManager):  # type: ignore[misc]
    """The client manager: dict rooms, a disconnect in O(its rooms), and the hooks above."""

    def __init__(self) -> None:
        super().__init__()
        self.rooms_of: dict[str, tuple[Any, ...]] = {}
        """The rooms of each sid in ``rooms`` (None and its own among them). A tuple: rooms
        change rarely, and a small tuple is a third of a set's size. Keyed by sid alone:
        python-socketio draws a new random sid for each namespace a session joins."""

    async def fan_out(self, event: str, data: Any, namespace: str, room: Any, skip_sid: Any) -> None:
        """Send an event to the participants of ``room`` (a name or a list), but ``skip_sid``."""
        raise NotImplementedError

    async def entered(self, sid: str, namespace: str, room: Any, was_in: bool) -> None:
        """After ``sid`` joined ``room`` (``was_in``: it was a member already)."""

    async def left(self, sid: str, namespace: str, room: Any) -> None:
        """After ``sid`` left ``room``."""

    def disconnected(self, sid: str) -> None:
        """After ``sid`` left every room of its namespace."""

    def is_member(self, sid: str, namespace: str, room: Any) -> bool:
        return sid in self.rooms.get(namespace, {}).get(room, ())

    def members(self, namespace: str, room: str) -> Collection[str]:
        """The sids in ``room`` on this instance (a live view: copy it before awaiting)."""
        members: dict[str, str] = self.rooms.get(namespace, {}).get(room, {})
        return members.keys()

    def named_rooms(self, namespace: str) -> int:
        """How many rooms have a member here, python-socketio's own aside (``None``, which
        holds every sid, and each sid's room of its own)."""
        rooms = self.rooms.get(namespace, {})
        return len(rooms) - (1 + len(rooms[None]) if None in rooms else 0)

    async def enter_room(self, sid: str, namespace: str, room: Any, eio_sid: str | None = None) -> None:
        was_in = self.is_member(sid, namespace, room)
        await super().enter_room(sid, namespace, room, eio_sid=eio_sid)
        if room != sid:
            await self.entered(sid, namespace, room, was_in)

    async def leave_room(self, sid: str, namespace: str, room: Any) -> None:
        await super().leave_room(sid, namespace, room)
        await self.left(sid, namespace, room)

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
            self.disconnected(sid)
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
        self.disconnected(sid)

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
        await self.fan_out(event, data, namespace, to or room, skip_sid)

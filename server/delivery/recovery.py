"""Joining rooms at a position: replay what a connection missed, then live, in order and once.

The race to beat: live events keep arriving while the history is read. So, per request:

1. ``prepare`` (may wait): the connection's gate starts holding its live events, the rooms
   are joined, then their histories are read (server/delivery/history.py): each room's position now,
   ``(epoch, top)``, and the events after the client's position.
2. ``finish`` (sends, never yields to other deliveries in between): the replay goes out,
   each room's events in the room's order, rooms interleaved by timestamp, each event once;
   each room's floor becomes its ``top``; then the held live events follow, minus those at
   or below a floor.

Nothing is missed: an event after ``top`` was appended after the read, so after the join,
and reaches the connection live. Nothing comes twice: the gate drops the live copies of
what the replay covered (server/delivery/gate.py). A subscribe is the same with no client position:
no replay and no floor, and the ack's position is ``top``, the point from which the
connection is owed every event.

One case is weaker: while two recoveries run at once on one connection, an event that is in
both rooms may be replayed by the second after live events of the first room that came later;
it still arrives once, but out of place in that room.
"""

from __future__ import annotations

import heapq
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from swe_realtime.delivery.fanout import Gated
from swe_realtime.delivery.gate import Gate
from swe_realtime.delivery.history import History, Kept, Window
from swe_realtime.events.envelope import StreamPosition
from swe_realtime.protocol.engineio import SharedPacket
from swe_realtime.protocol.manager import encode
from swe_realtime.publish.message import RoomMessage
from swe_realtime.telemetry import metrics


@dataclass(frozen=True, slots=True)
class Request:
    room: str
    after: StreamPosition | None
    """The client's last position in the room; None to start from now (a subscribe)."""


@dataclass(frozen=True, slots=True)
class Plan:
    sid: str
    gate: Gate
    windows: tuple[tuple[Request, Window], ...]


class Recovery:
    """Runs resumptions for the namespace's connections (one manager, one history)."""

    def __init__(self, server: Any, manager: Gated, history: History, namespace: str) -> None:
        self._server = server
        self._gates = manager.gates
        self._history = history
        self._namespace = namespace
        self._encoded: weakref.WeakValueDictionary[tuple[Any, ...], Any] = weakref.WeakValueDictionary()
        """A replayed event's Engine.IO packet (its text and WebSocket frame built once), by the
        event's positions, while a replay or a long-poll's send queue holds it: connections
        replaying the same history at the same time share one copy."""

    def hold(self, sid: str) -> Gate:
        """Start holding ``sid``'s live events (before it joins anything); ``prepare`` takes
        over this hold."""
        gate = self._gates.setdefault(sid, Gate())
        gate.holders += 1
        if gate.held is None:
            gate.held = deque()
        return gate

    async def prepare(
        self,
        sid: str,
        requests: Sequence[Request],
        join: Callable[[str], Awaitable[None]],
        *,
        held: Gate | None = None,
    ) -> Plan:
        gate = held or self.hold(sid)
        for request in requests:
            await join(request.room)
        windows = await self._history.windows([(request.room, request.after) for request in requests])
        return Plan(sid, gate, tuple(zip(requests, windows, strict=True)))

    async def finish(self, plan: Plan) -> None:
        """Send the replay, set the floors, release the held events (see the module's doc)."""
        gate, send = plan.gate, self.sender(plan.sid)
        for entry in _merged([window.entries for _, window in plan.windows if window.failure is None]):
            if gate.passes(entry.positions):
                await send(self._frames(entry))
                metrics.REPLAYED.inc()
        for request, window in plan.windows:
            # Only a replay can be repeated by live delivery; a plain subscribe needs no floor
            # (a lagging instance may at most show it an event from just before its position).
            if request.after is not None and window.position is not None:
                gate.floors[request.room] = (window.position.epoch, window.position.offset)
        gate.holders -= 1
        if gate.holders == 0 and gate.held is not None:
            held = gate.held
            while held:  # events delivered meanwhile join the end of the line
                positions, frames = held.popleft()
                if gate.passes(positions):
                    await send(frames)
            gate.held = None
        if gate.idle and self._gates.get(plan.sid) is gate:
            del self._gates[plan.sid]

    async def positions(self, rooms: Sequence[str]) -> dict[str, StreamPosition]:
        """The rooms' positions now (those the history can tell)."""
        windows = await self._history.windows([(room, None) for room in rooms])
        return {room: w.position for room, w in zip(rooms, windows, strict=True) if w.position is not None}

    def forget(self, sid: str, room: str | None = None) -> None:
        """Drop a room's floor (it was left), or the whole gate (the connection closed)."""
        gate = self._gates.get(sid)
        if gate is None:
            return
        if room is None:
            del self._gates[sid]
        else:
            gate.floors.pop(room, None)

    def _frames(self, entry: Kept) -> list[Any]:
        """The entry's frames: as the publisher framed them (Redis: the very bytes live delivery
        sent), or encoded; once for every connection replaying it meanwhile (a room's copy
        of an event is the one with its positions)."""
        key = tuple((room, p.get("epoch"), p.get("offset")) for room, p in entry.positions.items())
        frame = self._encoded.get(key) if key else None
        if frame is not None:
            return [frame]
        if isinstance(entry, RoomMessage):
            frames = [SharedPacket.framed(entry.frame, entry.text)]
        else:
            frames = encode(self._server, entry.event, entry.payload, self._namespace)
        if key and len(frames) == 1:
            self._encoded[key] = frames[0]
        return frames

    def sender(self, sid: str) -> Callable[[list[Any]], Awaitable[None]]:
        """Sends frames to ``sid`` straight to its Engine.IO queue: past the gate (this is the
        gate's own output), paced by the slow-consumer bound (a replay may be longer than
        the budget: see ``send_now`` in protocol/socketio.py)."""

        async def send(frames: list[Any]) -> None:
            await self._server.send_now(sid, self._namespace, frames)

        return send


def _merged(rooms: Sequence[Sequence[Kept]]) -> list[Kept]:
    """The replays of several rooms as one: each room's events in the room's order, rooms
    interleaved by when the events were accepted, an event in several of the rooms once (as
    the copy holding the most positions: the one of its latest room). Every copy of an event
    holds its position in the event's first room: that names the event."""
    merged: dict[tuple[str, Any, Any], Kept] = {}
    for entry in heapq.merge(*rooms, key=lambda entry: entry.accepted):
        positions = entry.positions
        first = entry.rooms[0]
        key = (first, positions.get(first, {}).get("epoch"), positions.get(first, {}).get("offset"))
        kept = merged.get(key)
        if kept is None or len(positions) > len(kept.positions):
            merged[key] = entry
    return list(merged.values())


__all__ = ["Plan", "Recovery", "Request"]

"""Fan-out: an event to the members of a room on this instance, past their gates.

The packet is encoded once (server/protocol/manager.py) and handed to each recipient in a
plain loop, straight to the connection's frame writer where it has one (the server's
``deliver``: the slow-consumer check, then the writer), else, for a session without a writer
(long-polling), to its ``_send_eio_packet``. A connection catching up on missed events has a
gate (server/delivery/gate.py): live events wait behind its replay, and those it already had
are dropped. Over Redis, server/cluster/manager.py builds on this.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from swe_realtime.delivery.gate import Gate, Positions
from swe_realtime.delivery.several_rooms import Delivery
from swe_realtime.protocol.manager import RoomTable, encode
from swe_realtime.telemetry import metrics


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


class FanoutManager(RoomTable):
    """The in-memory manager: the room table, fanning out through the gates."""

    def __init__(self) -> None:
        super().__init__()
        self.gates: dict[str, Gate] = {}

    async def fan_out(self, event: str, data: Any, namespace: str, room: Any, skip_sid: Any) -> None:
        await emit_to_participants(self, event, data, namespace, room, skip_sid)

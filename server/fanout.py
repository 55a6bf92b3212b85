"""Emitting to a room without a task per recipient.

python-socketio's AsyncManager.emit encodes a packet once and then starts one asyncio task
per recipient to hand it over. Handing over is a put on the connection's unbounded
python-engineio queue, which never waits, so the tasks buy nothing but their own cost,
which dominated fan-out profiles (task creation and scheduling per delivery). Here the
packet is still encoded once and handed to each recipient in a plain loop. Emits that
expect acknowledgements keep the library's path.
"""

from __future__ import annotations

from typing import Any

import socketio
from engineio import packet as eio_packet
from socketio import packet


async def emit_to_participants(
    manager: Any, event: str, data: Any, namespace: str, room: Any, skip_sid: Any
) -> None:
    """Encode once, then queue the packet for every participant of ``room`` (a name or a list)."""
    if namespace not in manager.rooms:
        return
    args = list(data) if isinstance(data, tuple) else [] if data is None else [data]
    skipped = skip_sid if isinstance(skip_sid, list) else [skip_sid]
    encoded = manager.server.packet_class(packet.EVENT, namespace=namespace, data=[event, *args]).encode()
    frames = [
        eio_packet.Packet(eio_packet.MESSAGE, part)
        for part in (encoded if isinstance(encoded, list) else [encoded])
    ]
    send = manager.server._send_eio_packet
    for sid, eio_sid in manager.get_participants(namespace, room):
        if sid not in skipped:
            for frame in frames:
                await send(eio_sid, frame)


class FanoutManager(socketio.AsyncManager):  # type: ignore[misc]
    """The in-memory manager, with the task-free emit."""

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

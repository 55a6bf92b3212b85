"""uvicorn's sans-I/O WebSocket protocol with smaller per-connection objects (see slim.py).

Read against uvicorn 0.52.1 to 0.54.0 (the UPSTREAM table below). ``WebSocketsSansIOProtocol``
keeps its received messages in ``self.queue`` (an ``asyncio.Queue`` read by ``receive``
alone), pauses writes on ``self.writable`` (``asyncio.Event``: ``set``, ``clear``, ``wait``,
``is_set``), and keeps the handshake's ``request`` and ``response`` for the connection's
life. Here the queue is a :class:`SingleConsumerQueue`, the flag a :class:`Flag`, and the
handshake objects are let go once the WebSocket is accepted.

0.52.1 is the floor for more than this file: before it the protocol had no
``pause_writing``, so writes never waited, a client that stopped reading was never noticed
(the transport's buffer grew instead of python-engineio's queue) and MAX_QUEUED_PACKETS did
nothing (tests/test_abuse.py::test_slow_consumer_is_dropped fails on 0.51).
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from swe_realtime._compat import Upstream
from swe_realtime.slim import Flag, SingleConsumerQueue

UPSTREAM = (
    Upstream(
        "uvicorn",
        "uvicorn.protocols.websockets.websockets_sansio_impl:WebSocketsSansIOProtocol",
        {"0.52.1": "fb74fea74c0370db", "0.54.0": "0bbcec98938432f7"},
    ),
)


class SlimWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol, receiving through a :class:`SingleConsumerQueue`
    and pausing writes on a :class:`Flag`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = SingleConsumerQueue()  # type: ignore[assignment]
        self.writable = Flag()  # type: ignore[assignment]
        self.writable.set()

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept":
            # The handshake's request and response (their headers parsed twice over, ~3 KB)
            # are not read again; the ASGI scope keeps what the application needs.
            self.request = self.response = None  # type: ignore[assignment]

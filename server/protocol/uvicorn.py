"""uvicorn's sans-I/O WebSocket protocol with smaller per-connection objects (see protocol/queues.py)
and a frame writer (see protocol/frames.py).

Read against uvicorn 0.52.1 to 0.54.0 (the UPSTREAM table below). ``WebSocketsSansIOProtocol``
keeps its received messages in ``self.queue`` (an ``asyncio.Queue`` read by ``receive``
alone), pauses writes on ``self.writable`` (``asyncio.Event``: ``set``, ``clear``, ``wait``,
``is_set``), and keeps the handshake's ``request`` and ``response`` for the connection's
life. Here the queue is a :class:`SingleConsumerQueue`, the flag a :class:`Flag`, and the
handshake objects are let go once the WebSocket is accepted.

The frame writer. Once a connection's handshake is accepted (``handle_connect`` built its
ASGI ``scope``) and no extension (per-message deflate) transforms its frames, the protocol
offers the application a :class:`FrameWriter` on its transport, in the scope's
``extensions`` under ``FRAME_WRITER``, and reports ``pause_writing``, ``resume_writing``
and ``connection_lost`` to it. Frames written there bypass ``send`` and the websockets
``ServerProtocol`` (whose state they do not touch: complete data frames, never
fragmented); uvicorn's own writes (a pong, the close frame) go between two whole frames.

0.52.1 is the floor for more than this file: before it the protocol had no
``pause_writing``, so writes never waited, a client that stopped reading was never noticed
(the transport's buffer grew instead of python-engineio's queue) and MAX_QUEUED_PACKETS did
nothing (tests/test_abuse.py::test_slow_consumer_is_dropped fails on 0.51).
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from swe_realtime.protocol import Upstream
from swe_realtime.protocol.frames import FRAME_WRITER, FrameWriter
from swe_realtime.protocol.queues import Flag, SingleConsumerQueue

UPSTREAM = (
    Upstream(
        "uvicorn",
        "uvicorn.protocols.websockets.websockets_sansio_impl:WebSocketsSansIOProtocol",
        {"0.52.1": "fb74fea74c0370db", "0.54.0": "0bbcec98938432f7"},
        why="Subclassed (given as ws=, uvicorn's public way to choose the WebSocket protocol):"
        " its receive queue, write flag and handshake objects are attributes no option"
        " shrinks, and ASGI has no way to hand an application the transport to write frames.",
    ),
)


class SlimWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol, receiving through a :class:`SingleConsumerQueue`,
    pausing writes on a :class:`Flag`, and offering a :class:`FrameWriter`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = SingleConsumerQueue()  # type: ignore[assignment]
        self.writable = Flag()  # type: ignore[assignment]
        self.writable.set()
        self.frame_writer: FrameWriter | None = None

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        # websockets' ServerProtocol.parse keeps the handshake request in its generator's
        # frame for the connection's life; its headers (~2 KB) are in the scope already.
        event.headers.clear()
        if self.response.status_code == 101 and not self.conn.extensions:
            self.frame_writer = FrameWriter(self.transport, self.loop)
            extensions: dict[str, Any] = self.scope["extensions"]
            extensions[FRAME_WRITER] = self.frame_writer

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.frame_writer is not None:
            self.frame_writer.pause()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.frame_writer is not None:
            self.frame_writer.resume()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.frame_writer is not None:
            self.frame_writer.close()
        super().connection_lost(exc)

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept":
            # The handshake's request and response (their headers parsed twice over, ~3 KB)
            # are not read again; the ASGI scope keeps what the application needs.
            self.request = self.response = None  # type: ignore[assignment]
            # The raw header list was read into the application's environ before it accepted.
            self.scope["headers"] = []

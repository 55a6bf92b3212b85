"""The WebSocket write path: frames built once, corked per connection, flushed once per loop pass.

python-engineio gives each WebSocket session a writer task that takes packets off a queue
and hands each to the ASGI server, which frames it and writes it to the socket: per
delivery a queue hand-over, a task switch, an ASGI message, a frame serialisation and a
``write`` system call. For a fan-out of one event to a thousand connections that is a
thousand of each, event after event. Here:

- a server-to-client frame is never masked, so its bytes are the same for every recipient:
  :func:`text_frame` builds them, and a packet sent to many is framed once
  (``SharedPacket`` in protocol/engineio.py);
- each connection's :class:`FrameWriter` appends the frame to its cork (a list of byte
  strings) and asks :class:`Corks` for a flush; one callback per loop pass writes every
  corked connection's frames with one ``write`` each. Everything a session sends goes
  through its writer (events, acks, pings, CLOSE), so corking never reorders anything;
- the transport's flow control pauses the writer: frames stay in the cork, counted, until
  the transport asks for more (``resume``). What a connection has not taken (corked bytes
  plus the transport's buffer) is the slow-consumer budget's measure (protocol/socketio.py).

The writer's states: ``IDLE`` (nothing corked), ``CORKED`` (a flush is due this pass),
``PAUSED`` (the transport's buffer is above its high-water mark: frames wait in the cork),
``CLOSED`` (the connection ended: writes are refused, the cork is let go). The uvicorn
protocol (protocol/uvicorn.py) creates the writer and reports flow control and loss to it;
the Engine.IO session (protocol/engineio.py) writes to it.
"""

from __future__ import annotations

import asyncio
import enum
import weakref
from typing import Protocol

from swe_realtime.protocol.websocket import TEXT, frame_head
from swe_realtime.telemetry import metrics

FRAME_WRITER = "swe_realtime.frame_writer"
"""The ASGI scope extension under which the server offers a connection's :class:`FrameWriter`."""

CORK_BYTES = 64 * 1024
"""A cork this full is written at once rather than at the end of the pass."""

_BINARY = 0x82  # FIN + binary opcode


def text_frame(text: str) -> bytes:
    """An unmasked, unfragmented WebSocket text frame (RFC 6455 section 5.2)."""
    return _frame(TEXT, text.encode())


def binary_frame(data: bytes) -> bytes:
    """An unmasked, unfragmented WebSocket binary frame."""
    return _frame(_BINARY, data)


def _frame(first: int, payload: bytes) -> bytes:
    return frame_head(first, len(payload)) + payload


class Transport(Protocol):
    """The part of ``asyncio.WriteTransport`` the writer uses."""

    def write(self, data: bytes) -> None: ...

    def get_write_buffer_size(self) -> int: ...

    def is_closing(self) -> bool: ...

    def abort(self) -> None: ...


class Outbox(Protocol):
    """Where a session's packets wait for its client: a :class:`FrameWriter`, or over long-
    polling the send queue (queues.SendQueue). The slow-consumer budget reads it."""

    @property
    def pending_bytes(self) -> int: ...

    @property
    def pending_frames(self) -> int: ...

    def room(self, max_bytes: int, max_frames: int) -> asyncio.Future[None] | None: ...


class State(enum.Enum):
    IDLE = "idle"
    CORKED = "corked"
    PAUSED = "paused"
    CLOSED = "closed"


class Corks:
    """The writers with frames corked in this loop pass, flushed by one callback at its end."""

    __slots__ = ("_due", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # Weakly: the loop is this object's key in _CORKS, which a strong reference would
        # keep alive for good (a closed test loop, an embedding's).
        self._loop = weakref.ref(loop)
        self._due: list[FrameWriter] = []

    def add(self, writer: FrameWriter) -> None:
        if not self._due:
            loop = self._loop()
            assert loop is not None  # a writer's loop outlives its writes
            loop.call_soon(self._flush)
        self._due.append(writer)

    def _flush(self) -> None:
        due, self._due = self._due, []
        for writer in due:
            writer.flush()


_CORKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Corks] = weakref.WeakKeyDictionary()


def corks_of(loop: asyncio.AbstractEventLoop) -> Corks:
    """The loop's :class:`Corks` (one per event loop: tests run several)."""
    corks = _CORKS.get(loop)
    if corks is None:
        corks = _CORKS[loop] = Corks(loop)
    return corks


class FrameWriter:
    """One WebSocket connection's outbound frames: corked, flushed, paused, counted."""

    __slots__ = (
        "_corks",
        "_frames",
        "_loop",
        "_parts",
        "_room",
        "_room_bytes",
        "_room_frames",
        "_transport",
        "corked",
        "state",
    )

    def __init__(self, transport: Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._corks = corks_of(loop)
        self._parts: list[bytes] = []
        self._frames = 0
        self.corked = 0
        """Bytes in the cork."""
        self.state = State.IDLE
        self._room: asyncio.Future[None] | None = None
        self._room_bytes = self._room_frames = 0

    @property
    def pending_bytes(self) -> int:
        """What the client has not taken: the cork and the transport's buffer."""
        if self.state is State.CLOSED:
            return 0
        return self.corked + self._transport.get_write_buffer_size()

    @property
    def pending_frames(self) -> int:
        """Frames in the cork (the transport's buffer holds bytes, not frames)."""
        return self._frames

    def write(self, frame: bytes) -> bool:
        """Cork ``frame`` for the end of this loop pass; False once the connection is closed."""
        state = self.state
        if state is State.CLOSED:
            return False
        self._parts.append(frame)
        self._frames += 1
        self.corked += len(frame)
        if state is State.IDLE:
            self.state = State.CORKED
            self._corks.add(self)
        elif state is State.CORKED and self.corked >= CORK_BYTES:
            self.flush()
        return True

    def flush(self) -> None:
        """Write the cork (unless paused or closed): one ``write`` for all of it."""
        if self.state is not State.CORKED:
            return
        if self._transport.is_closing():
            # uvicorn closed it, behind a close frame of its own (answering the client's, on a
            # protocol error, at shutdown), before this connection's session heard of it: no
            # frame may follow a close frame, and the transport would still send one.
            self.close()
            return
        self.state = State.IDLE
        parts, self._parts = self._parts, []
        self._frames = self.corked = 0
        self._transport.write(parts[0] if len(parts) == 1 else b"".join(parts))
        # The write may have paused the writer (the transport calls pause() from within it).
        self._make_room()

    def pause(self) -> None:
        """The transport's buffer passed its high-water mark: keep frames in the cork."""
        if self.state is not State.CLOSED:
            self.state = State.PAUSED
            metrics.WRITE_PAUSES.inc()

    def resume(self) -> None:
        """The transport's buffer fell below its low-water mark: write what waited."""
        if self.state is not State.PAUSED:
            return
        if self._parts:
            self.state = State.CORKED
            self.flush()
        else:
            self.state = State.IDLE
            self._make_room()

    def end(self) -> bool:
        """The session is over: write what is corked (past the transport's high-water mark if
        it is paused: the cork is within the connection's budget) and refuse more. True if
        the transport is paused, before or by this last write: the close frame that follows
        waits for the client."""
        was_paused = self.state is State.PAUSED
        if self._parts:
            self.state = State.CORKED
            self.flush()
        paused = was_paused or self.state is State.PAUSED
        self.close()
        return paused

    def abort(self) -> None:
        """Cut the connection off, what is corked and buffered unsent: for a client dropped
        for not reading, which would not read a close frame either."""
        self.close()
        self._transport.abort()

    def close(self) -> None:
        """The connection ended: refuse writes, let the cork go, wake a waiter for room."""
        self.state = State.CLOSED
        self._parts = []
        self._frames = self.corked = 0
        self._make_room()

    def room(self, max_bytes: int, max_frames: int) -> asyncio.Future[None] | None:
        """None while the transport takes more and at most ``max_bytes`` bytes and
        ``max_frames`` frames are corked; else a future done once that holds, or the
        connection closed (shared by every waiter: await it shielded). Unpaused, the
        transport's buffer is below its high-water mark; the cork is flushed every pass."""
        if self._fits(max_bytes, max_frames):
            return None
        self._room_bytes, self._room_frames = max_bytes, max_frames
        if self._room is None or self._room.done():
            self._room = self._loop.create_future()
        return self._room

    def _make_room(self) -> None:
        room = self._room
        if room is None:
            return
        if self.state is State.CLOSED or self._fits(self._room_bytes, self._room_frames):
            self._room = None
            if not room.done():
                room.set_result(None)

    def _fits(self, max_bytes: int, max_frames: int) -> bool:
        return self.state is not State.PAUSED and self.corked <= max_bytes and self._frames <= max_frames

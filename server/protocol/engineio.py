"""python-engineio's AsyncServer: an owned WebSocket write path, smaller sessions, client
mistakes logged as such, bigger batches.

Read against python-engineio 4.12.2 to 4.15.1 (the UPSTREAM table below, each entry saying
why the public API could not do it).

Nothing here is set for the whole process: every change is on classes of ours given to one
server (its session table, its copy of the ASGI driver's table, its sessions' class), so
another Engine.IO server or client in the process keeps python-engineio's behaviour.

0. The WebSocket write path. Each session is a :class:`Socket` (made one as the server
   stores it: :class:`Sessions` says why that is a ``__class__`` swap), which replaces
   ``AsyncSocket._websocket_handler``: no writer task;
   once the WebSocket is the session's transport every packet is framed and corked on the
   connection's :class:`~swe_realtime.protocol.frames.FrameWriter`, in the order sent.
   The upgrade from long-polling follows python-engineio's sequence (probe, NOOP to the
   pending poll, UPGRADE). ``schedule_ping`` arms a timer instead of starting a task.
1. Send queues. Each session's send queue is a :class:`~swe_realtime.protocol.queues.SendQueue`
   (``create_queue``): ``AsyncSocket`` reads it from a long-poll alone, through
   ``asyncio.wait_for(queue.get(), ...)``, ``get_nowait``, ``put``, ``put_nowait``,
   ``task_done``, ``join`` and ``qsize``; a ``None`` item ends a pending poll (and, on a
   server without the frame writer, python-engineio's WebSocket writer task).
2. Request translation. The ASGI driver's ``translate_request`` defines a class per request
   to read an HTTP body, and the environ holding it lives as long as the WebSocket; the
   server's copy of the driver table (``_async``) points at :func:`translate_request`, which
   puts a shared empty reader in its place on a WebSocket.
3. Log levels. python-engineio reports a client's protocol mistakes (a foreign origin, an
   unknown session id, a bad transport) at ERROR the first time (``_log_error_once``), and an
   undecodable polling POST body at ERROR with a traceback every time. They are the client's
   errors, not the server's: we log them at WARNING (the once-only ones at INFO after the
   first), keeping ERROR for faults an operator must act on.
4. Polling batches. socket.io-client sends everything it has queued in one POST, bounded by
   bytes (the ``maxPayload`` of the handshake), not by count; python-engineio drops a whole
   POST of more than 16 packets. The count is raised to MAX_PACKETS_PER_POST; the byte bound
   (MAX_PAYLOAD_BYTES) still holds. python-engineio reads this count from its ``Payload``
   class; sessions decode their POSTs with :class:`Payload`, a subclass of ours.
5. Admission. python-engineio opens a session for every handshake (a polling GET or a
   WebSocket without ``sid``): ``_handle_connect`` stores the socket and queues its OPEN
   packet. ``admission`` (server/sessions/limits.py) is asked first; a refused handshake gets its
   HTTP status as an Engine.IO error response (``_make_response`` turns it into a refused
   WebSocket upgrade) and no session, with ``Connection: close`` so that a flood does not
   keep its sockets open.
6. Malformed frames. python-engineio decodes a WebSocket frame outside its error handling
   (a frame that is empty or does not start with a digit escaped the session's loop), logs
   the name of a packet type it does not know (``7`` to ``9``) with an IndexError at ERROR
   ("Unknown receive error"), and logs an undecodable polling POST ("post request handler
   error") with the session left open. JSON nested deeper than the interpreter's recursion
   limit raised RecursionError out of the decoders. Like the Node engine.io server on a
   parse error, we log a warning and close the session: the driver's WebSocket
   (:class:`CheckedWebSocket`) ends the session on a frame that cannot be a packet, each
   session is a :class:`Socket` that refuses unknown packet types, undecodable POSTs and
   JSON nested too deep (:func:`decode`; python-socketio's side is in socketio.py).
7. Polling goodbyes. When a long-polling client closes its session (an Engine.IO CLOSE
   packet), python-engineio closes it without answering the GET request the client still has
   open; that request then hangs for ping interval + ping timeout (45 s by default), holding
   a connection on the server and making the python client's ``disconnect()`` wait as long.
   The Node engine.io server answers the pending poll at once (engine.io PR #291); so do we,
   by waking the session's send queue with the end-of-stream marker its ``poll()`` knows
   (``Socket.close``).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import engineio
from engineio import async_socket, exceptions, packet, payload
from engineio.async_drivers import asgi as engineio_asgi

from swe_realtime.errors import ErrorCode
from swe_realtime.protocol import Upstream
from swe_realtime.protocol.frames import FRAME_WRITER, FrameWriter, State, binary_frame, text_frame
from swe_realtime.protocol.queues import SendQueue
from swe_realtime.telemetry import metrics

MAX_PACKETS_PER_POST = 1024

UPSTREAM = (
    Upstream(
        "python-engineio",
        "engineio.async_socket:AsyncSocket",
        {"4.12.2": "e9eb7d104125fe0c", "4.15.1": "af72dafc541d46e6"},
        why="Subclassed (Socket): the WebSocket write path, pings, packet checks, POST decoding"
        " and closing are the session's own methods, and python-engineio offers no argument"
        " for any of them. It also reads its send queue through server.create_queue(),"
        " replaced whole (SendQueue), with only the calls queues.py lists.",
    ),
    Upstream(
        "python-engineio",
        "engineio.async_server:AsyncServer._handle_connect",
        {"4.12.2": "c0894f342d31938e", "4.15.1": "5bd7edc1d1ae115a"},
        why="Overridden for admission: the connect handler (the public way to refuse) runs"
        " after the session exists and can only answer 401. Read for the session class too:"
        " it builds async_socket.AsyncSocket by name (no socket class attribute or factory"
        " in 4.12.2 to 4.15.1) and stores it in self.sockets before using it, where"
        " Sessions makes it a Socket.",
    ),
    Upstream(
        "python-engineio",
        "engineio.async_server:AsyncServer.handle_request",
        {"4.12.2": "ae342cdb191890a1", "4.15.1": "1a8c878e35166cfe"},
        why="Relied on: a dict from _handle_connect (as _bad_request builds it) becomes the"
        " HTTP response, a refused WebSocket upgrade on a WebSocket; POST errors it logs.",
    ),
    Upstream(
        "python-engineio",
        "engineio.base_server:BaseServer.__init__",
        {"4.12.2": "a06b17502fbd9646", "4.15.1": "a06b17502fbd9646"},
        why="Relied on: the driver table (_async, shared by the module: copied per server),"
        " the session table (sockets, replaced by Sessions) and log_message_keys are made"
        " here; no argument chooses the driver's request translation or WebSocket class.",
    ),
    Upstream(
        "python-engineio",
        "engineio.base_server:BaseServer._log_error_once",
        {"4.12.2": "dccbb5602dc46a09", "4.15.1": "dccbb5602dc46a09"},
        why="Overridden: it logs a client's mistakes at ERROR; no argument sets that level,"
        " and a logger (the public logger= argument) sees only the text, not the message key.",
    ),
    Upstream(
        "python-engineio",
        "engineio.payload:Payload.decode",
        {"4.12.2": "9c7975664d815d3d", "4.15.1": "9c7975664d815d3d"},
        why="Relied on: it reads max_decode_packets from the instance's class (our Payload"
        " sets it); no server argument sets the count of packets per POST.",
    ),
    Upstream(
        "python-engineio",
        "engineio.async_drivers.asgi:translate_request",
        {"4.12.2": "656f6ed71fbefdbc", "4.15.1": "39e74733f1fe46aa"},
        why="Wrapped (through the driver table): it gives every WebSocket's environ a body"
        " reader class of its own; the ASGI driver has no option for it.",
    ),
    Upstream(
        "python-engineio",
        "engineio.async_drivers.asgi:WebSocket",
        {"4.12.2": "ce9c81653992cd62", "4.15.1": "ce9c81653992cd62"},
        why="Subclassed (CheckedWebSocket, through the driver table): frames that cannot be"
        " packets, and the frame writer from the ASGI scope; the driver has no option for it.",
    ),
    Upstream(
        "python-engineio",
        "engineio.packet:Packet",
        {"4.12.2": "a0d70ee4777b3af6", "4.15.1": "a0d70ee4777b3af6"},
        why="Subclassed (SharedPacket: a frame cached beside encode()'s text cache, built"
        " from a publisher's frame) and decoded from the wire by Socket, which relies on"
        " decode() raising ValueError, IndexError or RecursionError on bad input. Sessions"
        " are made with this class by name: no packet class argument.",
    ),
)

PACKET_TYPES = frozenset("0123456")
"""The first character of every Engine.IO text packet (OPEN to NOOP)."""


def decode(encoded: str | bytes) -> Any:
    """An Engine.IO packet from the wire. JSON nested deeper than the interpreter's recursion
    limit is a ValueError, as other bad input is: python-engineio's decoder lets its
    RecursionError through (and python-engineio's one way to change its JSON module,
    ``json=``, sets it for every Engine.IO server and client of the process)."""
    try:
        return packet.Packet(encoded_packet=encoded)
    except RecursionError:
        raise ValueError("JSON nested too deep") from None


class Payload(payload.Payload):  # type: ignore[misc]
    """A polling POST's packets, up to MAX_PACKETS_PER_POST of them (python-engineio's
    ``Payload`` takes 16; its count is a class attribute, set here on a class of ours rather
    than on python-engineio's, which every Engine.IO server of the process shares)."""

    max_decode_packets = MAX_PACKETS_PER_POST


def _malformed(socket: async_socket.AsyncSocket, reason: object) -> None:
    socket.server.logger.warning("closing session %s after a malformed frame: %.120s", socket.sid, reason)
    metrics.DROPPED.labels("malformed").inc()


_CLOSING: set[asyncio.Future[None]] = set()
"""WebSocket closes waiting for a paused transport (held here: the loop keeps only weak
references to tasks)."""


class SharedPacket(packet.Packet):  # type: ignore[misc]
    """An Engine.IO packet sent to many sessions (a fan-out): its WebSocket frame is built
    once, by the first writer that needs it, and reused by every other."""

    frame: bytes | None = None

    @classmethod
    def framed(cls, frame: bytes, text: str) -> SharedPacket:
        """The message packet whose frame a publisher built (server/publish/message.py): ``text``
        is the frame's, the packet type first."""
        shared = cls(packet.MESSAGE, text[1:])
        shared.frame = frame
        return shared


def frame_of(pkt: Any) -> bytes:
    """The WebSocket frame of an Engine.IO packet (a binary packet goes in a binary frame)."""
    if isinstance(pkt, SharedPacket):
        if pkt.frame is None:
            pkt.frame = text_frame(pkt.encode())
        return pkt.frame
    encoded = pkt.encode()
    return binary_frame(encoded) if pkt.binary else text_frame(encoded)


class Socket(async_socket.AsyncSocket):  # type: ignore[misc]
    """A session that owns its WebSocket's write path, pings on a timer, ends on a packet it
    cannot take instead of logging an error, reads nothing more once closed, and leaves the
    server's table as it closes (python-engineio keeps a closed session there until its
    sweep, and a POST to it meanwhile raised "Session is disconnected" out of the request
    handler).

    Writing. Over a WebSocket whose server offers a :class:`~swe_realtime.protocol.frames.FrameWriter`
    (protocol/uvicorn.py), every packet goes to that writer as a frame (server/protocol/frames.py), in
    the order sent: there is no writer task and no queue hand-over per packet. Over long-
    polling, during an upgrade and on a server without the writer the session uses its
    queue and python-engineio's own paths, as before. When an upgrade completes, what the
    queue still holds is written first.

    Pings. python-engineio keeps a task per session asleep for the ping interval; a timer
    handle does the same for a tenth of the memory.
    """

    writer: FrameWriter | None = None
    """The WebSocket's frame writer, once it is the session's transport."""
    last_ping: float | None
    connected: bool
    _ws: Any = None
    _ping_timer: asyncio.TimerHandle | None = None

    @property
    def outbox(self) -> FrameWriter | SendQueue:
        """Where the session's unsent packets wait: the writer's cork or the queue."""
        return self.queue if self.writer is None else self.writer

    async def send(self, pkt: Any) -> None:
        writer = self.writer
        if writer is None:
            await super().send(pkt)
        elif self.closed:
            raise exceptions.SocketIsClosedError()
        else:
            writer.write(frame_of(pkt))

    def schedule_ping(self) -> None:
        if self.last_ping and self._ping_timer is None:  # the last ping was answered
            self.last_ping = None
            loop = asyncio.get_running_loop()
            self._ping_timer = loop.call_later(self.server.ping_interval, self._ping)

    def _ping(self) -> None:
        self._ping_timer = None
        if self.closing or self.closed:
            return
        self.last_ping = time.time()
        ping = packet.Packet(packet.PING)
        if self.writer is not None:
            self.writer.write(frame_of(ping))
        else:
            self.queue.put_nowait(ping)

    async def close(self, wait: bool = True, abort: bool = False, reason: Any = None) -> None:
        if self.closed or self.closing:
            return
        await super().close(wait=False, abort=abort, reason=reason)
        if self._ping_timer is not None:
            self._ping_timer.cancel()
            self._ping_timer = None
        if self.server.sockets.get(self.sid) is self:
            del self.server.sockets[self.sid]
        if self.writer is not None:
            await self._end_websocket()
        elif self.upgraded or reason == self.server.reason.CLIENT_DISCONNECT:
            # The end marker makes python-engineio's writer task close the WebSocket, or
            # answers the poll a long-polling client's CLOSE left pending (7. above).
            self.queue.put_nowait(None)
        if wait:
            await self.queue.join()

    async def _end_websocket(self) -> None:
        """Write what is corked, then close the WebSocket. Behind a paused transport (paused
        before or by that last write) the close frame waits for the client to read (uvicorn
        sends it once the transport is writable), in a task of its own: whoever closes the
        session (a drain closing every session in turn, the ping-timeout sweep) does not wait
        on this client. A client dropped for not reading was cut off before
        (``FrameWriter.abort``). The session lets go of the WebSocket, whose handler is the
        session's own method: that cycle would keep both, with uvicorn's protocol and
        transport, until a full collection."""
        assert self.writer is not None
        ws, self._ws = self._ws, None
        if self.writer.state is State.CLOSED:
            return
        if self.writer.end():
            closing = asyncio.ensure_future(ws.close())
            _CLOSING.add(closing)
            closing.add_done_callback(_CLOSING.discard)
        else:
            await ws.close()

    async def _websocket_handler(self, ws: Any) -> Any:
        frames: FrameWriter | None = ws.frames
        if frames is None:
            return await super()._websocket_handler(ws)
        if self.connected:
            if not await self._upgrade(ws, frames):
                return None
        else:
            self.connected = self.upgraded = True
        self._ws = ws
        while not self.queue.empty():  # the OPEN packet; after an upgrade, what no poll took
            pkt = self.queue.get_nowait()
            self.queue.task_done()
            if pkt is not None:
                frames.write(frame_of(pkt))
        self.writer = frames
        if not self.closed:
            await self._read(ws)
        await self._end_websocket()
        await self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)
        return None

    async def _read(self, ws: Any) -> None:
        """Take the client's packets until it closes the WebSocket or the session ends. No
        read timeout: a client that stops answering pings is closed by the ping timeout."""
        limit = self.server.max_http_buffer_size
        while not self.closed:
            try:
                data = await ws.wait()
            except OSError:
                return
            if data is None:
                return
            if len(data) > limit:
                _malformed(self, f"a frame of {len(data)} bytes")
                await self.close(wait=False, reason=self.server.reason.SERVER_DISCONNECT)
                return
            try:
                pkt = decode(data)
            except ValueError as exc:
                _malformed(self, exc)
                await self.close(wait=False, reason=self.server.reason.SERVER_DISCONNECT)
                return
            try:
                await self.receive(pkt)
            except exceptions.UnknownPacketError:
                continue  # OPEN or NOOP from a client: ignored, as python-engineio does
            except exceptions.SocketIsClosedError:
                return
            except Exception:
                self.server.logger.exception("Unknown receive error")

    async def _upgrade(self, ws: Any, frames: FrameWriter) -> bool:
        """The upgrade from long-polling: the client probes, the pending poll is answered
        with a NOOP, the client confirms with UPGRADE (python-engineio's sequence)."""
        self.upgrading = True
        try:
            probe = decode(await ws.wait())
            if probe.packet_type != packet.PING or probe.data != "probe":
                self.server.logger.info("%s: Failed websocket upgrade, no PING packet", self.sid)
                return False
            frames.write(frame_of(packet.Packet(packet.PONG, data="probe")))
            self.queue.put_nowait(packet.Packet(packet.NOOP))  # ends the pending poll
            confirm = decode(await ws.wait())
            if confirm.packet_type != packet.UPGRADE:
                self.server.logger.info("%s: Failed websocket upgrade, expected UPGRADE", self.sid)
                return False
        except (OSError, TypeError, ValueError):  # closed (None: TypeError) or not a packet
            return False
        finally:
            self.upgrading = False
        self.upgraded = True
        self.server.upgraded(self.sid)
        return True

    async def receive(self, pkt: Any) -> None:
        if self.closed:  # by an earlier packet; ends the WebSocket loop
            raise exceptions.SocketIsClosedError()
        if not 0 <= pkt.packet_type < len(PACKET_TYPES):
            raise ValueError(f"unknown packet type {pkt.packet_type}")
        await super().receive(pkt)

    async def handle_post_request(self, environ: dict[str, Any]) -> None:
        """Read a POST's packets (up to :class:`Payload`'s count); on one it cannot take,
        close the session at once (python-engineio would log an error and keep it, or wait
        for a GET that drains its queue). Upstream's own eight lines, but for the count and
        JSON nested too deep (a RecursionError out of python-engineio's decoder)."""
        length = int(environ.get("CONTENT_LENGTH", "0"))
        if length > self.server.max_http_buffer_size:
            raise exceptions.ContentTooLongError()
        try:
            body = (await environ["wsgi.input"].read(length)).decode("utf-8")
            for pkt in Payload(encoded_payload=body).packets:
                await self.receive(pkt)
        except RecursionError:
            _malformed(self, "JSON nested too deep")
            await self.close(wait=False, reason=self.server.reason.SERVER_DISCONNECT)
        except exceptions.SocketIsClosedError:
            return  # an earlier packet of the POST closed the session: the rest is moot
        except (ValueError, LookupError, exceptions.UnknownPacketError) as exc:
            _malformed(self, exc or type(exc).__name__)
            await self.close(wait=False, reason=self.server.reason.SERVER_DISCONNECT)


class CheckedWebSocket(engineio_asgi.WebSocket):  # type: ignore[misc]
    """The ASGI driver's WebSocket, ending the session on a frame that cannot be a packet
    (python-engineio would raise out of its loop, or log an error and carry on), and
    carrying the server's frame writer when it offers one (``FRAME_WRITER`` in its scope's
    extensions: protocol/uvicorn.py)."""

    frames: FrameWriter | None = None

    async def __call__(self, environ: dict[str, Any]) -> Any:
        self.frames = environ["asgi.scope"].get("extensions", {}).get(FRAME_WRITER)
        return await super().__call__(environ)

    async def wait(self) -> Any:
        frame = await super().wait()
        if isinstance(frame, str) and frame[:1] not in PACKET_TYPES:
            session = self.handler.__self__
            _malformed(session, f"frame {frame[:20]!r}")
            if session.upgrading:  # a failed upgrade would leave the polling session open
                await session.close(wait=False, reason=session.server.reason.SERVER_DISCONNECT)
            return None  # as if the client had closed: python-engineio ends the session
        return frame


class EngineLogger(logging.LoggerAdapter[logging.Logger]):
    """python-engineio's logger, with undecodable client input demoted from ERROR to WARNING
    (JSON nested too deep is a RecursionError where python-engineio decodes it itself: its
    own WebSocket loop, on a connection without the frame writer)."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):  # engineio logs every packet at INFO: stay cheap
            return
        failure = sys.exception()
        if level >= logging.ERROR and isinstance(failure, ValueError | RecursionError):
            level, msg, args = logging.WARNING, "%s: %.120s", (msg, failure)
            kwargs["exc_info"] = False
        super().log(level, msg, *args, **kwargs)


@dataclass(frozen=True)
class Refusal:
    """Why a new Engine.IO session is refused, and the HTTP status its handshake gets."""

    status: HTTPStatus
    code: ErrorCode
    reason: str


Admission = Callable[[Mapping[str, Any], int], Refusal | None]
"""A handshake's environ and the number of open sessions -> its refusal, or None."""


class Sessions(dict[str, Any]):
    """The server's session table, which makes each new session a :class:`Socket` as
    python-engineio stores it.

    Why a ``__class__`` swap: python-engineio has no factory for sessions. From 4.12.2 to
    4.15.1 ``AsyncServer._handle_connect`` builds ``async_socket.AsyncSocket(self, sid)`` by
    name (no socket class attribute, argument or creating method), stores it in
    ``self.sockets`` and only then uses it (its OPEN packet, its first ping, its transport).
    Its store here is the one point every version passes before that first use; ``Socket``
    is a subclass without state of its own, so the swap only changes which methods run.
    python-engineio 4.12 starts a session with ``last_ping`` None (4.13 on, the time it was
    made), and the first ping is armed only after an answered one: given the time here.
    """

    __slots__ = ()

    def __setitem__(self, sid: str, session: Any) -> None:
        if type(session) is async_socket.AsyncSocket:
            session.__class__ = Socket
            session.last_ping = session.last_ping or time.time()
        super().__setitem__(sid, session)


class EngineServer(engineio.AsyncServer):  # type: ignore[misc]
    """python-engineio's server with the patches listed above."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.admission: Admission = lambda environ, sessions: None
        self.upgraded: Callable[[str], None] = lambda sid: None
        """Told a session's id once its upgrade from long-polling to WebSocket completes (the
        audit's connect line names the transport a session opened with)."""
        self.sockets: Sessions = Sessions()
        # The driver's table is shared by the module: replace the entries in a copy.
        self._async: dict[str, Any] = {
            **self._async,
            "translate_request": translate_request,
            "websocket": CheckedWebSocket,
        }

    def create_queue(self, *args: Any, **kwargs: Any) -> SendQueue:
        """Each session's send queue, read by its writer task alone, counting what the client
        has not read (see protocol/queues.py)."""
        return SendQueue()

    async def _handle_connect(
        self, environ: dict[str, Any], transport: str, jsonp_index: int | None = None
    ) -> Any:
        refusal = self.admission(environ, len(self.sockets))
        if refusal is None:
            return await super()._handle_connect(environ, transport, jsonp_index)
        return {
            "status": f"{refusal.status.value} {refusal.status.phrase}",
            "headers": [("Content-Type", "text/plain"), ("Connection", "close")],
            "response": refusal.reason.encode(),
        }

    SERVER_FAULTS = frozenset({"no-websocket"})
    """The one message key python-engineio logs once that is about the server, not a client."""

    def _log_error_once(self, message: str, message_key: str) -> None:
        if message_key in self.SERVER_FAULTS:
            super()._log_error_once(message, message_key)
            return
        level = logging.INFO if message_key in self.log_message_keys else logging.WARNING
        self.log_message_keys.add(message_key)
        self.logger.log(level, message)


class _NoBody:
    """What a WebSocket's environ offers as its request body: nothing."""

    async def read(self, length: int | None = None) -> bytes:
        return b""


_NO_BODY = _NoBody()


async def translate_request(scope: dict[str, Any], receive: Any, send: Any) -> dict[str, Any]:
    """python-engineio's ASGI ``translate_request``, without a body reader on a WebSocket."""
    environ: dict[str, Any] = await engineio_asgi.translate_request(scope, receive, send)
    if scope["type"] == "websocket" and environ:
        environ["wsgi.input"] = _NO_BODY
    return environ

"""python-socketio's AsyncServer, hardened where a client could hurt it or fill the error log.

Read against python-socketio 5.16.1 to 5.18.1 and python-engineio 4.12.2 to 4.15.1 (the
UPSTREAM table below); the Engine.IO server's own patches are in engineio.py.

1. Event names. python-socketio hands a client's EVENT packet to the handlers whatever its
   first element is: a number or an object makes the namespace dispatcher raise TypeError
   (logged as a server error), and the names ``connect`` and ``disconnect`` run the
   lifecycle handlers with the client's arguments, so a client could forge its own
   disconnect. Packets whose name is not a plain string, or is a lifecycle name, are dropped
   here, before any handler runs.
2. Polling goodbyes: answered by the Engine.IO session itself (engineio.py, 7.).
3. Malformed packets. A packet python-socketio cannot parse (bad JSON, a bad id, an
   unexpected type, JSON nested too deep: see :class:`Packet`) raised out of its
   dispatcher and was logged at ERROR with a traceback.
   Like the Node server on a parse error, we log a warning and close that connection. Binary
   packets are refused the same way: the API is JSON, and python-socketio would otherwise
   buffer up to ten billion announced attachments per packet. A second CONNECT for a
   namespace the session already joined is refused too: python-socketio would register a
   second sid and leak the first when the session ends.
4. Slow consumers. A client that stops reading lets what is sent to it pile up (uvicorn
   applies back-pressure, so frames wait in the session's outbox). At
   ``max_queued_packets`` unsent packets, or ``max_queued_bytes`` bytes not taken by the
   client, the session is closed and counted instead, whatever the packet (event, ack,
   CONNECT). The outbox counts: over a WebSocket the frame writer's cork and the transport's
   buffer (protocol/frames.py), over long-polling the send queue (queues.SendQueue).
5. Namespaces and the connect timeout. python-socketio accepts a CONNECT to the default
   namespace ``/`` without any handler, and keeps an Engine.IO session open for as long as
   it answers pings whether it joins a namespace or not: both need no token. Here only the
   registered namespaces (``/ws``) exist: a CONNECT to another gets CONNECT_ERROR "Invalid
   namespace", like the Node server, and its session is closed unless it is in ``/ws``. A
   session that has not joined ``/ws`` within ``connect_timeout`` seconds (a refused
   CONNECT does not count) is closed, like the Node server's ``connectTimeout``; so is one
   that left ``/ws`` (``disconnect``, ``_handle_disconnect``) and did not join again in as
   long; both are audited and counted as drops.
6. Sends past the gate. A replay goes straight to the session's Engine.IO socket
   (:meth:`AsyncServer.send_now`): past the recovery gate (it is the gate's own output),
   and paced rather than dropped: a replay may be longer than the budget, so each packet
   waits until the outbox is at most half full; a client that leaves it full for
   ``ping_timeout`` seconds is dropped as a slow consumer.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import engineio.json
import socketio
from socketio import packet

from swe_realtime.protocol import Upstream
from swe_realtime.protocol.engineio import EngineServer, frame_of
from swe_realtime.protocol.frames import Outbox
from swe_realtime.telemetry import audit, metrics

ROOM_CHECK_SECONDS = 1.0
"""How often a paced replay looks whether its session closed while it waits for room."""
LIFECYCLE_EVENTS = frozenset({"connect", "disconnect", "connect_error"})
BINARY_PACKET_TYPES = ("5", "6")

UPSTREAM = (
    Upstream(
        "python-socketio",
        "socketio.base_server:BaseServer._engineio_server_class",
        {"5.16.1": "8cc5cd097b72f79e", "5.18.1": "8cc5cd097b72f79e"},
        why="Overridden: python-socketio builds its Engine.IO server itself from its keyword"
        " arguments; no argument takes a server or its class, this method is the one hook.",
    ),
    Upstream(
        "python-socketio",
        "socketio.packet:Packet",
        {"5.16.1": "e1660ba64e4e31fc", "5.18.1": "e1660ba64e4e31fc"},
        why="Subclassed (Packet, given as serializer=, the public way): its json attribute"
        " decodes; json= would set it on python-socketio's class, for the process."
        " manager.encode builds and encodes it as the server does (one event, many sessions).",
    ),
    Upstream(
        "python-socketio",
        "socketio.async_server:AsyncServer._send_eio_packet",
        {"5.16.1": "64cf72a2ab7d75b1", "5.18.1": "64cf72a2ab7d75b1"},
        why="Overridden (the slow-consumer bound): every packet of an emit to a room passes"
        " here; python-socketio has no queue bound and no hook before a send.",
    ),
    Upstream(
        "python-socketio",
        "socketio.async_server:AsyncServer._send_packet",
        {"5.16.1": "a00022b42c1c29e9", "5.18.1": "a00022b42c1c29e9"},
        why="Overridden (the slow-consumer bound): acks, CONNECT answers and emits to one"
        " session pass here, not through _send_eio_packet.",
    ),
    Upstream(
        "python-socketio",
        "socketio.async_server:AsyncServer._handle_eio_message",
        {"5.16.1": "f90b9d8986a9e678", "5.18.1": "bef50fc0e1635921"},
        why="Overridden: a packet it cannot parse raises out of it (logged at ERROR), and it"
        " takes binary packets; no option refuses either or closes the session.",
    ),
    Upstream(
        "python-socketio",
        "socketio.async_server:AsyncServer._handle_connect",
        {"5.16.1": "bbed679f5bf2389e", "5.18.1": "c97c480cf777de36"},
        why="Overridden: namespaces= always accepts '/' and refuses others with 'Unable to"
        " connect' but keeps the session; a second CONNECT to a namespace leaks a sid.",
    ),
    Upstream(
        "python-socketio",
        "socketio.async_server:AsyncServer._handle_eio_connect",
        {"5.16.1": "76704886d944a7e6", "5.18.1": "76704886d944a7e6"},
        why="Overridden to arm the connect timeout: the one call per new Engine.IO session;"
        " the public connect event comes per namespace CONNECT, and the Engine.IO connect"
        " handler is python-socketio's own.",
    ),
    Upstream(
        "python-socketio",
        "socketio.async_server:AsyncServer.disconnect",
        {"5.16.1": "d41c0c7595121594", "5.18.1": "7d2f76686c12cc23"},
        why="Overridden to re-arm the connect timeout after the gateway ends a session's"
        " namespace (token expiry): no event tells the server a session is in none.",
    ),
    Upstream(
        "python-socketio",
        "socketio.async_server:AsyncServer._handle_disconnect",
        {"5.16.1": "7d742f83353ccd57", "5.18.1": "c0b32ada5b371230"},
        why="Overridden to re-arm the connect timeout after a client leaves a namespace, as"
        " disconnect() does for the gateway's side.",
    ),
    Upstream(
        "python-socketio",
        "socketio.async_server:AsyncServer._handle_event",
        {"5.16.1": "65178105ef8b593d", "5.18.1": "65178105ef8b593d"},
        why="Overridden: it dispatches any first element as the event's name, lifecycle"
        " names included; a handler (even a namespace's trigger_event) cannot tell a forged"
        " disconnect from the real one.",
    ),
)


def _loads(*args: Any, **kwargs: Any) -> Any:
    try:
        return engineio.json.loads(*args, **kwargs)
    except RecursionError:
        raise ValueError("JSON nested too deep") from None


class Packet(packet.Packet):  # type: ignore[misc]
    """python-socketio's packet, decoding with python-engineio's JSON module (which bounds
    integers) but refusing JSON nested too deep for the parser as a ValueError, which the
    decoder treats as bad input. Given as ``serializer=``, it is this server's alone."""

    json = SimpleNamespace(dumps=engineio.json.dumps, loads=_loads)


class AsyncServer(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's server with the patches listed above."""

    def __init__(
        self,
        *args: Any,
        max_queued_packets: int = 1000,
        max_queued_bytes: int = 4 * 1024 * 1024,
        connect_timeout: float = 5.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, serializer=Packet, **kwargs)
        self.max_queued_packets = max_queued_packets
        self.max_queued_bytes = max_queued_bytes
        self.connect_timeout = connect_timeout
        self._unjoined: dict[str, asyncio.TimerHandle] = {}
        """Engine.IO sessions not yet in a namespace, and the timer that closes them."""
        self._dropping: set[str] = set()
        """Engine.IO sessions found too slow, whose close is under way: sent nothing more."""
        self.eio.upgraded = self._audit_upgrade

    def _audit_upgrade(self, eio_sid: str) -> None:
        """An audit line per connection of a session that moved from long-polling to
        WebSocket, whose connect line said ``transport=polling``. A session in no namespace
        yet gets none: its connect line, written later, names the transport of that moment."""
        for name in self.namespace_handlers:
            if (sid := self.manager.sid_from_eio_sid(eio_sid, name)) is not None:
                audit.upgraded(connection_id=sid, transport=self.eio.transport(eio_sid))

    def _engineio_server_class(self) -> type[EngineServer]:
        return EngineServer

    async def _send_eio_packet(self, eio_sid: str, eio_pkt: Any) -> None:
        """Every event of a fan-out to a session without a frame writer comes here
        (delivery/fanout.py)."""
        if self._sendable(eio_sid) is not None:
            await super()._send_eio_packet(eio_sid, eio_pkt)

    def deliver(self, eio_sid: str, eio_pkt: Any) -> bool:
        """Hand a fan-out's packet to a session's frame writer at once, without the coroutine
        layers of :meth:`_send_eio_packet` (the same checks). False if the session has no
        writer (long-polling, an upgrade under way): send it the ordinary way then."""
        engine_socket = self._sendable(eio_sid)
        if engine_socket is None:
            return True  # gone, going, or just found too slow: nothing to send
        if engine_socket.writer is None or engine_socket.closed:
            return False
        engine_socket.writer.write(frame_of(eio_pkt))
        return True

    async def _send_packet(self, eio_sid: str, pkt: Any) -> None:
        """Acks, CONNECT answers and emits to one client come here."""
        if self._sendable(eio_sid) is not None:
            await super()._send_packet(eio_sid, pkt)

    def _sendable(self, eio_sid: str) -> Any:
        """The session's Engine.IO socket if a packet may be queued for it; None once it is
        closed (the answers to a closed session's last packets have nowhere to go: python-
        engineio would log a warning per packet) or past its budget (the slow consumer is
        dropped)."""
        engine_socket = self.eio.sockets.get(eio_sid)
        if engine_socket is None or eio_sid in self._dropping:
            return None
        why = self._over_budget(engine_socket.outbox)
        if why is not None:
            self.drop_slow(eio_sid, why)
            return None
        return engine_socket

    def _over_budget(self, outbox: Outbox) -> str | None:
        """Why a session's client is too far behind to be sent more, if it is."""
        if outbox.pending_frames >= self.max_queued_packets:
            return f"{self.max_queued_packets} packets unread"
        if outbox.pending_bytes >= self.max_queued_bytes:
            return f"{outbox.pending_bytes} bytes unread"
        return None

    def drop_slow(self, eio_sid: str, why: str) -> None:
        """Drop a slow consumer (once), in a task of its own (:meth:`_drop`).

        Never inline: the send that finds the client too slow may run inside a fan-out that
        holds the in-memory history's lock, and the close runs the disconnect handler, which
        may publish (an agent's ``agent.disconnected``) and so wait for that same lock.
        """
        if eio_sid in self._dropping or eio_sid not in self.eio.sockets:
            return
        self._dropping.add(eio_sid)
        self.start_background_task(self._drop, eio_sid, "slow_consumer", f"slow consumer: {why}", cut=True)

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        try:
            if not isinstance(data, str) or data[:1] in BINARY_PACKET_TYPES:
                raise ValueError("binary packets are not part of this API")
            await super()._handle_eio_message(eio_sid, data)
        except ValueError as exc:
            self.logger.warning("closing session %s after a malformed packet: %.120s", eio_sid, exc)
            metrics.DROPPED.labels("malformed").inc()
            await self._close_session(eio_sid)

    async def drain(self) -> None:
        """Close every Engine.IO session at once, each with a CLOSE packet.

        socket.io-client treats a closed transport as a network failure and reconnects (to
        whichever instance the load balancer picks), where a Socket.IO-level disconnect would
        make it give up. Pending long-polls are answered, so shutdown does not wait on them.
        """
        for eio_sid in list(self.eio.sockets):
            await self._close_session(eio_sid)

    async def send_now(self, sid: str, namespace: str, frames: list[Any]) -> None:
        """Queue encoded frames for ``sid`` on its Engine.IO socket, as they are, each once
        the outbox is at most half full (see 6. above)."""
        eio_sid = self.manager.eio_sid_from_sid(sid, namespace)
        socket = self.eio.sockets.get(eio_sid)
        if socket is None:
            return
        for frame in frames:
            room = socket.outbox.room(self.max_queued_bytes // 2, self.max_queued_packets // 2)
            if room is not None and not await self._room_made(socket, room):
                if not socket.closed:
                    self.drop_slow(eio_sid, f"nothing read for {self.eio.ping_timeout} s")
                return
            if socket.closed or eio_sid in self._dropping:  # before or while waiting for room
                return
            await socket.send(frame)

    async def _room_made(self, socket: Any, room: asyncio.Future[None]) -> bool:
        """Whether the client read enough for ``room`` within a ping timeout. Checked every
        second: a session that closes meanwhile (nothing will read its queue again) ends the
        wait at once rather than at the timeout."""
        waited = 0.0
        while waited < self.eio.ping_timeout and not socket.closed:
            try:
                await asyncio.wait_for(asyncio.shield(room), ROOM_CHECK_SECONDS)
                return True
            except TimeoutError:
                waited += ROOM_CHECK_SECONDS
        return False

    async def _close_session(self, eio_sid: str) -> None:
        """Close an Engine.IO session without waiting for its queue to drain.

        ``eio.disconnect()`` waits until the client has fetched every queued packet; over
        polling this handler runs inside the client's POST, and the GET that would drain the
        queue may never come, so waiting would hang that POST forever. A WebSocket is closed
        by the server too, not left open until the client (who may never) closes it.
        """
        engine_socket = self.eio.sockets.get(eio_sid)
        if engine_socket is not None:
            await engine_socket.close(wait=False, reason=self.reason.SERVER_DISCONNECT)
            self.eio.sockets.pop(eio_sid, None)
        self._dropping.discard(eio_sid)

    async def _handle_eio_connect(self, eio_sid: str, environ: Any) -> Any:
        self._arm_connect_timeout(eio_sid)
        return await super()._handle_eio_connect(eio_sid, environ)

    def _arm_connect_timeout(self, eio_sid: str) -> None:
        loop = asyncio.get_running_loop()
        self._unjoined[eio_sid] = loop.call_later(self.connect_timeout, self._connect_timed_out, eio_sid)

    def _disarm_connect_timeout(self, eio_sid: str) -> None:
        timer = self._unjoined.pop(eio_sid, None)
        if timer is not None:
            timer.cancel()

    def _connect_timed_out(self, eio_sid: str) -> None:
        """Close the session if it is still open and in no namespace. A session that closed
        meanwhile left its timer armed (nothing tells this server of a closed Engine.IO
        session but python-socketio's own handler): it ends here."""
        if self._unjoined.pop(eio_sid, None) is None or eio_sid not in self.eio.sockets:
            return
        if self._joined(eio_sid):  # a CONNECT still being handled: wait for its outcome
            self._arm_connect_timeout(eio_sid)
            return
        reason = f"connect timeout: no namespace joined within {self.connect_timeout} s"
        self.start_background_task(self._drop, eio_sid, "connect_timeout", reason)

    def _joined(self, eio_sid: str) -> bool:
        """Whether the session is in (or is being admitted to) any namespace."""
        return any(
            self.manager.sid_from_eio_sid(eio_sid, name) is not None for name in self.namespace_handlers
        )

    async def _drop(self, eio_sid: str, label: str, reason: str, cut: bool = False) -> None:
        """Close a session the gateway will not serve, audited and counted (metrics.DROPPED);
        ``cut``: a client that does not read, whose WebSocket is cut off (what it has not
        read it never will, nor a close frame behind it)."""
        metrics.DROPPED.labels(label).inc()
        audit.dropped(connection_id=eio_sid, reason=reason)
        engine_socket = self.eio.sockets.get(eio_sid)
        if cut and engine_socket is not None and engine_socket.writer is not None:
            engine_socket.writer.abort()
        await self._close_session(eio_sid)

    async def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> None:
        namespace = namespace or "/"
        if namespace not in self.namespace_handlers:
            refusal = self.packet_class(
                packet.CONNECT_ERROR, {"message": "Invalid namespace"}, namespace=namespace
            )
            await self._send_packet(eio_sid, refusal)
            if not self._joined(eio_sid):
                await self._drop(
                    eio_sid, "unknown_namespace", f"CONNECT to unknown namespace {namespace[:64]!r}"
                )
            return
        if self.manager.sid_from_eio_sid(eio_sid, namespace) is not None:
            raise ValueError(f"namespace {namespace} is already connected")
        await super()._handle_connect(eio_sid, namespace, data)
        if self._joined(eio_sid):
            self._disarm_connect_timeout(eio_sid)

    async def disconnect(self, sid: str, namespace: str | None = None, ignore_queue: bool = False) -> None:
        eio_sid = self.manager.eio_sid_from_sid(sid, namespace or "/")
        await super().disconnect(sid, namespace, ignore_queue)
        self._left(eio_sid)

    async def _handle_disconnect(self, eio_sid: str, namespace: str | None, reason: Any = None) -> None:
        await super()._handle_disconnect(eio_sid, namespace, reason)
        self._left(eio_sid)

    def _left(self, eio_sid: str | None) -> None:
        """A session left a namespace (its client asked, or the gateway ended its connection,
        as at token expiry); in none now, it has CONNECT_TIMEOUT to join again, like a new
        one, or is closed: a session in no namespace is one no limit or stat sees."""
        if eio_sid is not None and eio_sid in self.eio.sockets and not self._joined(eio_sid):
            self._disarm_connect_timeout(eio_sid)
            self._arm_connect_timeout(eio_sid)

    async def _handle_event(self, eio_sid: str, namespace: str | None, id: int | None, data: Any) -> None:
        if not isinstance(data, list) or not data:
            return
        name = data[0]
        if not isinstance(name, str) or name in LIFECYCLE_EVENTS:
            return
        await super()._handle_event(eio_sid, namespace, id, data)

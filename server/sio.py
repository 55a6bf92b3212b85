"""python-socketio's AsyncServer, hardened where a client could hurt it or fill the error log.

1. Event names. python-socketio hands a client's EVENT packet to the handlers whatever its
   first element is: a number or an object makes the namespace dispatcher raise TypeError
   (logged as a server error), and the names ``connect`` and ``disconnect`` run the
   lifecycle handlers with the client's arguments, so a client could forge its own
   disconnect. Packets whose name is not a plain string, or is a lifecycle name, are dropped
   here, before any handler runs.
2. Polling goodbyes. When a long-polling client closes its session (an Engine.IO CLOSE
   packet), python-engineio closes it without answering the GET request the client still has
   open; that request then hangs for ping interval + ping timeout (45 s by default), holding
   a connection on the server and making the python client's ``disconnect()`` wait as long.
   The Node engine.io server answers the pending poll at once (engine.io PR #291); so do we,
   by waking the session's send queue with the end-of-stream marker its ``poll()`` knows.
3. Malformed packets. A packet python-socketio cannot parse (bad JSON, a bad id, an
   unexpected type) raised out of its dispatcher and was logged at ERROR with a traceback.
   Like the Node server on a parse error, we log a warning and close that connection. Binary
   packets are refused the same way: the API is JSON, and python-socketio would otherwise
   buffer up to ten billion announced attachments per packet. A second CONNECT for a
   namespace the session already joined is refused too: python-socketio would register a
   second sid and leak the first when the session ends.
4. Log levels. python-engineio reports a client's protocol mistakes (a foreign origin, an
   unknown session id, a bad transport) at ERROR the first time, and an undecodable polling
   POST body at ERROR with a traceback every time. They are the client's errors, not the
   server's: we log them at WARNING (the once-only ones at INFO after the first), keeping
   ERROR for faults an operator must act on.
5. Slow consumers. A client that stops reading lets its outbound queue grow without bound
   (uvicorn applies back-pressure, so packets wait in python-engineio's queue). At
   ``max_queued_packets`` unread packets the session is closed and counted instead.
6. Polling batches. socket.io-client sends everything it has queued in one POST, bounded by
   bytes (the ``maxPayload`` of the handshake), not by count; python-engineio drops a whole
   POST of more than 16 packets. The count is raised to MAX_PACKETS_PER_POST; the byte bound
   (MAX_PAYLOAD_BYTES) still holds. python-engineio keeps this count on its Payload class,
   so it is set for the process: the gateway runs one engine per process.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import engineio
import engineio.payload
import socketio

from swe_realtime import audit, metrics, slim

LIFECYCLE_EVENTS = frozenset({"connect", "disconnect", "connect_error"})
BINARY_PACKET_TYPES = ("5", "6")
MAX_PACKETS_PER_POST = 1024


class EngineLogger(logging.LoggerAdapter[logging.Logger]):
    """python-engineio's logger, with undecodable client input demoted from ERROR to WARNING."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):  # engineio logs every packet at INFO: stay cheap
            return
        failure = sys.exception()
        if level >= logging.ERROR and isinstance(failure, ValueError):
            level, msg, args = logging.WARNING, "%s: %.120s", (msg, failure)
            kwargs["exc_info"] = False
        super().log(level, msg, *args, **kwargs)


class EngineServer(engineio.AsyncServer):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        engineio.payload.Payload.max_decode_packets = MAX_PACKETS_PER_POST
        # The driver's table is shared by the module: replace the entry in a copy.
        self._async: dict[str, Any] = {**self._async, "translate_request": slim.translate_request}

    def create_queue(self, *args: Any, **kwargs: Any) -> slim.SingleConsumerQueue[Any]:
        """Each session's send queue, read by its writer task alone (see slim.py)."""
        return slim.SingleConsumerQueue()

    SERVER_FAULTS = frozenset({"no-websocket"})
    """The one message key python-engineio logs once that is about the server, not a client."""

    def _log_error_once(self, message: str, message_key: str) -> None:
        if message_key in self.SERVER_FAULTS:
            super()._log_error_once(message, message_key)
            return
        level = logging.INFO if message_key in self.log_message_keys else logging.WARNING
        self.log_message_keys.add(message_key)
        self.logger.log(level, message)


class AsyncServer(socketio.AsyncServer):  # type: ignore[misc]
    def __init__(self, *args: Any, max_queued_packets: int = 1000, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_queued_packets = max_queued_packets

    def _engineio_server_class(self) -> type[EngineServer]:
        return EngineServer

    async def _send_eio_packet(self, eio_sid: str, eio_pkt: Any) -> None:
        engine_socket = self.eio.sockets.get(eio_sid)
        if engine_socket is not None and engine_socket.queue.qsize() >= self.max_queued_packets:
            metrics.DROPPED.labels("slow_consumer").inc()
            audit.dropped(
                connection_id=eio_sid, reason=f"slow consumer: {self.max_queued_packets} packets unread"
            )
            await self._close_session(eio_sid)
            return
        await super()._send_eio_packet(eio_sid, eio_pkt)

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

    async def _close_session(self, eio_sid: str) -> None:
        """Close an Engine.IO session without waiting for its queue to drain.

        ``eio.disconnect()`` waits until the client has fetched every queued packet; over
        polling this handler runs inside the client's POST, and the GET that would drain the
        queue may never come, so waiting would hang that POST forever.
        """
        engine_socket = self.eio.sockets.get(eio_sid)
        if engine_socket is not None:
            await engine_socket.close(wait=False, reason=self.reason.SERVER_DISCONNECT)
            self.eio.sockets.pop(eio_sid, None)

    async def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> None:
        if self.manager.sid_from_eio_sid(eio_sid, namespace or "/") is not None:
            raise ValueError(f"namespace {namespace} is already connected")
        await super()._handle_connect(eio_sid, namespace, data)

    async def _handle_event(self, eio_sid: str, namespace: str | None, id: int | None, data: Any) -> None:
        if not isinstance(data, list) or not data:
            return
        name = data[0]
        if not isinstance(name, str) or name in LIFECYCLE_EVENTS:
            return
        await super()._handle_event(eio_sid, namespace, id, data)

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        await super()._handle_eio_disconnect(eio_sid, reason)
        if reason != self.reason.CLIENT_DISCONNECT:
            return  # a server-side close queues a CLOSE packet, which answers the poll itself
        engine_socket = self.eio.sockets.get(eio_sid)
        if engine_socket is not None and not engine_socket.upgraded:
            engine_socket.queue.put_nowait(None)

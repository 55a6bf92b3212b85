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
3. Log levels. python-engineio reports a client's protocol mistakes (a foreign origin, an
   unknown session id, a bad transport) at ERROR the first time. They are the client's
   errors, not the server's: we log them at WARNING the first time and INFO after, keeping
   ERROR for faults an operator must act on.
"""

from __future__ import annotations

import logging
from typing import Any

import engineio
import socketio

LIFECYCLE_EVENTS = frozenset({"connect", "disconnect", "connect_error"})


class EngineServer(engineio.AsyncServer):  # type: ignore[misc]
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
    def _engineio_server_class(self) -> type[EngineServer]:
        return EngineServer

    async def _handle_event(self, eio_sid: str, namespace: str | None, id: int | None, data: Any) -> None:
        if not isinstance(data, list) or not data:
            return
        name = data[0]
        if not isinstance(name, str) or name in LIFECYCLE_EVENTS:
            return
        await super()._handle_event(eio_sid, namespace, id, data)

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        await super()._handle_eio_disconnect(eio_sid, reason)
        engine_socket = self.eio.sockets.get(eio_sid)
        if engine_socket is not None and not engine_socket.upgraded:
            engine_socket.queue.put_nowait(None)

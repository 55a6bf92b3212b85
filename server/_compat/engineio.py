"""python-engineio's AsyncServer: smaller sessions, client mistakes logged as such, bigger batches.

Read against python-engineio 4.12.2 to 4.15.1 (the UPSTREAM table below).

1. Send queues. Each session's send queue is a :class:`~swe_realtime.slim.SingleConsumerQueue`
   (``create_queue``): ``AsyncSocket`` reads it from its writer task alone, through
   ``asyncio.wait_for(queue.get(), ...)``, ``get_nowait``, ``put``, ``put_nowait``,
   ``task_done``, ``join`` and ``qsize``; a ``None`` item ends a pending poll and the writer.
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
   (MAX_PAYLOAD_BYTES) still holds. python-engineio keeps this count on its ``Payload``
   class, so it is set for the whole process (every Engine.IO server in it, ours or not).
5. Admission. python-engineio opens a session for every handshake (a polling GET or a
   WebSocket without ``sid``): ``_handle_connect`` stores the socket and queues its OPEN
   packet. ``admission`` (server/limits.py) is asked first; a refused handshake gets its
   HTTP status as an Engine.IO error response (``_make_response`` turns it into a refused
   WebSocket upgrade) and no session, with ``Connection: close`` so that a flood does not
   keep its sockets open.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from typing import Any

import engineio
import engineio.payload
from engineio.async_drivers import asgi as engineio_asgi

from swe_realtime._compat import Upstream
from swe_realtime.limits import Refusal
from swe_realtime.slim import SingleConsumerQueue

MAX_PACKETS_PER_POST = 1024

UPSTREAM = (
    Upstream(
        "python-engineio",
        "engineio.async_socket:AsyncSocket",
        {"4.12.2": "e9eb7d104125fe0c", "4.15.1": "af72dafc541d46e6"},
    ),
    Upstream(
        "python-engineio",
        "engineio.async_server:AsyncServer.create_queue",
        {"4.12.2": "5ff5673a0c017681", "4.15.1": "5ff5673a0c017681"},
    ),
    Upstream(
        "python-engineio",
        "engineio.async_server:AsyncServer.handle_request",
        {"4.12.2": "ae342cdb191890a1", "4.15.1": "1a8c878e35166cfe"},
    ),
    Upstream(
        "python-engineio",
        "engineio.async_server:AsyncServer._handle_connect",
        {"4.12.2": "c0894f342d31938e", "4.15.1": "5bd7edc1d1ae115a"},
    ),
    Upstream(
        "python-engineio",
        "engineio.base_server:BaseServer._bad_request",
        {"4.12.2": "af66afac6f6c67db", "4.15.1": "af66afac6f6c67db"},
    ),
    Upstream(
        "python-engineio",
        "engineio.base_server:BaseServer.__init__",
        {"4.12.2": "a06b17502fbd9646", "4.15.1": "a06b17502fbd9646"},
    ),
    Upstream(
        "python-engineio",
        "engineio.base_server:BaseServer._log_error_once",
        {"4.12.2": "dccbb5602dc46a09", "4.15.1": "dccbb5602dc46a09"},
    ),
    Upstream(
        "python-engineio",
        "engineio.payload:Payload.decode",
        {"4.12.2": "9c7975664d815d3d", "4.15.1": "9c7975664d815d3d"},
    ),
    Upstream(
        "python-engineio",
        "engineio.async_drivers.asgi:translate_request",
        {"4.12.2": "656f6ed71fbefdbc", "4.15.1": "39e74733f1fe46aa"},
    ),
)


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


Admission = Callable[[Mapping[str, Any], int], Refusal | None]
"""A handshake's environ and the number of open sessions -> its refusal, or None."""


class EngineServer(engineio.AsyncServer):  # type: ignore[misc]
    """python-engineio's server with the patches listed above."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.admission: Admission = lambda environ, sessions: None
        engineio.payload.Payload.max_decode_packets = MAX_PACKETS_PER_POST
        # The driver's table is shared by the module: replace the entry in a copy.
        self._async: dict[str, Any] = {**self._async, "translate_request": translate_request}

    def create_queue(self, *args: Any, **kwargs: Any) -> SingleConsumerQueue[Any]:
        """Each session's send queue, read by its writer task alone (see slim.py)."""
        return SingleConsumerQueue()

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

"""python-socketio's AsyncServer with one fix: a closed polling session frees its long-poll.

When a long-polling client says goodbye (an Engine.IO CLOSE packet), python-engineio closes
the session without answering the GET request the client still has open; that request then
hangs for ping interval + ping timeout (45 s by default), holding a connection on the server
and making the python client's ``disconnect()`` wait as long. The Node engine.io server
answers the pending poll at once (engine.io PR #291); so do we, by waking the session's send
queue with the end-of-stream marker engine.io's own ``poll()`` understands.
"""

from __future__ import annotations

from typing import Any

import socketio


class AsyncServer(socketio.AsyncServer):  # type: ignore[misc]
    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        await super()._handle_eio_disconnect(eio_sid, reason)
        engine_socket = self.eio.sockets.get(eio_sid)
        if engine_socket is not None and not engine_socket.upgraded:
            engine_socket.queue.put_nowait(None)

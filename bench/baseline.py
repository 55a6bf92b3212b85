"""The baseline: python-socketio in asgi mode under uvicorn, with no auth and no validation.

It answers ``ping`` like the gateway and greets each connection with a fixed event, so the
ratio gateway/baseline shows what authentication, rooms, validation and audit cost.
Usage: python -m bench.baseline PORT
"""

from __future__ import annotations

import sys
from typing import Any

import socketio
import uvicorn

sio = socketio.AsyncServer(async_mode="asgi")


@sio.on("connect", namespace="/ws")  # type: ignore[untyped-decorator]
async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
    sio.start_background_task(
        sio.emit, "connection_established", {"data": {"connection_id": sid}}, to=sid, namespace="/ws"
    )


@sio.on("ping", namespace="/ws")  # type: ignore[untyped-decorator]
async def ping(sid: str, *args: Any) -> dict[str, str]:
    return {"status": "pong"}


if __name__ == "__main__":
    uvicorn.run(
        socketio.ASGIApp(sio),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        ws="websockets-sansio",
        ws_ping_interval=None,
    )

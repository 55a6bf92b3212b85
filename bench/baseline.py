"""The Python baseline: python-socketio in asgi mode under uvicorn, no auth, no validation.

It does the gateway's job in the plainest way: ``subscribe`` {room} joins a room, ``ping``
answers, and POST /publish (a JSON array of {room, event, data}) emits each event to its
room with a timestamp, as the gateway's envelopes carry one. The ratio gateway/baseline is
what authentication, validation, routing and audit cost.
Usage: python -m bench.baseline PORT
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

import socketio
import uvicorn

sio = socketio.AsyncServer(async_mode="asgi")


@sio.on("connect", namespace="/ws")  # type: ignore[untyped-decorator]
async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
    sio.start_background_task(
        sio.emit, "connection_established", {"data": {"connection_id": sid}}, to=sid, namespace="/ws"
    )


@sio.on("subscribe", namespace="/ws")  # type: ignore[untyped-decorator]
async def subscribe(sid: str, payload: dict[str, str]) -> dict[str, str]:
    await sio.enter_room(sid, payload["room"], namespace="/ws")
    return {"status": "success", "room": payload["room"]}


@sio.on("ping", namespace="/ws")  # type: ignore[untyped-decorator]
async def ping(sid: str, *args: Any) -> dict[str, str]:
    return {"status": "pong"}


async def publish(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if scope["path"] == "/publish":
        for item in json.loads(body):
            stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            await sio.emit(
                item["event"], {**item["data"], "timestamp": stamp}, room=item["room"], namespace="/ws"
            )
    await send(
        {"type": "http.response.start", "status": 202, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": b"{}"})


if __name__ == "__main__":
    uvicorn.run(
        socketio.ASGIApp(sio, other_asgi_app=publish),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        ws="websockets-sansio",
        ws_ping_interval=None,
    )

"""A crowd of clients in a process of its own, so a test can SIGKILL them all mid-stream.

Usage: python -m tests.crowd URL TOKEN COUNT MODE
MODE "flood": every client sends commands without pause until the process is killed.
MODE "leave": all clients connect (a quarter over polling), then disconnect at once.
"""

from __future__ import annotations

import asyncio
import sys

import socketio

BATCH = 50


async def connect(url: str, token: str, index: int) -> socketio.AsyncClient:
    client = socketio.AsyncClient(reconnection=False)
    transport = "polling" if index % 4 == 0 else "websocket"
    await client.connect(url, namespaces=["/ws"], transports=[transport], auth={"token": token})
    return client


async def flood(client: socketio.AsyncClient) -> None:
    while True:
        await client.emit("ping", {}, namespace="/ws", callback=lambda *_: None)
        await client.emit("subscribe", {"room": "global"}, namespace="/ws")
        await asyncio.sleep(0)


async def main(url: str, token: str, count: int, mode: str) -> None:
    clients: list[socketio.AsyncClient] = []
    for start in range(0, count, BATCH):
        indices = range(start, min(count, start + BATCH))
        clients += await asyncio.gather(*(connect(url, token, i) for i in indices))
    print("ready", flush=True)
    if mode == "flood":
        await asyncio.gather(*(flood(c) for c in clients))
    else:
        await asyncio.gather(*(c.disconnect() for c in clients))
        print("left", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]))

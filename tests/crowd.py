"""A crowd of clients in a process of its own, so a test can SIGKILL them all mid-stream.

A script, not a helper module: test_resilience runs it as a separate process (no test module
imports it). Usage: python -m tests.crowd URL TOKEN COUNT MODE
MODE "flood": every client sends commands without pause until the process is killed; the
  process prints "flowing" once every client has had answers back.
MODE "leave": all clients connect (a quarter over polling), then disconnect at once.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

import socketio

BATCH = 50
FLOWING_ACKS = 5
"""Answers each client gets back before the crowd counts as flowing."""
IN_FLIGHT = 50
PAUSE = 0.02
"""Seconds each client waits between two commands. Unpaced, the WebSocket clients (answered
within a loop pass by the gateway's writer) kept this process busy enough that the long-
polling quarter's GET requests starved, and never got their first answers."""


CONNECT_SECONDS = 20
"""How long a client waits for ``/ws`` to accept it. python-socketio's default is one second,
which fifty connects at once to a gateway sharing two busy cores can take: the crowd died
before it was ready."""


async def connect(url: str, token: str, index: int) -> socketio.AsyncClient:
    client = socketio.AsyncClient(reconnection=False)
    transport = "polling" if index % 4 == 0 else "websocket"
    await client.connect(
        url, namespaces=["/ws"], transports=[transport], auth={"token": token}, wait_timeout=CONNECT_SECONDS
    )
    return client


async def flood(client: socketio.AsyncClient, flowing: Callable[[], None]) -> None:
    """Commands without pause, at most IN_FLIGHT of them unanswered: a client that sends
    without ever reading the answers is a slow consumer, and the gateway drops those."""
    acks = 0
    window = asyncio.Semaphore(IN_FLIGHT)

    def acked(*_: object) -> None:
        nonlocal acks
        window.release()
        acks += 1
        if acks == FLOWING_ACKS:
            flowing()

    while True:
        await window.acquire()
        await client.emit("ping", {}, namespace="/ws", callback=acked)
        await client.emit("subscribe", {"room": "global"}, namespace="/ws")
        await asyncio.sleep(PAUSE)


async def main(url: str, token: str, count: int, mode: str) -> None:
    clients: list[socketio.AsyncClient] = []
    for start in range(0, count, BATCH):
        indices = range(start, min(count, start + BATCH))
        clients += await asyncio.gather(*(connect(url, token, i) for i in indices))
    print("ready", flush=True)
    if mode == "flood":
        slow = len(clients)

        def flowing() -> None:
            nonlocal slow
            slow -= 1
            if slow == 0:
                print("flowing", flush=True)

        await asyncio.gather(*(flood(c, flowing) for c in clients))
    else:
        await asyncio.gather(*(c.disconnect() for c in clients))
        print("left", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]))

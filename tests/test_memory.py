"""The memory an idle WebSocket connection costs stays within its budget.

server/protocol/queues.py and the patches that install it (protocol/engineio.py, protocol/uvicorn.py)
took an idle connection from about 39 KB to 27 KB of server RSS (bench/RESULTS.md), the owned
write path (protocol/frames.py) to 21 KB. If an
upstream rename made a patch miss its target, the gateway would still work, only bigger: this
test is what notices. The clients are raw Engine.IO WebSockets (aiohttp), cheap enough for
hundreds in the test process; the server's RSS is read from /proc.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import aiohttp

from tests.support import LOAD_TEST_LIMITS, SECRET, ServerProcess, make_token

WARM_UP = 100
"""Connections opened before the first reading, so the allocator's first arenas are paid for."""
MEASURED = 600
BUDGET_KB = 20.0
"""Per idle connection. Measured here (600 connections): 17.3 KB with the handshake's headers let
go (18.3 without emptying the scope's list), 21.1 KB with the owned write path alone
(protocol/frames.py: no writer task, a ping timer instead of a sleeping ping task per session), 26.9 KB
before it, 33.7 KB without the send queue, request and protocol patches either."""


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@asynccontextmanager
async def idle_connection(session: aiohttp.ClientSession, url: str, token: str) -> AsyncIterator[None]:
    """A Socket.IO connection to /ws, held open without reading (the server's pings are
    answered by nobody: the test ends well within the first ping interval)."""
    ws_url = url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
    async with session.ws_connect(ws_url) as socket:
        assert (await socket.receive_str()).startswith("0")  # Engine.IO open
        await socket.send_str("40/ws," + json.dumps({"token": token}))
        assert (await socket.receive_str()).startswith("40/ws,")  # Socket.IO connect
        yield


async def test_idle_websocket_connections_stay_within_budget(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server({"JWT_SECRET": SECRET, **LOAD_TEST_LIMITS})
    token = make_token(ttl=600)
    connector = aiohttp.TCPConnector(limit=0)  # the default pool of 100 would hold the 101st back
    async with aiohttp.ClientSession(connector=connector) as session, AsyncExitStack() as held:

        async def open_many(count: int) -> None:
            for start in range(0, count, 50):
                await asyncio.gather(
                    *(
                        held.enter_async_context(idle_connection(session, server.url, token))
                        for _ in range(min(50, count - start))
                    )
                )

        await open_many(WARM_UP)
        before = rss_kb(server.process.pid)
        await open_many(MEASURED)
        per_connection = (rss_kb(server.process.pid) - before) / MEASURED
    print(f"server RSS per idle WebSocket connection: {per_connection:.1f} KB")
    assert per_connection < BUDGET_KB, (
        f"{per_connection:.1f} KB per idle connection (budget {BUDGET_KB}): did a patch of "
        "protocol/engineio.py or protocol/uvicorn.py stop applying?"
    )

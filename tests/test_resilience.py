"""The server survives what clients do to it: garbage packets, kills, mass disconnects."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Callable
from uuid import UUID, uuid4

import aiohttp
import pytest

from tests.support import Client, ServerProcess, eventually, make_token, stats, subscribed


async def live_connections(server: ServerProcess, user: UUID) -> int:
    """How many connections of ``user`` the gateway holds: the size of its personal room."""
    return int((await stats(server))["rooms"].get(f"user:{user}", 0))


async def settles_at(server: ServerProcess, user: UUID, expected: int, timeout: float = 30.0) -> None:
    """Until the gateway holds ``expected`` connections of ``user``: hundreds of disconnects
    take the shared gateway seconds on a busy machine, so the deadline is generous (still
    short of the 45 s, ping interval and timeout, for which a killed polling client counts)."""

    async def settled() -> bool:
        return await live_connections(server, user) == expected

    await eventually(settled, timeout, interval=0.1, message=f"{user}'s connections never came to {expected}")


# (raw Socket.IO packet, whether the connection survives it)
RAW_PACKETS = [
    ('2/ws,["disconnect"]', True),
    ('2/ws,["connect",{"token":"x"}]', True),
    ("2/ws,[5]", True),
    ('2/ws,[{"a":1}]', True),
    ('2/ws,{"a":1}', True),
    ('2/ws,"subscribe"', True),
    ("2/ws,[]", True),
    ("2/ws,[null]", True),
    ('2/ws,99999999999999999999["ping"]', True),
    ('2/elsewhere,["ping"]', True),
    ("3/ws,12345[]", True),
    ("", True),
    ("2/ws,not json", False),
    ("2/ws,[", False),
    ('2/ws,-1["ping"]', False),
    ("9garbage", False),
    ("0/ws,", False),
    ("4/ws,{}", False),
    ('5/ws,1-["subscribe",{"_placeholder":true,"num":0}]', False),
    ('5/ws,9999999999-["x"]', False),
    ("6/ws,", False),
]


@pytest.mark.parametrize(("raw", "survives"), RAW_PACKETS, ids=[repr(p) for p, _ in RAW_PACKETS])
async def test_raw_packets(
    server: ServerProcess, clients: Callable[[], Client], raw: str, survives: bool
) -> None:
    user = uuid4()
    client = await clients().connect(server.url, make_token(user))
    await client.next("connection_established")

    await client.sio.eio.send(raw)

    if survives:
        # Packets are handled in order: the answer to this command comes after the raw one's.
        assert subscribed(await client.call("subscribe", {"room": "global"}), "global")
        assert client.sio.connected
    else:
        await eventually(lambda: not client.sio.connected, 5, message="the connection survived")
    await client.close()
    await settles_at(server, user, 0)
    bystander = await clients().connect(server.url, make_token())
    assert await bystander.call("ping") == {"status": "pong"}


async def run_crowd(server: ServerProcess, user: UUID, count: int, mode: str) -> asyncio.subprocess.Process:
    """tests/crowd.py in a process of its own, once all its clients are connected."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.crowd",
        server.url,
        make_token(user),
        str(count),
        mode,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 60)
    assert line.strip() == b"ready"
    return process


async def test_clients_killed_mid_stream(server: ServerProcess, clients: Callable[[], Client]) -> None:
    user = uuid4()
    crowd = await run_crowd(server, user, 200, "flood")
    try:
        assert crowd.stdout is not None  # every client has a stream of commands and answers going
        # 200 flooding clients and the server share two cores (with the rest of the suite).
        assert (await asyncio.wait_for(crowd.stdout.readline(), 90)).strip() == b"flowing"
        assert await live_connections(server, user) == 200
    finally:
        if crowd.returncode is None:
            crowd.send_signal(signal.SIGKILL)
        await crowd.wait()

    # Websocket clients are noticed at once; the killed polling quarter only by ping timeout.
    await settles_at(server, user, 50)
    observer = await clients().connect(server.url, make_token())
    assert await observer.call("ping") == {"status": "pong"}


async def test_hundreds_disconnect_at_once(server: ServerProcess) -> None:
    user = uuid4()
    crowd = await run_crowd(server, user, 300, "leave")
    assert crowd.stdout is not None
    assert (await asyncio.wait_for(crowd.stdout.readline(), 60)).strip() == b"left"
    assert await crowd.wait() == 0
    await settles_at(server, user, 0)


class PollingSession:
    """A hand-driven Engine.IO long-polling session, for payloads no real client would send."""

    def __init__(self, http: aiohttp.ClientSession, server: ServerProcess) -> None:
        self.http = http
        self.base = f"{server.url}/socket.io/?EIO=4&transport=polling"
        self.url = ""

    async def open(self, token: str) -> None:
        async with self.http.get(self.base) as response:
            handshake = json.loads((await response.text())[1:])
        self.url = f"{self.base}&sid={handshake['sid']}"
        assert await self.post("40/ws," + json.dumps({"token": token})) == 200
        assert any(p.startswith("40/ws,") for p in await self.read())

    async def post(self, body: str) -> int:
        async with self.http.post(self.url, data=body.encode()) as response:
            return response.status

    async def read(self) -> list[str]:
        async with self.http.get(self.url) as response:
            return (await response.text()).split("\x1e")


async def test_polling_batch_larger_than_sixteen_packets(server: ServerProcess) -> None:
    async with aiohttp.ClientSession() as http:
        session = PollingSession(http, server)
        await session.open(make_token())
        batch = "\x1e".join(f'42/ws,{i}["ping",{{}}]' for i in range(40))
        assert await session.post(batch) == 200
        acks: list[str] = []
        while len(acks) < 40:
            acks += [p for p in await asyncio.wait_for(session.read(), 5) if p.startswith("43/ws,")]
        assert sorted(acks) == sorted(f'43/ws,{i}[{{"status":"pong"}}]' for i in range(40))


@pytest.mark.parametrize(
    "body", ["\x1e\x1e", "4", "4" + "2/ws,[" * 3, "\x1e".join(["40/ws,"] * 2000), "x" * 100]
)
async def test_polling_garbage_bodies(
    server: ServerProcess, clients: Callable[[], Client], body: str
) -> None:
    async with aiohttp.ClientSession() as http:
        session = PollingSession(http, server)
        await session.open(make_token())
        assert await session.post(body) in (200, 400)
    bystander = await clients().connect(server.url, make_token(), transport="polling")
    assert await bystander.call("ping") == {"status": "pong"}


async def test_polling_goodbye_answers_the_pending_poll(
    server: ServerProcess, clients: Callable[[], Client]
) -> None:
    # Without the fix in server/protocol/socketio.py the client's pending GET hangs for ping interval +
    # ping timeout, and disconnect() with it.
    client = await clients().connect(server.url, make_token(), transport="polling")
    await client.next("connection_established")
    await asyncio.wait_for(client.close(), 5)

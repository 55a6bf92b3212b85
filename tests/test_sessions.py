"""Engine.IO sessions without a token: what one may open, how long it lives, what it costs.

The attackers here speak raw Engine.IO (aiohttp WebSockets and polling requests) and never
join ``/ws``, or join another namespace; the gateway must bound them like ``/ws`` clients.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from tests.support import CLI, SECRET, Client, ServerProcess, api, eventually, make_token, metric

HANDSHAKE = "/socket.io/?EIO=4&transport="
METRICS_TOKEN = "m" * 32


def ws_url(server: ServerProcess) -> str:
    return server.url.replace("http", "ws", 1) + HANDSHAKE + "websocket"


@asynccontextmanager
async def http_session() -> AsyncIterator[aiohttp.ClientSession]:
    """An aiohttp session without a cap on its connections (floods need hundreds)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        yield session


async def engineio_socket(
    session: aiohttp.ClientSession, server: ServerProcess
) -> aiohttp.ClientWebSocketResponse:
    """A raw Engine.IO session over WebSocket, past its OPEN packet: joined to no namespace."""
    ws = await session.ws_connect(ws_url(server))
    opened = await ws.receive_str(timeout=5)
    assert opened.startswith("0{"), opened
    return ws


async def polling_handshake(session: aiohttp.ClientSession, server: ServerProcess) -> tuple[int, str]:
    """A long-polling handshake: (HTTP status, body)."""
    async with session.get(server.url + HANDSHAKE + "polling") as response:
        return response.status, await response.text()


async def until_closed(ws: aiohttp.ClientWebSocketResponse, timeout: float) -> list[str]:
    """The text frames received until the server closed the WebSocket."""
    frames = []
    async with asyncio.timeout(timeout):
        async for message in ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                frames.append(message.data)
    return frames


def open_fds(server: ServerProcess) -> int:
    return len(os.listdir(f"/proc/{server.process.pid}/fd"))


# -- item 1a: only /ws exists -------------------------------------------------------------


@pytest.mark.parametrize("connect", ["40", '40/admin,{"token":"x"}'])
async def test_connect_to_another_namespace_is_refused_and_the_session_closed(
    start_server: Callable[..., ServerProcess], connect: str
) -> None:
    server = start_server({"JWT_SECRET": SECRET, "CONNECT_TIMEOUT": "60"})
    async with http_session() as session:
        ws = await engineio_socket(session, server)
        await ws.send_str(connect)
        frames = await until_closed(ws, 5)
    assert frames[0].startswith("44"), frames  # CONNECT_ERROR
    assert "40" not in [frame[:2] for frame in frames]
    await server.logged(r"swe_realtime\.audit: drop .*unknown namespace", 0)


async def test_a_ws_client_may_not_also_join_the_default_namespace(
    server: ServerProcess, clients: Callable[[], Client]
) -> None:
    """A session in /ws that asks for / is refused that namespace and keeps /ws."""
    client = await clients().connect(server.url, make_token())
    await client.next("connection_established")
    await client.sio.eio.send("0")  # Socket.IO CONNECT to /, through the client's Engine.IO session
    # Packets of a session are handled in order: had the CONNECT closed the session, no pong.
    assert await client.call("ping") == {"status": "pong"}


# -- item 1b: a session must join /ws within CONNECT_TIMEOUT --------------------------------


async def test_a_session_that_joins_nothing_is_closed_after_the_connect_timeout(
    start_server: Callable[..., ServerProcess], clients: Callable[[], Client]
) -> None:
    server = start_server({"JWT_SECRET": SECRET, "CONNECT_TIMEOUT": "1", "METRICS_TOKEN": METRICS_TOKEN})
    member = await clients().connect(server.url, make_token())
    async with http_session() as session:
        idle = await engineio_socket(session, server)
        refused = await engineio_socket(session, server)
        await refused.send_str('40/ws,{"token":"not a token"}')
        assert (await refused.receive_str(timeout=5)).startswith("44/ws,")
        await until_closed(idle, 10)
        await until_closed(refused, 10)
    line = await server.logged(r".*swe_realtime\.audit: drop .*connect timeout.*", 0)
    assert " INFO " in line or " WARNING " in line, line
    assert (
        await metric(
            server, 'swe_realtime_connections_dropped_total{reason="connect_timeout"}', METRICS_TOKEN
        )
        == 2
    )
    assert await member.call("ping") == {"status": "pong"}  # a /ws member is not timed out


async def test_a_session_that_leaves_ws_is_closed_after_the_connect_timeout(
    start_server: Callable[..., ServerProcess],
) -> None:
    """A client that disconnects from ``/ws`` but keeps its Engine.IO session (a DISCONNECT
    packet, or ignoring the gateway's at token expiry) is in no namespace again: the same
    timeout applies, or one token would buy a session no limit or stat sees."""
    server = start_server({"JWT_SECRET": SECRET, "CONNECT_TIMEOUT": "1"})
    async with http_session() as session:
        ws = await engineio_socket(session, server)
        await ws.send_str('40/ws,{"token":"' + make_token() + '"}')
        assert (await ws.receive_str(timeout=5)).startswith("40/ws,")
        await ws.send_str("41/ws,")
        await until_closed(ws, 5)
    await server.logged(r".*swe_realtime\.audit: drop .*connect timeout.*", 0)


# -- item 1c: handshakes count toward the address and instance limits ----------------------


async def test_handshakes_count_toward_the_per_address_limit(
    start_server: Callable[..., ServerProcess], clients: Callable[[], Client]
) -> None:
    server = start_server({"JWT_SECRET": SECRET, "CONNECTS_PER_IP_PER_MINUTE": "3", "CONNECT_TIMEOUT": "60"})
    async with http_session() as session:
        # Twice the limit: the second half are there so /ws can still answer RATE_LIMITED.
        idle = [await engineio_socket(session, server) for _ in range(6)]
        status, body = await polling_handshake(session, server)
        assert status == 429, body
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await session.ws_connect(ws_url(server))
        for ws in idle:
            await ws.close()
    await server.logged(r'swe_realtime\.audit: refuse code=RATE_LIMITED reason="Too many sessions.*', 0)


async def test_handshakes_count_toward_max_connections(
    start_server: Callable[..., ServerProcess], clients: Callable[[], Client]
) -> None:
    server = start_server({"JWT_SECRET": SECRET, "MAX_CONNECTIONS": "2", "CONNECT_TIMEOUT": "60"})
    async with http_session() as session:
        idle: list[str] = []
        while len(idle) < 100:
            status, body = await polling_handshake(session, server)
            if status != 200:
                break
            idle.append(body)
        assert status == 503, body
        assert len(idle) < 100
    await server.logged(r"swe_realtime\.audit: refuse code=CONNECTION_LIMIT .*", 0)


# -- item 1d: file descriptors --------------------------------------------------------------


def low_fd_cli(tmp_path: Path, limit: int) -> Path:
    """A ``swe-realtime`` that runs under a soft limit of ``limit`` open files."""
    script = tmp_path / "swe-realtime-low-fd"
    script.write_text(f'#!/bin/sh\nulimit -n {limit}\nexec {CLI} "$@"\n')
    script.chmod(0o755)
    return script


async def test_running_short_of_file_descriptors_refuses_sessions_and_says_so(
    tmp_path: Path, clients: Callable[[], Client]
) -> None:
    server = ServerProcess(
        tmp_path / "server.log",
        {"JWT_SECRET": SECRET, "CONNECT_TIMEOUT": "120", "CONNECTS_PER_IP_PER_MINUTE": "100000"},
        cli=low_fd_cli(tmp_path, 600),
    )
    try:
        async with http_session() as session:
            flood: list[aiohttp.ClientWebSocketResponse] = []
            refused = 0
            for _ in range(800):
                try:
                    flood.append(await engineio_socket(session, server))
                except (aiohttp.ClientError, AssertionError, TimeoutError):
                    refused += 1
            assert refused > 0, "800 idle sessions under a limit of 600 files were all accepted"
            assert (await api(server, "GET", "/health"))[0] == 200
            await server.logged(r".* ERROR .*file descriptors.*", 0)
            for ws in flood:
                await ws.close()
        member = await eventually(lambda: _connects(server, clients), 20, interval=0.5)
        assert (await member.next("connection_established"))["type"] == "connection.established"
    finally:
        assert server.stop(), server.log()
    errors = server.errors_since(0)
    assert errors, "the shortage was not logged at ERROR"
    assert all("file descriptors" in line for line in errors), errors


async def _connects(server: ServerProcess, clients: Callable[[], Client]) -> Client | None:
    try:
        return await clients().connect(server.url, make_token())
    except Exception:
        return None


# -- item 2: long-polling POST bodies --------------------------------------------------------


async def _post_and_hang_up(server: ServerProcess, sid: str, declared: int, sent: int) -> None:
    """A polling POST announcing ``declared`` bytes that sends ``sent`` and then closes."""
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    head = (
        f"POST {HANDSHAKE}polling&sid={sid} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: text/plain\r\nContent-Length: {declared}\r\n\r\n"
    )
    writer.write(head.encode() + b"4" * sent)
    await writer.drain()
    writer.close()
    await writer.wait_closed()


def _sid(handshake_body: str) -> str:
    found = re.search(r'"sid":"([^"]+)"', handshake_body)
    assert found, handshake_body
    return found.group(1)


async def test_oversized_polling_posts_are_answered_and_leave_nothing(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server({"JWT_SECRET": SECRET, "CONNECT_TIMEOUT": "60"})
    async with http_session() as session:
        before = open_fds(server)
        for declared, sent in [(1_000_001, 200_000)] * 30 + [
            (100, 0)
        ] * 10:  # the latter: gone before the body
            _, body = await polling_handshake(session, server)
            await _post_and_hang_up(server, _sid(body), declared, sent)
        await eventually(lambda: open_fds(server) <= before + 2, 10, message="sockets were kept")
        _, body = await polling_handshake(session, server)
        async with session.post(
            f"{server.url}{HANDSHAKE}polling&sid={_sid(body)}",
            data=io.BytesIO(b"4" * 1_100_000),
            timeout=aiohttp.ClientTimeout(5),
        ) as response:
            assert response.status == 413
    assert server.stop(), server.log()
    assert server.errors_since(0) == []

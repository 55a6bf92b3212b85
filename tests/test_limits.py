"""Connection and payload limits, and the dev mode's defaults."""

from __future__ import annotations

import re
from collections.abc import Callable

import aiohttp
import pytest
import socketio

from tests.support import Client, ServerProcess, eventually, free_port, make_token, subscribed


async def test_max_connections(
    start_server: Callable[..., ServerProcess], clients: Callable[[], Client]
) -> None:
    server = start_server({"JWT_SECRET": "x" * 32, "MAX_CONNECTIONS": "2"})
    token = make_token(secret="x" * 32)
    first = await clients().connect(server.url, token)
    await clients().connect(server.url, token)

    refused = clients()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await refused.connect(server.url, token)
    assert refused.connect_error["data"]["data"]["error_code"] == "CONNECTION_LIMIT"

    await first.close()
    again = await clients().connect(server.url, token)
    assert (await again.next("connection_established"))["type"] == "connection.established"


async def test_oversized_message_drops_only_that_connection(
    server: ServerProcess, clients: Callable[[], Client]
) -> None:
    bystander = await clients().connect(server.url, make_token())
    sender = await clients().connect(server.url, make_token())
    await sender.sio.emit("subscribe", {"room": "x" * 1_100_000}, namespace="/ws")
    await eventually(lambda: not sender.sio.connected, 5, message="the oversized message was let through")
    assert await bystander.call("ping") == {"status": "pong"}


async def test_dev_mode_prints_a_working_token_and_allows_local_origins(
    start_server: Callable[..., ServerProcess], clients: Callable[[], Client]
) -> None:
    # The banner is printed before the gateway binds: it names a port only when given one.
    server = start_server({}, "--dev", "--port", str(free_port()))
    banner = server.log()
    token = re.search(r"member of project 550e8400-e29b-41d4-a716-446655440000:\n  (\S+)", banner)
    assert token, banner
    client = await clients().connect(server.url, token.group(1))
    assert (await client.next("connection_established"))["data"][
        "user_id"
    ] == "660e8400-e29b-41d4-a716-446655440001"
    room = "project:550e8400-e29b-41d4-a716-446655440000"
    assert subscribed(await client.call("subscribe", {"room": room}), room)
    assert f'io("{server.url}/ws", {{ auth: {{ token: "{token.group(1)}" }} }});' in banner

    # The admin is someone else: its connections are not listed as the demo user's.
    admin = re.search(r"Admin [0-9a-f-]{36} .*:\n  (\S+)", banner)
    assert admin, banner
    watcher = await clients().connect(server.url, admin.group(1))
    admin_id = (await watcher.next("connection_established"))["data"]["user_id"]
    assert admin_id != "660e8400-e29b-41d4-a716-446655440001"
    assert f"Admin {admin_id}" in banner

    handshake = f"{server.url}/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as session:
        for origin, allowed in [
            ("http://localhost:3000", True),
            ("http://127.0.0.1:5173", True),
            ("https://evil.example", False),
        ]:
            async with session.get(handshake, headers={"Origin": origin}) as response:
                assert (response.status == 200) is allowed, origin

"""The audit trail: connects, refusals and disconnects are logged, tokens never are."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from uuid import uuid4

import pytest
import socketio

from tests.support import Client, ServerProcess, make_token


async def wait_for_line(server: ServerProcess, pattern: str, offset: int) -> str:
    for _ in range(100):
        match = re.search(pattern, server.log()[offset:])
        if match:
            return match.group(0)
        await asyncio.sleep(0.05)
    raise AssertionError(f"no log line matching {pattern!r}")


async def test_connect_and_disconnect_are_audited(
    server: ServerProcess, clients: Callable[[], Client]
) -> None:
    offset = len(server.log())
    user = uuid4()
    token = make_token(user)
    client = await clients().connect(server.url, token)
    sid = client.sio.get_sid("/ws")
    await client.next("connection_established")
    await client.close()

    connect = await wait_for_line(
        server, rf"swe_realtime\.audit: connect user={user} connection={sid} .*", offset
    )
    disconnect = await wait_for_line(server, rf"swe_realtime\.audit: disconnect user={user} .*", offset)
    assert re.search(r"remote=127\.0\.0\.1:\d+ transport=websocket$", connect)
    assert re.search(
        rf"connection={sid} remote=127\.0\.0\.1:\d+ reason=\"(client disconnect|transport close)\"$",
        disconnect,
    )
    assert token not in server.log()


@pytest.mark.parametrize("via", ["auth", "query"])
async def test_refusal_is_audited_without_the_token(
    server: ServerProcess, clients: Callable[[], Client], via: str
) -> None:
    offset = len(server.log())
    token = make_token(ttl=-30)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await clients().connect(server.url, token, via=via)

    line = await wait_for_line(server, r"swe_realtime\.audit: refuse .*", offset)
    assert re.search(r'code=AUTH_FAILED reason="Token has expired" remote=127\.0\.0\.1:\d+$', line)
    assert token not in server.log()
    assert token.split(".")[2] not in server.log()

"""The audit trail: connects, refusals and disconnects are logged, tokens never are."""

from __future__ import annotations

import re
from collections.abc import Callable
from uuid import uuid4

import pytest
import socketio

from tests.support import Client, ServerProcess, make_token


async def test_connect_and_disconnect_are_audited(
    server: ServerProcess, clients: Callable[[], Client]
) -> None:
    offset = server.log_size()
    user = uuid4()
    token = make_token(user)
    client = await clients().connect(server.url, token)
    sid = client.sio.get_sid("/ws")
    await client.next("connection_established")
    await client.close()

    connect = await server.logged(rf"swe_realtime\.audit: connect user={user} connection={sid} .*", offset)
    disconnect = await server.logged(rf"swe_realtime\.audit: disconnect user={user} .*", offset)
    assert re.search(r"remote=127\.0\.0\.1:\d+ transport=websocket$", connect)
    assert re.search(
        rf"connection={sid} remote=127\.0\.0\.1:\d+ reason=\"(client disconnect|transport close)\"$",
        disconnect,
    )
    assert token not in server.log_since(offset)  # a token minted in this test, so only its lines


@pytest.mark.parametrize("via", ["auth", "query"])
async def test_refusal_is_audited_without_the_token(
    server: ServerProcess, clients: Callable[[], Client], via: str
) -> None:
    offset = server.log_size()
    token = make_token(ttl=-30)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await clients().connect(server.url, token, via=via)

    line = await server.logged(r"swe_realtime\.audit: refuse .*", offset)
    assert re.search(r'code=AUTH_FAILED reason="Token has expired" remote=127\.0\.0\.1:\d+$', line)
    assert token not in server.log_since(offset)
    assert token.split(".")[2] not in server.log_since(offset)

"""The audit trail: connects, refusals and disconnects are logged, tokens never are."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Callable
from urllib.parse import quote
from uuid import uuid4

import aiohttp
import pytest
import socketio
from hypothesis import given, settings
from hypothesis import strategies as st

from swe_realtime.telemetry.logs import TRACEBACK_INDENT, RedactingFormatter
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


async def test_an_upgrade_to_websocket_is_audited(server: ServerProcess) -> None:
    """The connect line names the transport of its moment: a session that upgrades from
    polling to WebSocket afterwards gets a line saying so, naming its connection. Raw
    Engine.IO, so that the upgrade surely follows the connect line."""
    offset = server.log_size()
    user = uuid4()
    base = f"{server.url}/socket.io/?EIO=4&transport="
    async with aiohttp.ClientSession() as session:
        async with session.get(base + "polling") as response:
            eio_sid = json.loads((await response.text())[1:])["sid"]
        body = "40/ws," + json.dumps({"token": make_token(user)})
        async with session.post(f"{base}polling&sid={eio_sid}", data=body) as response:
            assert response.status == 200
        connect = await server.logged(
            rf"swe_realtime\.audit: connect user={user} connection=(\S+) .*", offset
        )
        assert connect.endswith("transport=polling")
        sid = connect.split("connection=")[1].split()[0]
        async with session.ws_connect(f"{base}websocket&sid={eio_sid}") as ws:
            await ws.send_str("2probe")
            assert await ws.receive_str() == "3probe"
            await ws.send_str("5")
            await server.logged(
                rf"(?m)swe_realtime\.audit: upgrade connection={sid} transport=websocket$", offset
            )


async def test_a_websocket_is_logged_by_its_audit_line_alone(
    server: ServerProcess, clients: Callable[[], Client]
) -> None:
    """uvicorn's lines per WebSocket ("[accepted]", and "connection open" from websockets) are
    left out like its HTTP access log; its other lines stay."""
    offset = server.log_size()
    client = await clients().connect(server.url, make_token())
    sid = client.sio.get_sid("/ws")
    await server.logged(rf"swe_realtime\.audit: connect user=\S+ connection={sid} .*", offset)
    lines = server.log_since(offset)
    assert "[accepted]" not in lines
    assert "connection open" not in lines
    assert "Uvicorn running on" in server.log()


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


FORGED = "2030-01-01 00:00:00,000 INFO FAKE.injected: forged line user=admin"


async def test_a_client_cannot_forge_a_log_line(start_server: Callable[..., ServerProcess]) -> None:
    """python-engineio logs an unknown ``sid`` as the client sent it: a newline in it used to
    start a line of the client's choosing. On a gateway of its own: python-engineio logs the
    first unknown ``sid`` of a process only (later ones at INFO, which the gateway drops), and
    on the shared one another test may have sent one first (xdist runs them in any order)."""
    server = start_server()
    offset = server.log_size()
    forged_sid = quote(f"nope\n{FORGED}\r\n\x1b[2J\u2028{FORGED}")
    url = f"{server.url}/socket.io/?EIO=4&transport=polling&sid={forged_sid}"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 400
    await server.logged(r"FAKE\.injected", offset)
    lines = server.log_since(offset).splitlines()
    assert not [line for line in lines if line.startswith("2030-")]
    assert not [line for line in lines if any(ord(c) < 0x20 or c == "\u2028" for c in line)]
    assert any("nope\\x0a2030-01-01" in line for line in lines)


@settings(max_examples=300, deadline=None)
@given(message=st.text(), value=st.text(), failure=st.text())
def test_text_lines_hold_no_control_characters(message: str, value: str, failure: str) -> None:
    """Whatever a record carries, its text form is one line, and a traceback's lines are
    indented under it: only the gateway starts a line."""
    formatter = RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        raise ValueError(failure)
    except ValueError:
        record = logging.LogRecord("t", logging.WARNING, __file__, 1, "%s", (message,), sys.exc_info())
    record.fields = {"key": value}
    head, *rest = formatter.format(record).split("\n")
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or c in "\u2028\u2029" for c in head)
    assert rest
    assert all(line.startswith(TRACEBACK_INDENT) for line in rest)

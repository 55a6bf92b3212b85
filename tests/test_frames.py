"""Raw Engine.IO and Socket.IO frames, over WebSocket and long-polling: a client's malformed
frame is its own mistake (a WARNING, its session closed), never an ERROR in the server's log."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import Client, ServerProcess, make_token

RECORD = "\x1e"
"""Engine.IO's separator of packets in a long-polling body."""
DEEP = "[" * 1000 + "]" * 1000


class RawSession:
    """One Engine.IO session driven frame by frame, over WebSocket or long-polling."""

    def __init__(self, http: aiohttp.ClientSession, base: str, transport: str) -> None:
        self.http = http
        self.url = f"{base}/socket.io/?EIO=4&transport={transport}"
        self.transport = transport
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def open(self) -> RawSession:
        if self.transport == "websocket":
            self.ws = await self.http.ws_connect(self.url.replace("http", "ws", 1))
            opening = await self.ws.receive_str(timeout=5)
        else:
            async with self.http.get(self.url) as response:
                opening = await response.text()
        assert opening.startswith("0"), opening
        self.url += f"&sid={json.loads(opening[1:])['sid']}"
        return self

    async def send(self, *frames: str) -> None:
        """Send frames: one WebSocket message each, or one POST holding them all."""
        if self.ws is not None:
            for frame in frames:
                if self.ws.closed:
                    return
                await self.ws.send_str(frame)
            return
        async with self.http.post(self.url, data=RECORD.join(frames).encode()) as response:
            await response.read()

    async def closed(self, timeout: float = 5) -> bool:
        """Whether the server ends the session within ``timeout`` (answering pings meanwhile
        would keep it open: they are not answered here)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ws is not None:
                try:
                    message = await self.ws.receive(timeout=deadline - time.monotonic())
                except TimeoutError:
                    return False
                if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    return True
                if message.type == aiohttp.WSMsgType.TEXT and message.data == "1":
                    return True
                continue
            remaining = aiohttp.ClientTimeout(total=max(deadline - time.monotonic(), 0.1))
            try:
                async with self.http.get(self.url, timeout=remaining) as response:
                    body = await response.text()
            except TimeoutError:
                return False
            if response.status == 400 or "1" in body.split(RECORD):
                return True
        return False

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()


TRANSPORTS = ("websocket", "polling")


@pytest.fixture
async def http() -> Any:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    "frame",
    ["7", "8", "9", "x", "", f"4{DEEP}", f"42/ws,{DEEP}", f'40/ws,{{"token":{DEEP}}}', "4d="],
    ids=["eio-7", "eio-8", "eio-9", "eio-x", "empty", "eio-deep", "sio-deep", "sio-connect-deep", "sio-bad"],
)
async def test_malformed_frame_closes_the_session_with_a_warning(
    server: ServerProcess, http: aiohttp.ClientSession, transport: str, frame: str
) -> None:
    offset = server.log_size()
    session = await RawSession(http, server.url, transport).open()
    try:
        await session.send("3", frame)  # after a PONG: an empty POST body is no frame at all
        assert await session.closed(), f"the session outlived {frame[:20]!r}"
    finally:
        await session.close()
    assert server.errors_since(offset) == []


# --- fuzzing ---------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
JSON_TEXT = (
    JSON_VALUES.map(json.dumps) | st.text(max_size=30) | st.sampled_from([DEEP, "[" * 400, '{"a":' * 900])
)
COMMANDS = st.sampled_from(["subscribe", "unsubscribe", "recover", "ping", "refresh_token", "agent.status"])
SOCKETIO = st.builds(
    lambda kind, attachments, namespace, ack, body: f"4{kind}{attachments}{namespace}{ack}{body}",
    st.sampled_from("0123456789x"),
    st.sampled_from(["", "1-", "99999999999-"]),
    st.sampled_from(["", "/ws,", "/", "/other,", "/ws?x=1,"]),
    st.sampled_from(["", "1", "9" * 120]) | st.integers(0, 2**63).map(str),
    JSON_TEXT | st.builds(lambda name, args: json.dumps([name, args]), COMMANDS, JSON_VALUES),
)
ENGINEIO = st.builds(lambda kind, body: kind + body, st.sampled_from([*list("0123456789b"), ""]), JSON_TEXT)
FRAMES = st.lists(SOCKETIO | ENGINEIO | st.text(max_size=40), min_size=1, max_size=4)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(transport=st.sampled_from(TRANSPORTS), joined=st.booleans(), frames=FRAMES)
def test_fuzzed_frames_never_log_an_error(
    server: ServerProcess, transport: str, joined: bool, frames: list[str]
) -> None:
    """Whatever a client sends, before or after joining /ws, the server logs no error; the
    legitimate client afterwards (the last example's) is served."""
    offset = server.log_size()

    async def attack() -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            session = await RawSession(http, server.url, transport).open()
            try:
                if joined:
                    await session.send(f"40/ws,{json.dumps({'token': make_token()})}")
                await session.send(*frames)
                await session.send("1")  # goodbye, if the session is still open
            finally:
                await session.close()
        client = Client()
        try:
            await client.connect(server.url, make_token(), transport=transport)
            assert await client.call("ping") == {"status": "pong"}
        finally:
            await client.close()

    asyncio.run(attack())
    assert server.errors_since(offset) == [], frames


async def test_a_malformed_frame_in_an_upgrade_closes_the_polling_session(
    http: aiohttp.ClientSession, server: ServerProcess
) -> None:
    """A polling session upgrading to WebSocket whose first WebSocket frame cannot be a packet:
    the failed upgrade used to leave the polling session open (though logged as closed)."""
    session = await RawSession(http, server.url, "polling").open()
    await session.send("40/ws," + json.dumps({"token": make_token()}))  # a member: no connect timeout
    upgrade = await http.ws_connect(
        session.url.replace("http", "ws", 1).replace("transport=polling", "transport=websocket")
    )
    await upgrade.send_str("x")
    assert await session.closed(timeout=2)
    await upgrade.close()

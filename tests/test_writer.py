"""The gateway's own WebSocket write path (server/protocol/frames.py): frames corked per connection and
flushed once per loop pass, paused by the transport's flow control, never reordered.

Each test drives a real server with real sockets: raw WebSockets (tests/rawws.py) where the
test must control reading byte by byte, python-socketio's client where a normal client will do.
A test that must act on a session between two of the server's loop passes runs the server
on its own loop (``gateway_in_process``).
"""

from __future__ import annotations

import asyncio
import gc
import json
import ssl
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import uuid4

import aiohttp
import socketio
from engineio import packet

from swe_realtime.app import GatewayApp
from swe_realtime.protocol.engineio import SharedPacket, Socket
from swe_realtime.protocol.frames import State
from tests.rawws import CLOSE, PING, PONG, TEXT, RawWebSocket
from tests.support import (
    LOAD_TEST_LIMITS,
    SECRET,
    SERVICE,
    ServerProcess,
    api,
    eventually,
    gateway_in_process,
    make_token,
)
from tests.test_cluster import self_signed
from tests.test_metrics import scrape, value

ROOMY = {
    **LOAD_TEST_LIMITS,
    "JWT_SECRET": SECRET,
    "MAX_QUEUED_BYTES": str(256 * 2**20),
    "MAX_QUEUED_PACKETS": "1000000",
}
"""A budget no test here reaches: back-pressure without a drop."""


def bulky(project: str, number: int) -> dict[str, Any]:
    """A workflow.progress event of about 4 KB for ``project``, numbered in its ``current_step``."""
    return {
        "type": "workflow.progress",
        "source": "test",
        "data": {
            "workflow_id": str(uuid4()),
            "project_id": project,
            "status": "running",
            "progress": number % 101,
            "current_step": str(number),
            "logs": ["x" * 200] * 20,
        },
    }


async def publish_batch(
    server: ServerProcess, bodies: list[dict[str, Any]], tls: ssl.SSLContext | None = None
) -> None:
    status, receipt = await api(server, "POST", "/api/v1/events/batch", SERVICE, bodies, tls=tls)
    assert status == 202, receipt


async def subscribed(client: RawWebSocket, room: str) -> None:
    client.ask(1, "subscribe", {"room": room})
    await client.writer.drain()
    while not (text := await client.read_text()).startswith("43/ws,1"):
        pass
    assert json.loads(text[len("43/ws,1") :])[0]["status"] == "success", text


def event_of(text: str) -> tuple[str, dict[str, Any]] | None:
    """(name, envelope) of a Socket.IO EVENT packet in /ws, or None."""
    if not text.startswith("42/ws,["):
        return None
    name, envelope = json.loads(text[len("42/ws,") :])
    return name, envelope


async def test_order_holds_through_backpressure_acks_and_pings(
    start_server: Callable[..., ServerProcess],
) -> None:
    """A client with a 4 KB receive buffer stops reading while 2,000 events of 4 KB are
    published to its room, with acked commands and WebSocket pings sent in between. Its
    transport pauses (counted), its frames wait in the cork; once it reads again it gets every
    event in room order, every ack, and every pong with its payload, each frame whole."""
    server = start_server(ROOMY)
    project = str(uuid4())
    room = f"project:{project}"
    client = await RawWebSocket.connect(server.url, make_token(projects=[project]))
    try:
        await subscribed(client, room)
        pauses_before = value(await scrape(server), "swe_realtime_websocket_write_pauses_total")
        commands, pings = range(2, 42), [f"probe-{n}" for n in range(40)]
        for batch in range(40):  # nothing read meanwhile
            await publish_batch(server, [bulky(project, batch * 50 + n) for n in range(50)])
            client.ask(commands[batch], "ping", {})
            client.send(pings[batch], PING)
            await client.writer.drain()

        async def paused() -> bool:
            samples = await scrape(server)
            return value(samples, "swe_realtime_websocket_write_pauses_total") > pauses_before

        await eventually(paused, 10, message="the server's transport never paused")

        steps: list[int] = []
        acks: list[int] = []
        pongs: list[str] = []
        offsets: list[int] = []
        while len(steps) < 2000 or len(acks) < len(commands) or len(pongs) < len(pings):
            frame = await client.read_frame()
            if frame.opcode == PONG:
                pongs.append(frame.text)
                continue
            assert frame.opcode == TEXT, frame
            if frame.text == "2":  # an Engine.IO ping
                client.send("3")
            elif frame.text.startswith("43/ws,"):
                ack_id = int(frame.text[len("43/ws,") :].split("[", 1)[0])
                assert json.loads(frame.text[len(f"43/ws,{ack_id}") :]) == [{"status": "pong"}]
                acks.append(ack_id)
            elif (event := event_of(frame.text)) is not None and event[0] == "workflow.progress":
                steps.append(int(event[1]["data"]["current_step"]))
                offsets.append(event[1]["positions"][room]["offset"])
    finally:
        client.close()
    assert steps == list(range(2000))
    assert offsets == list(range(offsets[0], offsets[0] + 2000))
    assert sorted(acks) == list(commands)
    assert pongs == pings  # control frames between whole data frames, in the order asked


async def test_drain_closes_each_stream_after_its_last_whole_frame(
    start_server: Callable[..., ServerProcess],
) -> None:
    """SIGTERM while events are being fanned out (frames corked in every connection): every
    client reads whole frames up to the Engine.IO CLOSE packet, then the close frame, and
    nothing after it."""
    server = start_server(ROOMY)
    project = str(uuid4())
    clients = [
        await RawWebSocket.connect(server.url, make_token(projects=[project]), receive_buffer=None)
        for _ in range(20)
    ]
    for client in clients:
        await subscribed(client, f"project:{project}")

    async def flood() -> None:
        number = 0
        while True:
            await publish_batch(server, [bulky(project, number + n) for n in range(20)])
            number += 20

    async def read_to_the_end(client: RawWebSocket, steps: list[int]) -> list[int]:
        while True:
            frame = await client.read_frame()
            if frame.opcode == CLOSE:
                break
            assert frame.opcode == TEXT, frame
            if frame.text == "1":  # Engine.IO CLOSE: the close frame comes next
                assert (await client.read_frame()).opcode == CLOSE
                break
            if (event := event_of(frame.text)) is not None and event[0] == "workflow.progress":
                steps.append(int(event[1]["data"]["current_step"]))
        assert await client.reader.read() == b""  # nothing after the close frame
        return steps

    flooding = asyncio.create_task(flood())
    try:
        received: list[list[int]] = [[] for _ in clients]
        readers = [
            asyncio.create_task(read_to_the_end(*pair)) for pair in zip(clients, received, strict=True)
        ]
        await eventually(lambda: all(received), message="no event before the drain")  # mid-flood
        assert await asyncio.to_thread(server.stop)
    finally:
        flooding.cancel()
        await asyncio.gather(flooding, return_exceptions=True)
    for steps in await asyncio.gather(*readers):
        assert steps, "no event before the drain"
        assert steps == list(range(steps[0], steps[0] + len(steps)))  # contiguous, in order
    for client in clients:
        client.close()


async def test_tls_fan_out_in_order(start_server: Callable[..., ServerProcess], tmp_path: Path) -> None:
    """The same write path over TLS: corked frames go through the TLS transport whole."""
    cert, key = self_signed(tmp_path)
    server = start_server({**ROOMY, "SSL_CERT": str(cert), "SSL_KEY": str(key)}, https=True)
    tls = ssl.create_default_context(cafile=str(cert))
    project = str(uuid4())
    clients = [
        await RawWebSocket.connect(server.url, make_token(projects=[project]), tls=tls) for _ in range(5)
    ]
    try:
        for client in clients:
            await subscribed(client, f"project:{project}")
        for first in range(0, 500, 100):
            await publish_batch(server, [bulky(project, first + n) for n in range(100)], tls)
        for client in clients:
            steps: list[int] = []
            while len(steps) < 500:
                event = event_of(await client.read_text())
                if event is not None and event[0] == "workflow.progress":
                    steps.append(int(event[1]["data"]["current_step"]))
            assert steps == list(range(500))
    finally:
        for client in clients:
            client.close()


async def test_polling_upgrade_under_load_loses_and_repeats_nothing(
    start_server: Callable[..., ServerProcess],
) -> None:
    """Clients that start on long-polling and upgrade to WebSocket while their room receives
    a steady stream: from their first event on, each gets every later one once, in order,
    across the switch of transports (what the last poll did not take goes out first)."""
    server = start_server(ROOMY)
    project = str(uuid4())
    stop = asyncio.Event()

    async def stream() -> None:
        number = 0
        while not stop.is_set():
            await publish_batch(server, [bulky(project, number + n) for n in range(10)])
            number += 10
            await asyncio.sleep(0.01)

    async def member() -> tuple[list[int], str]:
        sio = socketio.AsyncClient(reconnection=False)
        steps: list[int] = []
        upgraded = asyncio.Event()

        @sio.on("workflow.progress", namespace="/ws")  # type: ignore[untyped-decorator]
        async def on_progress(envelope: dict[str, Any]) -> None:
            steps.append(int(envelope["data"]["current_step"]))
            if sio.eio.transport() == "websocket" and len(steps) > 50:
                upgraded.set()

        await sio.connect(
            server.url, namespaces=["/ws"], transports=["polling", "websocket"], auth={"token": token}
        )
        ack = await sio.call("subscribe", {"room": f"project:{project}"}, namespace="/ws", timeout=10)
        assert ack["status"] == "success", ack
        await asyncio.wait_for(upgraded.wait(), 20)
        transport = sio.eio.transport()
        await sio.disconnect()
        return steps, transport

    token = make_token(projects=[project])
    streaming = asyncio.create_task(stream())
    try:
        results = await asyncio.gather(*(member() for _ in range(6)))
    finally:
        stop.set()
        await streaming
    for steps, transport in results:
        assert transport == "websocket"
        assert steps == list(range(steps[0], steps[0] + len(steps)))


async def test_a_client_gone_with_frames_corked_leaves_no_trace(
    start_server: Callable[..., ServerProcess],
) -> None:
    """Clients that vanish (TCP reset) while a fan-out is being corked for them: the server
    logs no error, counts them gone, and serves the next client as before."""
    server = start_server(ROOMY)
    project = str(uuid4())
    room = f"project:{project}"
    leaving = [await RawWebSocket.connect(server.url, make_token(projects=[project])) for _ in range(30)]
    for client in leaving:
        await subscribed(client, room)
    publishing = asyncio.create_task(publish_batch(server, [bulky(project, n) for n in range(100)]))
    for client in leaving:
        client.close()
    await publishing
    await publish_batch(server, [bulky(project, n) for n in range(200, 210)])

    async def all_gone() -> bool:
        status, stats = await api(server, "GET", "/api/v1/websocket/stats", SERVICE)
        return status == 200 and stats["connections"] == 0

    await eventually(all_gone, 10, message="connections outlived their sockets")
    survivor = await RawWebSocket.connect(server.url, make_token(projects=[project]))
    try:
        await subscribed(survivor, room)
        await publish_batch(server, [bulky(project, 999)])
        while (event := event_of(await survivor.read_text())) is None or event[0] != "workflow.progress":
            pass
        assert event[1]["data"]["current_step"] == "999"
    finally:
        survivor.close()
    assert server.errors_since(0) == []


def tick(text: str) -> SharedPacket:
    """An Engine.IO MESSAGE packet as a fan-out sends it (no client reads these tests' ticks)."""
    return SharedPacket(packet.MESSAGE, f'2/ws,["tick","{text}"]')


async def stalled(app: GatewayApp, url: str) -> tuple[RawWebSocket, Socket]:
    """A client that reads nothing, and its session, once the kernel's buffers are full and
    the server's transport holds a few KB for it (below its high-water mark: not paused)."""
    client = await RawWebSocket.connect(url, make_token())
    [session] = app.sio.eio.sockets.values()
    assert session.writer is not None
    while session.writer.pending_bytes < 4096:
        await session.send(tick("x" * 4000))
        await asyncio.sleep(0)  # one loop pass: the cork is written
    assert session.writer.state is State.IDLE
    return client, session


async def test_closing_a_session_never_waits_for_its_client() -> None:
    """The flush that ends a session (what it corked this pass, and its CLOSE packet) can be
    the write that takes the transport past its high-water mark. uvicorn writes the close
    frame only once the transport takes more, which a client that reads nothing never lets
    it: drain (shutdown), the ping-timeout sweep and the slow-consumer drop close sessions one
    after another, so one such client held all the others. Here drain comes in the pass that
    corked a frame crossing the mark: it returns, and the client is cut off."""
    async with gateway_in_process(ROOMY) as (app, url):
        client, session = await stalled(app, url)
        writer = session.writer
        assert writer is not None

        async def corked_then_drained() -> None:
            await session.send(tick("x" * 65_000))  # corked until the end of this pass
            await app.drain()

        draining = asyncio.create_task(corked_then_drained())
        try:
            await eventually(draining.done, 10, message="drain waited for a client that reads nothing")
            assert writer.state is State.CLOSED
            assert not app.sio.eio.sockets
        finally:
            client.close()
            await draining


async def test_nothing_follows_the_close_frame_uvicorn_answered() -> None:
    """A client closes its WebSocket while the server's transport still holds frames for it:
    uvicorn queues its answering close frame behind them and closes the transport. Frames the
    session corked in that loop pass, before its handler heard of the close, must not follow
    the close frame on the wire."""
    async with gateway_in_process(ROOMY) as (app, url):
        client, session = await stalled(app, url)

        async def tick_every_pass() -> None:
            number = 0
            while not session.closed:
                await session.send(tick(str(number)))
                number += 1
                await asyncio.sleep(0)

        ticking = asyncio.create_task(tick_every_pass())
        client.send("", CLOSE)
        await client.writer.drain()
        await ticking
        try:
            while (await client.read_frame()).opcode != CLOSE:
                pass
            assert await client.reader.read() == b""
        finally:
            client.close()


async def test_a_closed_session_is_let_go_at_once() -> None:
    """A session that ended is freed by reference counting, with its WebSocket, its uvicorn
    protocol and transport, its scope and its writer: serve() runs the cycle collector a
    hundred times less often than CPython would, and a connection that lived a while is in
    its oldest generation, collected last; a reference cycle through the session (it held its
    WebSocket, whose handler is the session's own method) kept all that for as long."""
    async with gateway_in_process(ROOMY) as (app, url):
        # The ping sweep holds the sessions open when it starts a round: the first one only.
        keeper = await RawWebSocket.connect(url, make_token())
        [kept] = app.sio.eio.sockets
        gone: list[weakref.ref[Socket]] = []

        def newest() -> weakref.ref[Socket]:
            return weakref.ref(next(s for sid, s in app.sio.eio.sockets.items() if sid != kept))

        gc.disable()
        try:
            for _ in range(5):
                client = await RawWebSocket.connect(url, make_token())
                gone.append(newest())
                client.close()
            await eventually(
                lambda: not any(ref() for ref in gone),
                10,
                message="closed sessions outlived their connections",
            )
        finally:
            gc.enable()
            keeper.close()


async def test_an_upgrade_writes_what_polling_left_first(start_server: Callable[..., ServerProcess]) -> None:
    """A session subscribed over long-polling, upgraded while events queue for it: what the
    last poll took, what queued before the probe, what queued during the upgrade and what
    came after it reach the client once each, in room order (python-socketio's client
    upgrades before it joins anything, so its tests never have a queue to hand over)."""
    server = start_server(ROOMY)
    project = str(uuid4())
    steps: list[int] = []

    def take(texts: list[str]) -> None:
        steps.extend(
            int(event[1]["data"]["current_step"])
            for event in map(event_of, texts)
            if event is not None and event[0] == "workflow.progress"
        )

    polling = server.url + "/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as http:
        async with http.get(polling) as response:
            sid = json.loads((await response.text())[1:])["sid"]
        session = f"{polling}&sid={sid}"
        token = json.dumps({"token": make_token(projects=[project])})
        subscribe = json.dumps(["subscribe", {"room": f"project:{project}"}])
        for body in (f"40/ws,{token}", f"42/ws,1{subscribe}"):
            async with http.post(session, data=body) as response:
                assert response.status == 200
            async with http.get(session) as response:
                assert response.status == 200
        await publish_batch(server, [bulky(project, n) for n in range(30)])
        async with http.get(session) as response:
            take((await response.text()).split("\x1e"))
        await publish_batch(server, [bulky(project, n) for n in range(30, 60)])
        client = await RawWebSocket.upgrade(server.url, sid)
        try:
            client.send("2probe")
            assert (await client.read_frame()).text == "3probe"
            await publish_batch(server, [bulky(project, n) for n in range(60, 90)])
            client.send("5")
            await publish_batch(server, [bulky(project, n) for n in range(90, 120)])
            while len(steps) < 120:
                take([await client.read_text()])
        finally:
            client.close()
    assert steps == list(range(120))

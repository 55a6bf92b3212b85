"""The budget of unread output per connection: whatever a client leaves unread (events, acks,
replays) is bounded in bytes, a client that stops reading is dropped, a client that reads is
served however long its replay."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from swe_realtime.protocol.socketio import ROOM_CHECK_SECONDS, AsyncServer
from tests.rawws import RawWebSocket
from tests.support import (
    SECRET,
    SERVICE,
    Client,
    ServerProcess,
    api,
    eventually,
    make_token,
    metric,
    progress_event,
)

HUNG_UP_PING_TIMEOUT = 5
"""Seconds: long enough for a busy machine to hang up inside it, short enough to wait out."""
REFUSED_ROOM = {"room": "x" * 128}
"""A subscribe the gateway refuses at once with its largest ack (the room echoed, up to 128
characters): seven times a pong's bytes, for as little work."""
DROP = re.compile(r"swe_realtime\.audit: drop connection=\S+ reason=\"slow consumer: [^\"]*\"")


class StalledClient(RawWebSocket):
    """A raw WebSocket that joins ``/ws``, sends what it is told, and never reads more: its
    receive buffer is small, so the kernel holds little of what the server sends it."""

    async def command(self, name: str, args: Any, count: int, first_id: int = 1) -> None:
        """``count`` acked commands, as fast as the socket takes them; none once the server has
        cut the connection (it aborts one it drops while its writes wait on the client)."""
        with contextlib.suppress(ConnectionResetError):
            for number in range(first_id, first_id + count):
                self.send(f"42/ws,{number}{json.dumps([name, args])}")
                if number % 500 == 0:
                    await self.writer.drain()
            await self.writer.drain()


def drops(server: ServerProcess, offset: int) -> int:
    return len(DROP.findall(server.log_since(offset)))


async def test_unread_acks_drop_the_client(start_server: Callable[..., ServerProcess]) -> None:
    """Acks count like events: a client that sends commands and never reads their answers is
    dropped once they pass the byte budget (the packet bound set out of the way)."""
    server = start_server(
        {
            "JWT_SECRET": SECRET,
            "MAX_QUEUED_BYTES": str(64 * 1024),
            "MAX_QUEUED_PACKETS": "10000000",
            "COMMANDS_PER_SECOND": "1000000",
        }
    )
    stalled = await StalledClient.connect(server.url, make_token())
    sent = 0

    async def flooded() -> bool:
        """5,000 more commands, unless the client was dropped. How many it takes is not fixed
        (the kernel buffers megabytes of acks first, and a busy server reads the commands
        slower), so the flood goes on until the drop or the timeout, not for a set count."""
        nonlocal sent
        if not drops(server, 0):
            await stalled.command("subscribe", REFUSED_ROOM, 5000, first_id=sent + 1)
            sent += 5000
        return drops(server, 0) > 0

    try:
        await eventually(flooded, 60, interval=0.2, message="acked commands unread, no drop")
        assert drops(server, 0) == 1
        assert "bytes unread" in server.log()
    finally:
        stalled.close()
    reader = Client()
    try:
        await reader.connect(server.url, make_token())
        assert await reader.call("ping") == {"status": "pong"}
    finally:
        await reader.close()


def rss_kib(server: ServerProcess) -> int:
    with open(f"/proc/{server.process.pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


async def test_replays_to_stalled_clients_are_bounded_and_a_reader_recovers_all(
    start_server: Callable[..., ServerProcess],
) -> None:
    """20 connections that never read each ask for the whole history of ``global`` (1,000
    events of 10 KB): the server's memory stays bounded and they are dropped (after the ping
    timeout, cut to 3 s); a client that reads recovers all 1,000 events, more than its byte
    budget."""
    server = start_server({"JWT_SECRET": SECRET, "MAX_CONNECTIONS_PER_USER": "100", "PING_TIMEOUT": "3"})
    for _ in range(20):  # batches under MAX_PAYLOAD_BYTES (1 MB)
        batch = []
        for _ in range(50):
            event = progress_event(None)
            event["data"]["logs"] = ["x" * 10_000]
            batch.append(event)
        status, body = await api(server, "POST", "/api/v1/events/batch", SERVICE, batch)
        assert status == 202, body
    user = make_token()
    probe = await Client().connect(server.url, user)
    position = (await probe.next("connection_established"))["positions"]["global"]
    await probe.close()
    assert position["offset"] == 1000
    start = rss_kib(server)

    stalled = [await StalledClient.connect(server.url, user) for _ in range(20)]
    try:
        recover = {"room": "global", "position": {**position, "offset": 0}}
        await asyncio.gather(*(client.command("recover", recover, 1) for client in stalled))
        await eventually(lambda: drops(server, 0) >= 20, 40, message="stalled replays were not dropped")
        grown = rss_kib(server) - start
    finally:
        for client in stalled:
            client.close()
    assert grown < 60 * 1024, f"RSS grew by {grown} KiB"

    reader = Client()
    try:
        await reader.connect(server.url, user)
        ack = await reader.call("recover", recover)
        assert (ack["recovered"], ack["replayed"]) == (True, 1000)
        got = [await reader.next("workflow.progress", timeout=20) for _ in range(1000)]
        assert [event["positions"]["global"]["offset"] for event in got] == list(range(1, 1001))
    finally:
        await reader.close()


async def fill_global(server: ServerProcess, batches: int, size: int = 10_000) -> None:
    """``batches`` x 50 events of ``size`` characters in ``global``'s history."""
    for _ in range(batches):
        batch = []
        for _ in range(50):
            event = progress_event(None)
            event["data"]["logs"] = ["x" * size]
            batch.append(event)
        status, body = await api(server, "POST", "/api/v1/events/batch", SERVICE, batch)
        assert status == 202, body


async def test_an_agent_dropped_as_a_slow_consumer_does_not_stall_publishing(
    start_server: Callable[..., ServerProcess],
) -> None:
    """The drop used to close the session inside the fan-out, which holds the in-memory
    history's lock; the agent's ``agent.disconnected`` then waited for that lock: every
    publish after it hung for good."""
    server = start_server({"JWT_SECRET": SECRET, "MAX_QUEUED_BYTES": "65536"})
    agent = await StalledClient.connect(server.url, make_token(roles=["agent"]))
    try:
        await server.logged(r".*swe_realtime\.audit: connect .*", 0)
        for _ in range(4):
            await asyncio.wait_for(fill_global(server, 1, 15_000), 10)
        await eventually(lambda: drops(server, 0) >= 1, 10, message="the agent was not dropped")
        status, _ = await asyncio.wait_for(
            api(server, "POST", "/api/v1/events", SERVICE, progress_event(None)), 10
        )
        assert status == 202
        await server.logged(r".*swe_realtime\.audit: disconnect .*", 0)
    finally:
        agent.close()


async def test_live_events_held_behind_a_stalled_replay_are_bounded(
    start_server: Callable[..., ServerProcess],
) -> None:
    """While a replay waits for its client to read, the live events of its rooms are held
    behind it: a client that reads neither is dropped once MAX_QUEUED_PACKETS of them wait."""
    server = start_server({"JWT_SECRET": SECRET, "MAX_QUEUED_PACKETS": "20"})
    await fill_global(server, 20)  # more than the kernel's socket buffers take on loopback
    user = make_token()
    probe = await Client().connect(server.url, user)
    position = (await probe.next("connection_established"))["positions"]["global"]
    await probe.close()
    stalled = await StalledClient.connect(server.url, user)
    try:
        await stalled.command("recover", {"room": "global", "position": {**position, "offset": 0}}, 1)
        await replay_stalled(server)
        for _ in range(30):
            status, _ = await api(server, "POST", "/api/v1/events", SERVICE, progress_event(None))
            assert status == 202
        line = await server.logged(r".*swe_realtime\.audit: drop .*", 0, timeout=10)
        assert "live events held behind a replay" in line, line
    finally:
        stalled.close()


async def replay_stalled(server: ServerProcess) -> None:
    """Until a replay waits for its client to read: the count of events replayed has stopped,
    the same in two samples half a second apart, above 0."""
    last = -1.0

    async def stopped() -> bool:
        nonlocal last
        now = await metric(server, "swe_realtime_events_replayed_total")
        stalled, last = 0 < now == last, now
        return stalled

    await eventually(stopped, 20, interval=0.5, message="the replay did not stall")


class FullOutbox:
    """An Engine.IO socket whose client never reads: its outbox never has room."""

    def __init__(self) -> None:
        self.closed = False
        self.asked = False
        """Whether a send has asked for room (and so waits for it)."""
        self.sent: list[Any] = []
        self.outbox = self
        self._never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def room(self, max_bytes: int, max_frames: int) -> asyncio.Future[None]:
        self.asked = True
        return self._never

    async def send(self, frame: Any) -> None:
        self.sent.append(frame)


def paced_replay(
    monkeypatch: pytest.MonkeyPatch, ping_timeout: float
) -> tuple[asyncio.Task[None], FullOutbox, list[str]]:
    """A replay of one frame to a session whose client never reads, on a server alone (no
    socket): the replay's task, the session's socket, and the reasons of the drops."""
    server = AsyncServer(async_mode="asgi", ping_timeout=ping_timeout)
    socket = FullOutbox()
    server.eio.sockets["e1"] = socket
    monkeypatch.setattr(server.manager, "eio_sid_from_sid", lambda sid, namespace: "e1")
    dropped: list[str] = []
    monkeypatch.setattr(server, "drop_slow", lambda eio_sid, why: dropped.append(why))
    return asyncio.create_task(server.send_now("s1", "/ws", ["frame"])), socket, dropped


async def test_a_paced_replay_without_room_drops_its_client_after_the_ping_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started = time.monotonic()
    replay, socket, dropped = paced_replay(monkeypatch, ping_timeout=1)
    await asyncio.wait_for(replay, 1 + ROOM_CHECK_SECONDS + 5)
    assert (socket.sent, dropped) == ([], ["nothing read for 1 s"])
    assert time.monotonic() - started >= 1  # not before the ping timeout


async def test_a_paced_replay_ends_at_its_next_check_once_its_session_closes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The decision behind the test below, with a fake socket: the wait for room ends at the
    next check (each ROOM_CHECK_SECONDS), long before the ping timeout, sending nothing and
    dropping no one."""
    replay, socket, dropped = paced_replay(monkeypatch, ping_timeout=60)
    await eventually(lambda: socket.asked, message="the replay did not wait for room")
    socket.closed = True
    await asyncio.wait_for(replay, ROOM_CHECK_SECONDS + 5)
    assert (socket.sent, dropped) == ([], [])


async def test_a_replay_to_a_client_that_hung_up_ends_without_a_false_drop(
    start_server: Callable[..., ServerProcess],
) -> None:
    """A paced replay waiting for room in a session that closes meanwhile stops at once: it
    used to wait the whole ping timeout, then audit a "slow consumer" drop of a client that
    had simply left. The ping timeout is cut to 5 s, so that the test waits past it: the
    client hangs up within a second or two of the replay's stall, well inside it."""
    server = start_server({"JWT_SECRET": SECRET, "PING_TIMEOUT": str(HUNG_UP_PING_TIMEOUT)})
    await fill_global(server, 20)
    user = make_token()
    probe = await Client().connect(server.url, user)
    position = (await probe.next("connection_established"))["positions"]["global"]
    await probe.close()
    stalled = await StalledClient.connect(server.url, user)
    await stalled.command("recover", {"room": "global", "position": {**position, "offset": 0}}, 1)
    await replay_stalled(server)  # the replay filled the budget and waits for the client to read
    stalled.close()
    await server.logged(r".*swe_realtime\.audit: disconnect .*reason=\"transport close\"", 0, timeout=10)
    await asyncio.sleep(HUNG_UP_PING_TIMEOUT + 1)  # past the ping timeout: where the old wait ended
    assert drops(server, 0) == 0, server.log()

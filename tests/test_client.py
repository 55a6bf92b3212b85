"""swe_realtime.client against a real gateway: typed acks and events, refusals with their
code, resuming after the transport drops, agents' status reports, events it cannot read."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from swe_realtime import client as realtime
from swe_realtime.client import CommandFailed, ConnectionRefused, RealtimeClient, connect
from swe_realtime.errors import ErrorCode
from swe_realtime.events import ConnectionErrorEvent, ConnectionEstablished, RoomAck
from swe_realtime.events.agent import AgentStatus, AgentStatusChanged, AgentStatusReport
from swe_realtime.events.project import ProjectUpdated
from swe_realtime.events.workflow import WorkflowProgress
from tests import support
from tests.support import (
    ENDS_IN,
    SECRET,
    SERVICE,
    SHARED_REDIS,
    ServerProcess,
    api,
    ending_token,
    eventually,
    make_token,
    progress_event,
    publish,
)

EVENT_WAIT = 10.0
DOCS = Path(__file__).resolve().parent.parent / "docs"


async def next_event(events: Any, kind: type[Any] = object) -> Any:
    """The next event of the iterator that is a ``kind`` (others in between are passed over)."""
    while True:
        event = await asyncio.wait_for(anext(events), EVENT_WAIT)
        if isinstance(event, kind):
            return event


async def publish_numbered(server: ServerProcess, project: str, numbers: range) -> None:
    """workflow.progress events numbered by ``progress``, in one batch, in order."""
    batch = [progress_event(project, n) for n in numbers]
    status, body = await api(server, "POST", "/api/v1/events/batch", SERVICE, batch)
    assert status == 202, body


async def test_subscribe_and_receive_typed_events(server: ServerProcess) -> None:
    project = str(uuid4())
    room = f"project:{project}"
    async with connect(server.url, make_token(projects=[project])) as client:
        events = client.events()
        welcome = await next_event(events)
        assert isinstance(welcome, ConnectionEstablished)
        ack = await client.subscribe(room)
        assert isinstance(ack, RoomAck)
        assert ack.room == room
        assert ack.position is not None
        assert (await client.ping()).status == "pong"
        await publish(server, progress_event(project, 45))
        event = await next_event(events)
        assert isinstance(event, WorkflowProgress)
        assert event.data.progress == 45
        assert str(event.data.project_id) == project
        assert client.positions()[room] == event.positions[room]
        assert (await client.unsubscribe(room)).room == room
        assert room not in client.positions()


async def test_error_ack_raises_with_its_code(server: ServerProcess) -> None:
    async with connect(server.url, make_token()) as client:
        with pytest.raises(CommandFailed) as refused:
            await client.subscribe(f"project:{uuid4()}")
        assert refused.value.code is ErrorCode.ROOM_ACCESS_DENIED
        with pytest.raises(CommandFailed) as invalid:
            await client.subscribe("project:not-a-uuid")
        assert invalid.value.code is ErrorCode.INVALID_ROOM


@pytest.mark.parametrize(
    ("token", "code"),
    [  # made as the test runs: a token minted at collection would age with the suite
        (lambda: make_token(secret="another-secret-that-is-long-enough-!!"), ErrorCode.AUTH_FAILED),
        (lambda: "", ErrorCode.AUTH_MISSING),
    ],
)
async def test_refused_connect_raises_with_the_code(
    server: ServerProcess, token: Callable[[], str], code: ErrorCode
) -> None:
    with pytest.raises(ConnectionRefused) as refused:
        async with connect(server.url, token()):
            pass
    assert refused.value.code is code
    assert refused.value.refusal.data.error_code is code


async def test_the_namespace_url_is_refused_before_connecting(server: ServerProcess) -> None:
    with pytest.raises(ValueError, match="base URL"):
        async with connect(f"{server.url}/ws", make_token()):
            pass


async def drop_transport(client: RealtimeClient) -> None:
    """Cut the TCP connection under the client's WebSocket, as a network drop would (no close
    frame): python-socketio reconnects by itself. Returns once the client saw the drop."""
    sio = client._sio
    sio.eio.ws.get_extra_info("socket").shutdown(socket.SHUT_RDWR)
    await eventually(lambda: not sio.connected, message="the client did not notice the drop")


async def test_reconnect_resumes_without_gap_or_duplicate(server: ServerProcess) -> None:
    project = str(uuid4())
    room = f"project:{project}"
    token = make_token(projects=[project])
    async with connect(server.url, token, reconnection_delay=0.5, randomization_factor=0) as client:
        events = client.events()
        await next_event(events, ConnectionEstablished)
        await client.subscribe(room)
        await publish_numbered(server, project, range(0, 3))
        seen = [(await next_event(events, WorkflowProgress)).data.progress for _ in range(3)]

        await drop_transport(client)
        await publish_numbered(server, project, range(3, 53))  # while away (or reconnecting)
        again = await next_event(events, ConnectionEstablished)
        answers = {answer.room: answer for answer in again.data.recovery}
        assert answers[room].recovered is True
        await publish_numbered(server, project, range(53, 56))  # live, after the replay
        seen += [(await next_event(events, WorkflowProgress)).data.progress for _ in range(53)]
        assert seen == list(range(56))
        assert client.positions()[room].offset == 56
        await client.ping()  # a duplicate would have arrived before this answer
        assert client._queue.empty()


async def test_recover_replays_a_room_before_its_ack(server: ServerProcess) -> None:
    project = str(uuid4())
    room = f"project:{project}"
    token = make_token(projects=[project])
    async with connect(server.url, token) as earlier:
        events = earlier.events()
        await earlier.subscribe(room)
        await publish_numbered(server, project, range(0, 3))
        first = await next_event(events, WorkflowProgress)
    async with connect(server.url, token) as client:
        events = client.events()
        await next_event(events, ConnectionEstablished)
        ack = await client.recover(room, first.positions[room])
        assert (ack.recovered, ack.replayed) == (True, 2)
        replayed = [(await next_event(events, WorkflowProgress)).data.progress for _ in range(2)]
        assert replayed == [1, 2]
        assert client.positions()[room].offset == 3


async def test_agent_reports_its_status(server: ServerProcess) -> None:
    agent = uuid4()
    async with connect(server.url, make_token(agent, roles=["agent"])) as client:
        events = client.events()
        await next_event(events, ConnectionEstablished)
        await client.subscribe(f"agent:{agent}")
        report = AgentStatusReport(agent_name="Code Analyst", status=AgentStatus.BUSY, availability=40)
        ack = await client.report_status(report)
        event = await next_event(events, AgentStatusChanged)
        assert event.id == ack.id
        assert (event.data.agent_id, event.data.status) == (agent, AgentStatus.BUSY)


async def test_only_agents_report_status(server: ServerProcess) -> None:
    async with connect(server.url, make_token()) as client:
        report = AgentStatusReport(agent_name="Impostor", status=AgentStatus.ONLINE, availability=1)
        with pytest.raises(CommandFailed) as refused:
            await client.report_status(report)
        assert refused.value.code is ErrorCode.PERMISSION_DENIED


async def test_refresh_token_is_used_from_then_on(server: ServerProcess) -> None:
    user = uuid4()
    async with connect(server.url, make_token(user, ttl=60)) as client:
        fresh = make_token(user, ttl=3600)
        ack = await client.refresh_token(fresh)
        assert ack.left == []
        assert client._auth()["token"] == fresh


async def test_an_event_failing_validation_is_logged_and_skipped(
    server: ServerProcess, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A client whose model of workflow.progress disagrees with the gateway's (version skew,
    here staged by swapping the model): the event is skipped with a warning, its position
    still counts, and the next event comes through."""
    project = str(uuid4())
    room = f"project:{project}"
    models = dict(realtime.EVENT_MODELS)
    models["workflow.progress"] = ProjectUpdated
    monkeypatch.setattr(realtime, "EVENT_MODELS", models)
    async with connect(server.url, make_token(projects=[project])) as client:
        events = client.events()
        await next_event(events, ConnectionEstablished)
        await client.subscribe(room)
        with caplog.at_level(logging.WARNING, logger="swe_realtime.client"):
            await publish(server, progress_event(project, 7))
            update: dict[str, Any] = ProjectUpdated.example()
            update["data"] = {**update["data"], "project_id": project, "updated_by": str(uuid4())}
            await publish(server, update)
            event = await next_event(events)
        assert isinstance(event, ProjectUpdated)  # the first thing yielded: the other was skipped
        assert "skipped a workflow.progress event" in caplog.text
        assert client.positions()[room].offset == 2


async def test_token_expiry_ends_the_events_after_its_notice(server: ServerProcess) -> None:
    """At exp (plus the gateway's 5 s leeway) the gateway sends connection_error and closes:
    the client yields the notice, then its events end (no reconnection with that token)."""
    async with connect(server.url, ending_token()[0]) as client:
        seen = [event async for event in client.events()]
    assert isinstance(seen[0], ConnectionEstablished)
    assert isinstance(seen[-1], ConnectionErrorEvent)
    assert seen[-1].data.error_code is ErrorCode.AUTH_FAILED


async def test_a_reconnection_refused_for_its_token_raises(server: ServerProcess) -> None:
    """The transport drops and the token expires before the reconnection: retrying cannot
    help, so events() raises the refusal instead of reconnecting for ever. (The token ends
    within ENDS_IN seconds of minting, the reconnection comes later than that after the drop.)"""
    async with connect(
        server.url, ending_token()[0], reconnection_delay=ENDS_IN + 0.5, randomization_factor=0
    ) as client:
        events = client.events()
        await next_event(events, ConnectionEstablished)
        await drop_transport(client)
        with pytest.raises(ConnectionRefused) as refused:
            await next_event(events)
        assert refused.value.code is ErrorCode.AUTH_FAILED


def documented_programs(path: Path) -> list[str]:
    """The complete programs among a Markdown file's Python blocks (those that run themselves)."""
    blocks = re.findall(r"```python\n(.*?)```", path.read_text(), re.DOTALL)
    return [block for block in blocks if "asyncio.run(" in block]


async def run_program(source: str, env: dict[str, str], *args: str, cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        source,
        *args,
        env={**os.environ, **env},
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finished(process: asyncio.subprocess.Process) -> list[str]:
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    return out.decode().splitlines()


def progress(project: str, value: int, status: str = "running") -> dict[str, Any]:
    body = progress_event(project, value)
    body["data"]["status"] = status
    return body


async def test_the_documented_subscriber_resumes_across_runs(server: ServerProcess, tmp_path: Path) -> None:
    """docs/python-client.md's first program, run twice: what is published between the runs
    reaches the second run (from the positions the first one saved), once and in order."""
    project = str(uuid4())
    [subscriber, _agent] = documented_programs(DOCS / "python-client.md")
    env = {"GATEWAY_URL": server.url, "GATEWAY_TOKEN": make_token(projects=[project])}
    first = await run_program(subscriber, env, project, cwd=tmp_path)
    assert first.stdout is not None
    assert await asyncio.wait_for(first.stdout.readline(), 30) == b"listening\n"
    await publish(server, progress(project, 50))
    await publish(server, progress(project, 100, "completed"))
    assert await finished(first) == ["progress 50", "progress 100"]

    await publish(server, progress(project, 10))  # while no run is listening
    await publish(server, progress(project, 100, "completed"))
    second = await run_program(subscriber, env, project, cwd=tmp_path)
    assert await finished(second) == ["listening", "progress 10", "progress 100"]


async def test_the_documented_agent_reports(server: ServerProcess, tmp_path: Path) -> None:
    [_subscriber, agent] = documented_programs(DOCS / "python-client.md")
    env = {"GATEWAY_URL": server.url, "AGENT_TOKEN": make_token(roles=["agent"])}
    [line] = await finished(await run_program(agent, env, cwd=tmp_path))
    assert line.startswith("reported as event ")


GATEWAY_LIBRARIES = ("sanic", "uvicorn", "jwt", "prometheus_client", "yaml", "cryptography")
"""Imported by the gateway, not needed by the client: the ``client`` extra does not have them."""


async def test_the_readme_example_runs_without_the_gateway_libraries(
    server: ServerProcess, tmp_path: Path
) -> None:
    """The README's Python section, on the project id it names, in a process where the
    gateway extra's libraries cannot be imported."""
    [example] = documented_programs(DOCS.parent / "README.md")
    project = "550e8400-e29b-41d4-a716-446655440000"
    env = {"GATEWAY_URL": server.url, "GATEWAY_TOKEN": make_token(projects=[project])}
    blocked = f"import sys\nsys.modules.update(dict.fromkeys({GATEWAY_LIBRARIES!r}))\n"
    process = await run_program(blocked + example, env, cwd=tmp_path)
    assert process.stdout is not None
    assert (await asyncio.wait_for(process.stdout.readline(), 30)).startswith(b"subscribed at ")
    await publish(server, progress(project, 100, "completed"))
    assert (await finished(process))[-1].endswith(" 100")


@pytest.mark.redis
async def test_a_restarted_gateway_on_redis_resumes_without_gap_or_duplicate(
    cluster: Callable[..., list[ServerProcess]],
    start_server: Callable[..., ServerProcess],
) -> None:
    """The client's gateway drains (SIGTERM: its Engine.IO sessions closed, which
    python-socketio alone would not reconnect after) and comes back on the same address;
    what the other instance published meanwhile is replayed from Redis, once, in order."""
    project = str(uuid4())
    room = f"project:{project}"
    channel = f"test-{uuid4().hex[:12]}"
    home, other = cluster(2, channel=channel)
    token = make_token(projects=[project])
    async with connect(
        home.url, token, reconnection_delay=0.3, reconnection_delay_max=1, randomization_factor=0
    ) as client:
        events = client.events()
        await next_event(events, ConnectionEstablished)
        await client.subscribe(room)
        await publish_numbered(other, project, range(0, 3))
        seen = [(await next_event(events, WorkflowProgress)).data.progress for _ in range(3)]

        assert home.stop()
        await publish_numbered(other, project, range(3, 23))
        env = {"JWT_SECRET": SECRET, "REDIS_URL": SHARED_REDIS, "REDIS_CHANNEL": channel}
        start_server(env, "--port", str(home.port))
        again = await next_event(events, ConnectionEstablished)
        assert {answer.room: answer.recovered for answer in again.data.recovery}[room] is True
        seen += [(await next_event(events, WorkflowProgress)).data.progress for _ in range(20)]
        assert seen == list(range(23))
        await client.ping()
        assert client._queue.empty()


async def test_an_operators_close_is_an_event_then_the_end(server: ServerProcess) -> None:
    """DELETE /api/v1/connections/{id}: the client yields connection_error ADMIN_DISCONNECT,
    then its events end (it does not reconnect on its own)."""
    async with connect(server.url, make_token()) as client:
        events = client.events()
        welcome = await next_event(events, ConnectionEstablished)
        status, _ = await api(
            server, "DELETE", f"/api/v1/connections/{welcome.data.connection_id}", support.ADMIN
        )
        assert status == 200
        notice = await next_event(events, ConnectionErrorEvent)
        assert notice.data.error_code is ErrorCode.ADMIN_DISCONNECT
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(anext(events), EVENT_WAIT)


async def test_unread_events_are_bounded_dropping_the_oldest(server: ServerProcess) -> None:
    """A consumer that reads nothing holds at most ``max_unread`` events: the oldest go first
    and are counted, the newest are read."""
    project = str(uuid4())
    async with connect(server.url, make_token(projects=[project]), max_unread=3) as client:
        await client.subscribe(f"project:{project}")
        await publish_numbered(server, project, range(10))
        # the welcome and 10 events arrived; 3 are kept
        await eventually(lambda: client.dropped == 8, EVENT_WAIT, message=f"dropped {client.dropped}")
        events = client.events()
        kept = [await next_event(events) for _ in range(3)]
        assert [event.data.progress for event in kept] == [7, 8, 9]

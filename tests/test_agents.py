"""Agents: presence from their connections, and the agent.status command."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

import pytest

from swe_realtime.events.rooms import Room, RoomKind
from tests.support import Client, ServerProcess, drained, listener, make_token, publish_marker

STATUS = {
    "agent_name": "Reviewer",
    "status": "busy",
    "availability": 40,
    "metadata": {"version": "2.1", "cpu_usage": 71.5},
}


async def agent_connection(server: ServerProcess, clients: Callable[[], Client], agent: UUID) -> Client:
    client = await clients().connect(server.url, make_token(agent, roles=["agent"]))
    await client.next("connection_established")
    return client


async def test_presence_follows_first_and_last_connection(
    server: ServerProcess, clients: Callable[[], Client]
) -> None:
    agent = uuid4()
    watcher = await listener(server, clients, Room(RoomKind.AGENT, agent))

    first = await agent_connection(server, clients, agent)
    connected = await watcher.next("agent.connected")
    assert connected["data"]["agent_id"] == str(agent)
    assert connected["source"] == "realtime_gateway"

    second = await agent_connection(server, clients, agent)
    await first.close()
    marker = await publish_marker(server, "agent.connected")
    assert await drained(watcher, marker, "agent.connected") == 0
    assert watcher.events["agent.disconnected"].qsize() == 0

    await second.close()
    disconnected = await watcher.next("agent.disconnected")
    assert disconnected["data"]["agent_id"] == str(agent)
    assert disconnected["data"]["reason"]


async def test_presence_is_also_global(server: ServerProcess, clients: Callable[[], Client]) -> None:
    agent = uuid4()
    bystander = await clients().connect(server.url, make_token())
    await agent_connection(server, clients, agent)
    assert (await bystander.next("agent.connected"))["data"]["agent_id"] == str(agent)


async def test_users_do_not_make_presence(server: ServerProcess, clients: Callable[[], Client]) -> None:
    user = uuid4()
    watcher = await listener(server, clients, Room(RoomKind.AGENT, user))
    await clients().connect(server.url, make_token(user))
    marker = await publish_marker(server, "agent.connected")
    assert await drained(watcher, marker, "agent.connected") == 0


async def test_agent_reports_its_status(server: ServerProcess, clients: Callable[[], Client]) -> None:
    agent = uuid4()
    watcher = await listener(server, clients, Room(RoomKind.AGENT, agent))
    reporter = await agent_connection(server, clients, agent)

    ack = await reporter.call("agent.status", STATUS)

    assert ack["status"] == "success"
    event = await watcher.next("agent.status_changed")
    assert event["id"] == ack["id"]
    assert event["source"] == "agent_service"
    assert event["data"] == {
        "agent_id": str(agent),
        "agent_name": "Reviewer",
        "status": "busy",
        "availability": 40,
        "metadata": {"version": "2.1", "cpu_usage": 71.5, "memory_usage": None, "last_update": None},
    }


@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        ({**STATUS, "availability": 140}, ["availability"]),
        ({**STATUS, "availability": True}, ["availability"]),
        ({**STATUS, "status": "sleeping", "metadata": {"cpu_usage": -1}}, ["status", "metadata.cpu_usage"]),
        ({**STATUS, "agent_id": str(uuid4())}, ["agent_id"]),
        ("busy", ["(event)"]),
    ],
)
async def test_bad_status_is_refused_with_its_fields(
    server: ServerProcess, clients: Callable[[], Client], payload: Any, fields: list[str]
) -> None:
    reporter = await agent_connection(server, clients, uuid4())
    ack = await reporter.call("agent.status", payload)
    assert ack["status"] == "error"
    assert ack["error_code"] == "INVALID_EVENT"
    for field in fields:
        assert f"{field}:" in ack["message"]


async def test_users_cannot_report_agent_status(server: ServerProcess, clients: Callable[[], Client]) -> None:
    user = uuid4()
    watcher = await listener(server, clients, Room(RoomKind.AGENT, user))
    impostor = await clients().connect(server.url, make_token(user, roles=["admin"]))
    ack = await impostor.call("agent.status", STATUS)
    assert ack["error_code"] == "PERMISSION_DENIED"
    marker = await publish_marker(server, "agent.status_changed")
    assert await drained(watcher, marker, "agent.status_changed") == 0


# --- presence follows refresh_token ----------------------------------------------------------


async def test_a_refresh_out_of_the_agent_role_is_the_agents_disconnect(
    server: ServerProcess, clients: Callable[[], Client]
) -> None:
    agent = uuid4()
    watcher = await listener(server, clients, Room(RoomKind.AGENT, agent))
    robot = await agent_connection(server, clients, agent)
    await watcher.next("agent.connected")

    assert (await robot.call("refresh_token", {"token": make_token(agent)}))["status"] == "success"
    disconnected = await watcher.next("agent.disconnected")
    assert disconnected["data"]["agent_id"] == str(agent)
    assert disconnected["data"]["reason"] == "token refreshed without the agent role"
    await robot.close()
    marker = await publish_marker(server, "agent.disconnected")
    assert await drained(watcher, marker, "agent.disconnected") == 0  # the close is no second one

    again = await agent_connection(server, clients, agent)
    assert (await watcher.next("agent.connected"))["data"]["agent_id"] == str(agent)
    await again.close()
    assert (await watcher.next("agent.disconnected"))["data"]["agent_id"] == str(agent)


async def test_a_refresh_into_the_agent_role_is_the_agents_connect(
    server: ServerProcess, clients: Callable[[], Client]
) -> None:
    agent = uuid4()
    watcher = await listener(server, clients, Room(RoomKind.AGENT, agent))
    user = await clients().connect(server.url, make_token(agent))
    await user.next("connection_established")

    ack = await user.call("refresh_token", {"token": make_token(agent, roles=["agent"])})
    assert ack["status"] == "success"
    assert (await watcher.next("agent.connected"))["data"]["agent_id"] == str(agent)
    assert (await user.call("agent.status", STATUS))["status"] == "success"
    await user.close()
    assert (await watcher.next("agent.disconnected"))["data"]["agent_id"] == str(agent)

    again = await agent_connection(server, clients, agent)
    assert (await watcher.next("agent.connected"))["data"]["agent_id"] == str(agent)
    await again.close()
    assert (await watcher.next("agent.disconnected"))["data"]["agent_id"] == str(agent)


async def test_a_refresh_out_of_the_role_on_one_of_two_connections_announces_nothing(
    server: ServerProcess, clients: Callable[[], Client]
) -> None:
    agent = uuid4()
    watcher = await listener(server, clients, Room(RoomKind.AGENT, agent))
    first = await agent_connection(server, clients, agent)
    second = await agent_connection(server, clients, agent)
    await watcher.next("agent.connected")

    assert (await first.call("refresh_token", {"token": make_token(agent)}))["status"] == "success"
    marker = await publish_marker(server, "agent.disconnected")
    assert await drained(watcher, marker, "agent.disconnected") == 0
    await second.close()
    assert (await watcher.next("agent.disconnected"))["data"][
        "reason"
    ] != "token refreshed without the agent role"

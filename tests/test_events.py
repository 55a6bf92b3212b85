"""Every catalogue event end to end: published over HTTP, received by real clients in its rooms."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from swe_realtime.events.catalogue import CATALOGUE
from swe_realtime.rooms import GLOBAL, Room, RoomKind
from tests.support import Client, ServerProcess, api, make_token

SERVICE = make_token(roles=["service"], ttl=24 * 3600)
UUID_TEXT = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def fresh(value: Any, ids: dict[str, str] | None = None) -> Any:
    """The example with every UUID replaced by a new one (the same old id -> the same new id)."""
    ids = {} if ids is None else ids
    if isinstance(value, dict):
        return {key: fresh(item, ids) for key, item in value.items()}
    if isinstance(value, list):
        return [fresh(item, ids) for item in value]
    if isinstance(value, str) and UUID_TEXT.match(value):
        return ids.setdefault(value, str(uuid.uuid4()))
    return value


async def listener(server: ServerProcess, clients: Callable[[], Client], room: Room) -> Client:
    """A client that is in ``room`` (and its own user room and global), and nowhere else."""
    if room.kind is RoomKind.USER:
        client = await clients().connect(server.url, make_token(room.id))
        await client.next("connection_established")
        return client
    projects = [room.id] if room.kind is RoomKind.PROJECT else []
    client = await clients().connect(server.url, make_token(projects=projects))
    await client.next("connection_established")
    assert (await client.call("subscribe", {"room": str(room)}))["status"] == "success"
    return client


async def publish(server: ServerProcess, body: dict[str, Any]) -> dict[str, Any]:
    status, receipt = await api(server, "POST", "/api/v1/events", SERVICE, body)
    assert status == 202, receipt
    result: dict[str, Any] = receipt
    return result


async def publish_marker(server: ServerProcess, not_type: str) -> str:
    """Publish a global event of another type; once a client has it, earlier events arrived too."""
    marker_type = "ai.analysis_complete" if not_type != "ai.analysis_complete" else "workflow.progress"
    body = fresh(CATALOGUE[marker_type].event.example())
    body["data"]["project_id"] = None
    await publish(server, body)
    return marker_type


async def drained(client: Client, marker_type: str, event_type: str) -> int:
    """Wait for the marker, then count the ``event_type`` events the client holds."""
    await client.next(marker_type)
    return client.events[event_type].qsize()


def assert_delivered(received: dict[str, Any], published: dict[str, Any], receipt: dict[str, Any]) -> None:
    assert received["type"] == published["type"]
    assert received["id"] == receipt["id"]
    assert RFC3339_UTC.fullmatch(received["timestamp"])
    assert received["source"] == published["source"]
    # Every published field arrives as published; fields left out arrive with their defaults.
    assert {key: received["data"][key] for key in published["data"]} == published["data"]


@pytest.mark.parametrize("event_type", sorted(CATALOGUE))
async def test_every_event_reaches_exactly_its_rooms(
    server: ServerProcess, clients: Callable[[], Client], event_type: str
) -> None:
    entry = CATALOGUE[event_type]
    body = fresh(entry.event.example())
    rooms = entry.route.rooms(entry.event.model_validate(body).data)
    listeners = [await listener(server, clients, room) for room in rooms if room != GLOBAL]
    bystander = await listener(server, clients, GLOBAL)

    receipt = await publish(server, body)

    assert receipt["type"] == event_type
    assert receipt["rooms"] == [str(room) for room in rooms]
    wire_name = entry.event.event_name()
    for client in listeners:
        assert_delivered(await client.next(wire_name), body, receipt)
    marker = await publish_marker(server, event_type)
    for client in listeners:
        assert await drained(client, marker, wire_name) == 0  # exactly once
    expected_by_bystander = 1 if GLOBAL in rooms else 0
    assert await drained(bystander, marker, wire_name) == expected_by_bystander


@pytest.mark.parametrize("event_type", [t for t in sorted(CATALOGUE) if t.startswith(("workflow.", "ai."))])
async def test_events_without_a_project_fall_back_to_global(
    server: ServerProcess, clients: Callable[[], Client], event_type: str
) -> None:
    entry = CATALOGUE[event_type]
    body = fresh(entry.event.example())
    body["data"]["project_id"] = None
    bystander = await listener(server, clients, GLOBAL)

    receipt = await publish(server, body)

    assert receipt["rooms"] == ["global"]
    assert_delivered(await bystander.next(event_type), body, receipt)


async def test_connection_in_two_target_rooms_receives_once(
    server: ServerProcess, clients: Callable[[], Client]
) -> None:
    body = fresh(CATALOGUE["project.updated"].event.example())
    editor = uuid.UUID(body["data"]["updated_by"])
    project = body["data"]["project_id"]
    client = await clients().connect(server.url, make_token(editor, projects=[project]))
    await client.next("connection_established")
    await client.call("subscribe", {"room": f"project:{project}"})

    receipt = await publish(server, body)

    assert receipt["rooms"] == [f"project:{project}", f"user:{editor}"]
    assert_delivered(await client.next("project.updated"), body, receipt)
    marker = await publish_marker(server, "project.updated")
    assert await drained(client, marker, "project.updated") == 0


async def test_events_arrive_in_publish_order(server: ServerProcess, clients: Callable[[], Client]) -> None:
    body = fresh(CATALOGUE["workflow.progress"].event.example())
    client = await listener(server, clients, Room(RoomKind.PROJECT, uuid.UUID(body["data"]["project_id"])))
    for progress in range(0, 101, 10):
        body["data"]["progress"] = progress
        await publish(server, body)
    got = [(await client.next("workflow.progress"))["data"]["progress"] for _ in range(11)]
    assert got == list(range(0, 101, 10))

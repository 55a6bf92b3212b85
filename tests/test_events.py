"""Every catalogue event end to end: published over HTTP, received by real clients in its rooms."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from swe_realtime.events.catalogue import CATALOGUE
from swe_realtime.events.rooms import GLOBAL, Room, RoomKind, parse_room
from tests.support import Client, ServerProcess, drained, fresh, listener, make_token, publish, publish_marker

RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


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
    rooms = [
        parse_room(name)
        for name in entry.route.rooms(entry.event.model_validate(body).model_dump(mode="json")["data"])
    ]
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

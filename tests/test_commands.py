"""subscribe / unsubscribe / ping: success paths, each error code, and malformed input."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

import pytest

from tests.support import Client, ServerProcess, make_token, stats, subscribed

TRANSPORTS = ["websocket", "polling"]


async def connected(
    server: ServerProcess, clients: Callable[[], Client], transport: str = "websocket", **claims: Any
) -> tuple[Client, UUID]:
    user = claims.pop("user", None) or uuid4()
    client = await clients().connect(server.url, make_token(user, **claims), transport=transport)
    await client.next("connection_established")
    return client, user


def error(code: str, room: str | None, message: str) -> dict[str, Any]:
    return {"status": "error", "room": room, "error_code": code, "message": message}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_ping_answers_pong(
    server: ServerProcess, clients: Callable[[], Client], transport: str
) -> None:
    client, _ = await connected(server, clients, transport)
    assert await client.call("ping", {}) == {"status": "pong"}
    assert await client.call("ping") == {"status": "pong"}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_subscribe_to_allowed_rooms(
    server: ServerProcess, clients: Callable[[], Client], transport: str
) -> None:
    project = uuid4()
    client, user = await connected(server, clients, transport, projects=[project])
    agent = uuid4()
    for room in (f"project:{project}", f"agent:{agent}", "global", f"user:{user}"):
        assert subscribed(await client.call("subscribe", {"room": room}), room)


async def test_subscribe_normalises_uuid_case(server: ServerProcess, clients: Callable[[], Client]) -> None:
    project = uuid4()
    client, _ = await connected(server, clients, projects=[project])
    shouted = f"project:{str(project).upper()}"
    assert subscribed(await client.call("subscribe", {"room": shouted}), f"project:{project}")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_subscribe_denied(server: ServerProcess, clients: Callable[[], Client], transport: str) -> None:
    client, _ = await connected(server, clients, transport, projects=[uuid4()])
    for room in (f"project:{uuid4()}", f"user:{uuid4()}"):
        assert await client.call("subscribe", {"room": room}) == error(
            "ROOM_ACCESS_DENIED", room, "Access denied to room"
        )


async def test_admin_may_subscribe_anywhere(server: ServerProcess, clients: Callable[[], Client]) -> None:
    client, _ = await connected(server, clients, roles=["admin"])
    for room in (f"project:{uuid4()}", f"user:{uuid4()}"):
        assert (await client.call("subscribe", {"room": room}))["status"] == "success"


INVALID_ROOMS = [
    "",
    "project",
    "project:",
    "project:123",
    "team:550e8400-e29b-41d4-a716-446655440000",
    "Global",
    "global ",
    "project:550e8400e29b41d4a716446655440000",
    "project:{550e8400-e29b-41d4-a716-446655440000}",
    "project:550e8400-e29b-41d4-a716-446655440000:extra",
    "project:550e8400-e29b-41d4-a716-44665544000g",
    "user:550e8400-e29b-41d4-a716-446655440000\n",
]


@pytest.mark.parametrize("room", INVALID_ROOMS)
async def test_invalid_room_format(server: ServerProcess, clients: Callable[[], Client], room: str) -> None:
    client, _ = await connected(server, clients, roles=["admin"])
    for command in ("subscribe", "unsubscribe"):
        assert await client.call(command, {"room": room}) == error(
            "INVALID_ROOM", room, "Invalid room format"
        )


@pytest.mark.parametrize("length", [10_000, 900_000])
async def test_huge_room_is_invalid_and_not_echoed(
    server: ServerProcess, clients: Callable[[], Client], length: int
) -> None:
    client, _ = await connected(server, clients)
    answer = await client.call("subscribe", {"room": "project:" + "a" * length})
    assert answer == error("INVALID_ROOM", None, "Invalid room format")
    assert await client.call("ping") == {"status": "pong"}


BAD_PAYLOADS: list[Any] = [
    None,
    "project:550e8400-e29b-41d4-a716-446655440000",
    42,
    [{"room": "global"}],
    {},
    {"rooms": "global"},
    {"room": None},
    {"room": 42},
    {"room": ["global"]},
    {"room": {"name": "global"}},
    {"room": True},
    ("global", "extra"),
    (),
]


@pytest.mark.parametrize("payload", BAD_PAYLOADS, ids=repr)
@pytest.mark.parametrize("command", ["subscribe", "unsubscribe"])
async def test_malformed_payload_is_invalid_request(
    server: ServerProcess, clients: Callable[[], Client], command: str, payload: Any
) -> None:
    client, _ = await connected(server, clients)
    answer = await client.call(command, payload) if payload != () else await client.call(command)
    assert answer["status"] == "error"
    assert answer["error_code"] == "INVALID_REQUEST"
    assert answer["room"] is None
    assert await client.call("ping") == {"status": "pong"}


async def test_extra_keys_are_ignored(server: ServerProcess, clients: Callable[[], Client]) -> None:
    client, _ = await connected(server, clients)
    assert subscribed(await client.call("subscribe", {"room": "global", "since": 5}), "global")


@pytest.mark.parametrize("event", ["publish", "Subscribe", "x" * 10_000, "trigger_event", "_subscribe"])
async def test_unknown_event_gets_error_ack(
    server: ServerProcess, clients: Callable[[], Client], event: str
) -> None:
    client, _ = await connected(server, clients)
    answer = await client.call(event, {"room": "global"})
    assert answer["status"] == "error"
    assert answer["error_code"] == "INVALID_REQUEST"
    assert answer["message"].startswith("Unknown event")
    assert len(answer["message"]) < 100
    assert await client.call("ping") == {"status": "pong"}


async def test_unsubscribe_leaves_the_room(server: ServerProcess, clients: Callable[[], Client]) -> None:
    project = uuid4()
    client, user = await connected(server, clients, projects=[project])
    room = f"project:{project}"
    await client.call("subscribe", {"room": room})
    assert (await stats(server))["rooms"].get(room) == 1

    assert await client.call("unsubscribe", {"room": room}) == {
        "status": "success",
        "room": room,
        "position": None,
    }
    assert room not in (await stats(server))["rooms"]
    # Leaving a room one is not in is not an error: the end state is what was asked for.
    assert await client.call("unsubscribe", {"room": room}) == {
        "status": "success",
        "room": room,
        "position": None,
    }
    assert await client.call("unsubscribe", {"room": f"user:{user}"}) == {
        "status": "success",
        "room": f"user:{user}",
        "position": None,
    }
    assert f"user:{user}" not in (await stats(server))["rooms"]

"""The in-memory history stays bounded in rooms and time, whatever clients do (issue 15, item 10).

Without Redis every room a client subscribes to gets a history entry (its epoch and count), so
that positions handed out at subscribe stay valid. Any user may subscribe to any ``agent:``
room; before, the entries were swept only every 1,000 publishes, so a user walking through
rooms on a quiet gateway grew the gateway without end.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import uuid4

from tests.support import SECRET, Client, ServerProcess, eventually, make_token
from tests.test_metrics import scrape, value

ROOMS_GAUGE = "swe_realtime_history_rooms"
WALK = 2_000
"""Distinct rooms the attacker walks through: 20 times the bound of the gateway below."""
BOUND = 10 * 10
"""MAX_CONNECTIONS x MAX_ROOMS_PER_CONNECTION of that gateway: the rooms its history keeps."""


async def history_rooms(server: ServerProcess) -> float:
    return value(await scrape(server), ROOMS_GAUGE)


async def walk_through_rooms(client: Client, count: int) -> list[dict[str, Any]]:
    """Subscribe to and leave ``count`` fresh agent rooms; the subscribe acks."""
    acks = []
    for _ in range(count):
        room = f"agent:{uuid4()}"
        ack = await client.call("subscribe", {"room": room})
        assert ack["status"] == "success", ack
        assert (await client.call("unsubscribe", {"room": room}))["status"] == "success"
        acks.append(ack)
    return acks


async def test_walking_through_rooms_leaves_the_history_bounded(
    start_server: Callable[..., ServerProcess], clients: Callable[[], Client]
) -> None:
    gateway = start_server(
        {
            "JWT_SECRET": SECRET,
            "MAX_CONNECTIONS": "10",
            "MAX_ROOMS_PER_CONNECTION": "10",
            "COMMANDS_PER_SECOND": "1000000",
        }
    )
    client = await clients().connect(gateway.url, make_token())
    await client.next("connection_established")

    [first, *_] = await walk_through_rooms(client, WALK)

    assert 0 < await history_rooms(gateway) <= BOUND
    # The first room was evicted: its history starts a new epoch, which the client is told.
    recover = {"room": first["room"], "position": first["position"]}
    ack = await client.call("recover", recover)
    assert (ack["status"], ack["recovered"], ack["reason"]) == ("success", False, "epoch_changed")
    assert ack["position"]["epoch"] != first["position"]["epoch"]


async def test_history_rooms_expire_after_the_ttl(
    start_server: Callable[..., ServerProcess], clients: Callable[[], Client]
) -> None:
    gateway = start_server({"JWT_SECRET": SECRET, "HISTORY_TTL": "1", "COMMANDS_PER_SECOND": "1000000"})
    client = await clients().connect(gateway.url, make_token())
    await client.next("connection_established")
    await walk_through_rooms(client, 200)
    assert await history_rooms(gateway) >= 200

    async def swept() -> bool:
        # Expired rooms go at the next touch of the history: here a subscribe to one room.
        await walk_through_rooms(client, 1)
        return await history_rooms(gateway) <= 2

    await eventually(swept, 10, interval=0.5, message="idle rooms outlived HISTORY_TTL")

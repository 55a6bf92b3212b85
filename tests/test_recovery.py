"""Missed-event recovery: positions on every event, history per room, resume on reconnect.

Each test counts events by a number carried in ``current_step``, so that "all, in order,
once" is checked exactly: the numbers received must be the numbers published, in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from swe_realtime.events.catalogue import CATALOGUE
from tests.support import (
    SECRET,
    SERVICE,
    Client,
    RedisProcess,
    ServerProcess,
    api,
    eventually,
    make_token,
    node_script,
    progress_event,
    received,
    wait_ready,
)


def numbered(project: str, number: int) -> dict[str, Any]:
    body = progress_event(project, number % 101)
    body["data"]["current_step"] = str(number)
    return body


async def publish_numbered(server: ServerProcess, project: str, numbers: range) -> None:
    """Publish the numbered events in batches of 100, in order."""
    for start in range(numbers.start, numbers.stop, 100):
        batch = [numbered(project, n) for n in range(start, min(start + 100, numbers.stop))]
        status, body = await api(server, "POST", "/api/v1/events/batch", SERVICE, batch)
        assert status == 202, body


async def numbers(client: Client, count: int, settle: float = 0.5) -> list[int]:
    """The numbers of the next ``count`` events; then nothing more may come within ``settle``."""
    return await received(client, count, settle, field="current_step")


async def watcher(url: str, clients: Callable[[], Client], project: str, **auth: Any) -> Client:
    token = make_token(projects=[project])
    return await clients().connect(url, auth={"token": token, **auth})


async def away_from(url: str, clients: Callable[[], Client], project: str) -> dict[str, Any]:
    """Subscribe to the project's room, then drop: the position the client left at."""
    first = await watcher(url, clients, project)
    position: dict[str, Any] = (await first.call("subscribe", {"room": f"project:{project}"}))["position"]
    await first.close()
    return position


def last_position(event: dict[str, Any], room: str) -> dict[str, Any]:
    position: dict[str, Any] = event["positions"][room]
    return position


async def test_reconnect_replays_missed_events_in_order_once_then_live(
    server: ServerProcess, clients: Callable[[], Client]
) -> None:
    project = str(uuid4())
    room = f"project:{project}"
    first = await watcher(server.url, clients, project)
    await first.next("connection_established")
    ack = await first.call("subscribe", {"room": room})
    assert ack["position"]["offset"] == 0  # a new room: nothing before
    await publish_numbered(server, project, range(0, 3))
    seen = [await first.next("workflow.progress") for _ in range(3)]
    assert [int(e["data"]["current_step"]) for e in seen] == [0, 1, 2]
    assert [last_position(e, room)["offset"] for e in seen] == [1, 2, 3]
    position = last_position(seen[-1], room)
    await first.close()

    await publish_numbered(server, project, range(3, 203))  # 200 events while away
    second = await watcher(server.url, clients, project, positions={room: position})
    welcome = await second.next("connection_established")
    [answer] = welcome["data"]["recovery"]
    assert answer == {
        "status": "success",
        "room": room,
        "recovered": True,
        "replayed": 200,
        "reason": None,
        "position": {"epoch": position["epoch"], "offset": 203},
    }
    assert await numbers(second, 200, settle=0.2) == list(range(3, 203))
    await publish_numbered(server, project, range(203, 206))
    assert await numbers(second, 3) == [203, 204, 205]


async def test_replay_and_live_publishing_race_without_gap_or_duplicate(
    server: ServerProcess, clients: Callable[[], Client]
) -> None:
    """Events keep coming while the client reconnects: the replay/live seam must not show."""
    project = str(uuid4())
    room = f"project:{project}"
    position = await away_from(server.url, clients, project)

    published = 0

    async def publish_one_by_one() -> None:
        nonlocal published
        for number in range(300):
            status, _ = await api(server, "POST", "/api/v1/events", SERVICE, numbered(project, number))
            assert status == 202
            published += 1

    publishing = asyncio.create_task(publish_one_by_one())
    # Some published before the reconnect, the rest during and after.
    await eventually(lambda: published >= 30, message="the publisher did not get going")
    second = await watcher(server.url, clients, project, positions={room: position})
    assert published < 300, "all was published before the reconnect: no race was tested"
    await publishing
    assert await numbers(second, 300) == list(range(300))


async def test_recover_command_joins_a_room_later(
    server: ServerProcess, clients: Callable[[], Client]
) -> None:
    project = str(uuid4())
    room = f"project:{project}"
    position = await away_from(server.url, clients, project)
    await publish_numbered(server, project, range(0, 5))

    second = await watcher(server.url, clients, project)
    await second.next("connection_established")
    ack = await second.call("recover", {"room": room, "position": position})
    assert ack["recovered"] is True
    assert ack["replayed"] == 5
    assert ack["position"]["offset"] == 5
    assert await numbers(second, 5) == [0, 1, 2, 3, 4]  # they came before the ack


async def test_trimmed_history_says_not_recovered(
    start_server: Callable[..., ServerProcess], clients: Callable[[], Client]
) -> None:
    gateway = start_server({"JWT_SECRET": SECRET, "HISTORY_SIZE": "10"})
    project = str(uuid4())
    room = f"project:{project}"
    position = await away_from(gateway.url, clients, project)
    await publish_numbered(gateway, project, range(0, 20))

    second = await watcher(gateway.url, clients, project, positions={room: position})
    [answer] = (await second.next("connection_established"))["data"]["recovery"]
    assert answer["recovered"] is False
    assert answer["reason"] == "history_trimmed"
    assert answer["replayed"] == 0
    assert answer["position"]["offset"] == 20  # the client refetches, then goes on from here
    await publish_numbered(gateway, project, range(20, 22))
    assert await numbers(second, 2) == [20, 21]


async def test_history_off_sends_no_positions(
    start_server: Callable[..., ServerProcess], clients: Callable[[], Client]
) -> None:
    gateway = start_server({"JWT_SECRET": SECRET, "HISTORY_SIZE": "0"})
    project = str(uuid4())
    client = await watcher(gateway.url, clients, project)
    ack = await client.call("subscribe", {"room": f"project:{project}"})
    assert ack["position"] is None
    await publish_numbered(gateway, project, range(0, 1))
    assert (await client.next("workflow.progress"))["positions"] == {}
    answer = await client.call(
        "recover", {"room": f"project:{project}", "position": {"epoch": "x", "offset": 1}}
    )
    assert answer["recovered"] is False
    assert answer["reason"] == "history_off"


async def test_bad_positions_are_answered_never_replayed(
    server: ServerProcess, clients: Callable[[], Client]
) -> None:
    project, other = str(uuid4()), str(uuid4())
    room = f"project:{project}"
    first = await watcher(server.url, clients, project)
    position = (await first.call("subscribe", {"room": room}))["position"]
    await publish_numbered(server, project, range(0, 3))
    await publish_numbered(server, other, range(0, 3))  # a room the client may not enter
    client = await watcher(server.url, clients, project)
    await client.next("connection_established")

    ahead = await client.call("recover", {"room": room, "position": {**position, "offset": 1000}})
    assert (ahead["recovered"], ahead["reason"], ahead["replayed"]) == (False, "position_ahead", 0)
    elsewhere = await client.call("recover", {"room": room, "position": {"epoch": "another", "offset": 1}})
    assert (elsewhere["recovered"], elsewhere["reason"]) == (False, "epoch_changed")
    denied = await client.call(
        "recover", {"room": f"project:{other}", "position": {"epoch": "e", "offset": 0}}
    )
    assert denied["error_code"] == "ROOM_ACCESS_DENIED"
    for payload in (
        {"room": room},
        {"room": room, "position": {"epoch": position["epoch"], "offset": -1}},
        {"room": room, "position": {"epoch": position["epoch"], "offset": 2**60}},
        {"room": room, "position": {"epoch": position["epoch"], "offset": "1"}},
        {"room": room, "position": {"epoch": position["epoch"], "offset": 1.5}},
        {"room": room, "position": {"epoch": "e" * 10_000, "offset": 1}},
        {"room": room, "position": [position]},
    ):
        refused = await client.call("recover", payload)
        assert refused["error_code"] == "INVALID_REQUEST", payload
    assert client.events["workflow.progress"].qsize() == 0  # nothing replayed by any of these

    positions: dict[str, Any] = {f"project:{uuid4()}": position for _ in range(500)}
    enormous = await watcher(server.url, clients, project, positions=positions)
    [answer] = (await enormous.next("connection_established"))["data"]["recovery"]
    assert answer["error_code"] == "INVALID_REQUEST"
    mixed = await watcher(
        server.url,
        clients,
        project,
        positions={
            room: {"epoch": position["epoch"], "offset": 1},
            f"project:{other}": position,
            "nope": position,
        },
    )
    answers = (await mixed.next("connection_established"))["data"]["recovery"]
    assert sorted(a.get("error_code") or "ok" for a in answers) == [
        "INVALID_ROOM",
        "ROOM_ACCESS_DENIED",
        "ok",
    ]
    assert await numbers(mixed, 2) == [1, 2]  # only its own room's events, after offset 1
    for junk in ("positions", 7, None, [room]):
        odd = await watcher(server.url, clients, project, positions=junk)
        welcome = await odd.next("connection_established")
        assert welcome["data"]["recovery"] in ([], [answer]), junk


@pytest.mark.redis
async def test_two_instances_recover_on_the_other_one(
    cluster: Callable[..., list[ServerProcess]], clients: Callable[[], Client]
) -> None:
    gateways = cluster(2)
    project = str(uuid4())
    room = f"project:{project}"
    first = await watcher(gateways[0].url, clients, project)
    await first.call("subscribe", {"room": room})
    await publish_numbered(gateways[1], project, range(0, 1))
    position = last_position(await first.next("workflow.progress"), room)
    await first.close()

    await publish_numbered(gateways[0], project, range(1, 101))
    await publish_numbered(gateways[1], project, range(101, 201))
    second = await watcher(gateways[1].url, clients, project, positions={room: position})
    [answer] = (await second.next("connection_established"))["data"]["recovery"]
    assert (answer["recovered"], answer["replayed"]) == (True, 200)
    assert await numbers(second, 200, settle=0.2) == list(range(1, 201))
    await publish_numbered(gateways[0], project, range(201, 203))
    assert await numbers(second, 2) == [201, 202]


@pytest.mark.redis
async def test_redis_restart_gives_a_new_epoch(
    cluster: Callable[..., list[ServerProcess]], private_redis: RedisProcess, clients: Callable[[], Client]
) -> None:
    [gateway] = cluster(1, private_redis.url)
    project = str(uuid4())
    room = f"project:{project}"
    first = await watcher(gateway.url, clients, project)
    await first.call("subscribe", {"room": room})
    await publish_numbered(gateway, project, range(0, 2))
    position = last_position((await first.next("workflow.progress")), room)
    await first.close()

    private_redis.stop()
    private_redis.start()  # no persistence: every history is gone
    await wait_ready(gateway, 200)  # the gateway is back on Redis
    await publish_numbered(gateway, project, range(2, 3))
    second = await watcher(gateway.url, clients, project, positions={room: position})
    [answer] = (await second.next("connection_established"))["data"]["recovery"]
    assert (answer["recovered"], answer["reason"]) == (False, "epoch_changed")
    assert answer["position"]["epoch"] != position["epoch"]


@pytest.mark.node
async def test_resume_helper_with_socket_io_client_reconnection(server: ServerProcess) -> None:
    """contracts/typescript/resume.js in node: the transport drops, 100 events go out meanwhile,
    socket.io-client reconnects by itself and the helper's positions bring them all back."""
    project = str(uuid4())
    seen = await node_script(
        "resume_flow.mjs",
        server.url,
        make_token(projects=[project]),
        SERVICE,
        project,
        cwd=Path(__file__).with_name("node"),
    )
    assert seen["connects"] == 2
    assert seen["numbers"] == list(range(108))
    answers = {answer["room"]: answer for answer in seen["answers"]}
    # Its project room, and the user room and global from the first welcome's positions.
    assert len(answers) == 3
    assert f"project:{project}" in answers
    assert all(answer["recovered"] is True for answer in answers.values())
    assert seen["positions"][f"project:{project}"]["offset"] == 108


async def test_rooms_joined_at_connect_can_be_resumed_too(
    server: ServerProcess, clients: Callable[[], Client]
) -> None:
    """The welcome carries the positions of the user room and global: a client that got no
    event there before dropping still gets what was sent to its user room meanwhile."""
    user = uuid4()
    room = f"user:{user}"
    first = await clients().connect(server.url, make_token(user))
    welcome = await first.next("connection_established")
    assert set(welcome["positions"]) == {room, "global"}
    position = welcome["positions"][room]
    await first.close()

    event: dict[str, Any] = CATALOGUE["project.updated"].event.example()
    event["data"] = {**event["data"], "project_id": str(uuid4()), "updated_by": str(user)}
    status, _ = await api(server, "POST", "/api/v1/events", SERVICE, event)
    assert status == 202

    second = await clients().connect(
        server.url, auth={"token": make_token(user), "positions": {room: position}}
    )
    again = await second.next("connection_established")
    [answer] = again["data"]["recovery"]
    assert (answer["recovered"], answer["replayed"]) == (True, 1)
    assert set(again["positions"]) == {"global"}  # the user room was resumed instead
    assert (await second.next("project.updated"))["data"]["updated_by"] == str(user)

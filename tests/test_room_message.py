"""The message a room's channel carries (server/publish/message.py), and what rides on it.

The format is read by every instance on every event, and written by Lua in Redis: its unit
tests hold the Python reading against frames built the way server/protocol/frames.py builds them; the
gateway tests hold the promise it exists for: a member's socket is written the publisher's
bytes, and a replay from the stream writes the very same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from uuid import uuid4

import pytest

from swe_realtime.cluster.streams import _pending, _rounds
from swe_realtime.protocol.frames import text_frame
from swe_realtime.protocol.websocket import frame_head
from swe_realtime.publish.broadcaster import parse_event
from swe_realtime.publish.message import (
    Outgoing,
    RoomMessage,
    header_head,
    packet_head,
    without_positions,
)
from tests.rawws import RawWebSocket
from tests.support import RedisProcess, ServerProcess, example, make_token, publish


@pytest.mark.parametrize("length", [0, 125, 126, 65535, 65536])
def test_frame_heads_match_the_writer_at_every_length_boundary(length: int) -> None:
    text = "x" * length
    assert frame_head(0x81, length) + text.encode() == text_frame(text)


def test_a_message_without_positions_reads_back() -> None:
    rooms = ["project:a", "user:b"]
    data = without_positions("project.updated", 1_700_000_000_123, 1, rooms, '{"type":"project.updated"}')
    message = RoomMessage(data)
    assert message.event == "project.updated"
    assert message.accepted == 1_700_000_000.123
    assert (message.room, message.several) == ("user:b", True)
    assert message.position is None
    assert message.positions == {}
    assert message.text == '42/ws,["project.updated",{"type":"project.updated","positions":{}}]'
    assert message.frame == text_frame(message.text)


def test_a_copy_reads_its_own_position_and_those_of_the_rooms_before() -> None:
    rooms = ["project:a", "user:b", "global"]
    data = header_head("x.y", 5, 1, rooms) + b"E1:4,E2:9\n" + text_frame('42/ws,["x.y",{}]')
    message = RoomMessage(data)
    assert message.position == ("E2", 9)
    assert message.positions == {
        "project:a": {"epoch": "E1", "offset": 4},
        "user:b": {"epoch": "E2", "offset": 9},
    }
    assert message.room == "user:b"


def test_the_packet_head_leaves_room_for_positions() -> None:
    head = packet_head("pr.created", '{"a":"é"}')
    assert head.startswith("42/ws,")
    assert json.loads((head + '"r":1}}]')[len("42/ws,") :]) == [
        "pr.created",
        {"a": "é", "positions": {"r": 1}},
    ]


def outgoing(rooms: list[str]) -> Outgoing:
    return Outgoing("project.updated", parse_event(example("project.updated")), rooms)


def test_a_cluster_appends_an_events_rooms_in_rounds_keeping_each_rooms_batch_order() -> None:
    first, second, third = (_pending(outgoing(rooms)) for rooms in (["a", "b"], ["b"], ["c", "a"]))
    rounds = _rounds([first, second, third], cluster=True)
    named = [
        [(item.event.rooms[index], [first, second, third].index(item)) for item, index in r] for r in rounds
    ]
    # b: the first event's copy (round 2) before the second's; a: the first's before the third's.
    assert named == [[("a", 0), ("c", 2)], [("b", 0), ("b", 1), ("a", 2)]]


def test_one_redis_appends_a_whole_batch_in_one_round() -> None:
    items = [_pending(outgoing(rooms)) for rooms in (["a", "b"], ["b"])]
    assert _rounds(items, cluster=False) == [[(items[0], 0), (items[0], 1), (items[1], 0)]]


async def frames_of(socket: RawWebSocket, event: str, count: int) -> list[bytes]:
    """The raw text of the next ``count`` frames carrying ``event``, in order."""
    found: list[bytes] = []
    while len(found) < count:
        text = await socket.read_text()
        if text.startswith(f'42/ws,["{event}"'):
            found.append(text.encode())
    return found


@pytest.mark.redis
async def test_live_and_replayed_frames_are_the_same_bytes_on_every_instance(
    cluster: Callable[..., list[ServerProcess]], private_redis: RedisProcess
) -> None:
    first, second = cluster(2, redis_url=private_redis.url)
    user, project = uuid4(), str(uuid4())
    token = make_token(user, projects=[project])
    live = [
        await RawWebSocket.connect(gateway.url, token, receive_buffer=None) for gateway in (first, second)
    ]
    for socket in live:
        socket.ask(1, "subscribe", {"room": f"project:{project}"})
        while not (answer := await socket.read_text()).startswith("43/ws,1"):  # the welcome first
            pass
        assert json.loads(answer[len("43/ws,1") :])[0]["status"] == "success"

    bodies: list[dict[str, Any]] = []
    for name in ("Élan ✓ 数据", "plain"):  # not ASCII, then ASCII: the bytes as pydantic wrote them
        body = example("project.updated")
        body["data"].update(project_id=project, updated_by=str(user), project_name=name)
        bodies.append(body)
    for body in bodies:  # a project and a user room: the copy of the user room, all positions
        await publish(first, body)
    got = [await frames_of(socket, "project.updated", 2) for socket in live]
    assert got[0] == got[1]
    positions = json.loads(got[0][0][len("42/ws,") :])[1]["positions"]
    assert set(positions) == {f"project:{project}", f"user:{user}"}

    resumed = await RawWebSocket.connect(
        second.url,
        token,
        receive_buffer=None,
        positions={f"user:{user}": {**positions[f"user:{user}"], "offset": 0}},
    )
    assert await frames_of(resumed, "project.updated", 2) == got[0]
    for socket in (*live, resumed):
        socket.close()

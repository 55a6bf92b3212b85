"""The delivery layer's decisions, without a socket: who gets an event, once, past which gate,
and what the in-memory history numbers and gives back. Seconds, not processes.

The fan-out talks to its Socket.IO server through four members (``deliver``,
``_send_eio_packet``, ``drop_slow``, ``max_queued_packets``: server/protocol/socketio.py);
:class:`Outbox` stands in for it and records what each Engine.IO session was handed.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict, deque
from types import SimpleNamespace
from typing import Any
from uuid import uuid4

import pytest
from socketio import packet

from swe_realtime.backends import LocalBackend, RedisBackend, backend_for
from swe_realtime.cluster.manager import ChannelManager
from swe_realtime.delivery.fanout import FanoutManager
from swe_realtime.delivery.gate import Gate
from swe_realtime.delivery.history import MemoryHistory
from swe_realtime.events import NAMESPACE
from swe_realtime.events.commands import RecoveryFailure
from swe_realtime.events.envelope import StreamPosition
from swe_realtime.publish.broadcaster import Broadcaster, parse_event
from swe_realtime.settings import HistorySettings, RedisSettings, Settings
from tests.support import SECRET, project_update

PROJECT, OTHER = f"project:{uuid4()}", f"project:{uuid4()}"


class Outbox:
    """The Socket.IO server as the fan-out sees it: each session's frames, in order."""

    packet_class = packet.Packet
    max_queued_packets = 3

    def __init__(self, *, polling: frozenset[str] = frozenset()) -> None:
        self.written: defaultdict[str, list[Any]] = defaultdict(list)
        """Frames handed to a session's frame writer (a WebSocket)."""
        self.queued: defaultdict[str, list[Any]] = defaultdict(list)
        """Packets put on a session's send queue (long-polling)."""
        self.dropped: dict[str, str] = {}
        self._polling = polling
        self.eio = SimpleNamespace(generate_id=lambda: uuid4().hex)

    def deliver(self, eio_sid: str, frame: Any) -> bool:
        if eio_sid in self._polling:
            return False
        self.written[eio_sid].append(frame)
        return True

    async def _send_eio_packet(self, eio_sid: str, frame: Any) -> None:
        self.queued[eio_sid].append(frame)

    def drop_slow(self, eio_sid: str, why: str) -> None:
        self.dropped[eio_sid] = why


async def _manager(outbox: Outbox) -> FanoutManager:
    manager = FanoutManager()
    manager.set_server(outbox)
    return manager


async def _join(manager: FanoutManager, eio_sid: str, *rooms: str) -> str:
    sid: str = await manager.connect(eio_sid, NAMESPACE)
    for room in rooms:
        await manager.enter_room(sid, NAMESPACE, room)
    return sid


def _event(offset: int | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"type": "x", "timestamp": "2026-12-07T00:00:00Z"}
    if offset is not None:
        data["positions"] = {PROJECT: {"epoch": "e1", "offset": offset}}
    return data


async def test_a_member_of_several_target_rooms_gets_one_copy_and_all_share_one_frame() -> None:
    outbox = Outbox()
    manager = await _manager(outbox)
    await _join(manager, "both", PROJECT, OTHER)
    await _join(manager, "one", OTHER)
    await _join(manager, "neither")
    await manager.emit("project.updated", _event(), NAMESPACE, room=[PROJECT, OTHER])
    assert len(outbox.written["both"]) == 1
    assert outbox.written["both"] == outbox.written["one"]
    assert outbox.written["both"][0] is outbox.written["one"][0]  # encoded once
    assert "neither" not in outbox.written


async def test_the_sender_skipped_and_a_polling_session_queued() -> None:
    outbox = Outbox(polling=frozenset({"polling"}))
    manager = await _manager(outbox)
    skipped = await _join(manager, "skipped", PROJECT)
    await _join(manager, "polling", PROJECT)
    await manager.emit("project.updated", _event(), NAMESPACE, room=PROJECT, skip_sid=skipped)
    assert "skipped" not in outbox.written
    assert len(outbox.queued["polling"]) == 1


async def test_a_gate_holds_live_events_behind_a_replay_and_drops_a_reader_too_slow() -> None:
    outbox = Outbox()
    manager = await _manager(outbox)
    sid = await _join(manager, "catching-up", PROJECT)
    gate = manager.gates[sid] = Gate(held=deque())
    for offset in range(1, outbox.max_queued_packets + 1):
        await manager.emit("project.updated", _event(offset), NAMESPACE, room=PROJECT)
    assert "catching-up" not in outbox.written
    assert gate.held is not None
    assert len(gate.held) == outbox.max_queued_packets
    assert outbox.dropped == {}
    await manager.emit("project.updated", _event(4), NAMESPACE, room=PROJECT)
    assert outbox.dropped == {"catching-up": "live events held behind a replay"}


async def test_a_floor_drops_what_the_replay_covered_then_goes() -> None:
    outbox = Outbox()
    manager = await _manager(outbox)
    sid = await _join(manager, "recovered", PROJECT)
    manager.gates[sid] = Gate(floors={PROJECT: ("e1", 5)})
    await manager.emit("project.updated", _event(5), NAMESPACE, room=PROJECT)
    assert "recovered" not in outbox.written
    await manager.emit("project.updated", _event(6), NAMESPACE, room=PROJECT)
    assert len(outbox.written["recovered"]) == 1
    assert sid not in manager.gates  # past its floor: the connection has no gate any more


async def test_a_disconnect_leaves_its_own_rooms_only() -> None:
    manager = await _manager(Outbox())
    gone = await _join(manager, "gone", PROJECT, OTHER)
    stays = await _join(manager, "stays", OTHER)
    assert manager.named_rooms(NAMESPACE) == 2
    await manager.disconnect(gone, NAMESPACE)
    assert manager.named_rooms(NAMESPACE) == 1
    assert list(manager.members(NAMESPACE, OTHER)) == [stays]
    assert gone not in manager.rooms_of


def _history(size: int = 3, max_rooms: int = 10) -> tuple[MemoryHistory, Outbox]:
    outbox = Outbox()
    manager = FanoutManager()
    manager.set_server(outbox)
    return MemoryHistory(manager, HistorySettings(size=size), max_rooms), outbox


async def _publish(history: MemoryHistory, project: str, times: int = 1) -> None:
    for _ in range(times):
        await Broadcaster(history).publish(parse_event(project_update(project, uuid4())))


async def test_the_history_numbers_each_room_from_one_and_replays_what_follows_a_position() -> None:
    history, _ = _history()
    project = str(uuid4())
    await _publish(history, project, times=2)
    [now] = await history.windows([(f"project:{project}", None)])
    assert now.position is not None
    assert now.position.offset == 2
    [after_one] = await history.windows(
        [(f"project:{project}", StreamPosition(epoch=now.position.epoch, offset=1))]
    )
    assert [entry.positions[f"project:{project}"]["offset"] for entry in after_one.entries] == [2]


@pytest.mark.parametrize(
    ("asked", "failure"),
    [
        (lambda epoch: StreamPosition(epoch="another", offset=1), RecoveryFailure.EPOCH_CHANGED),
        (lambda epoch: StreamPosition(epoch=epoch, offset=9), RecoveryFailure.POSITION_AHEAD),
        (lambda epoch: StreamPosition(epoch=epoch, offset=1), RecoveryFailure.HISTORY_TRIMMED),
    ],
    ids=["epoch changed", "position ahead", "trimmed"],
)
async def test_a_position_the_history_cannot_serve_says_why(asked: Any, failure: RecoveryFailure) -> None:
    history, _ = _history(size=2)
    project = str(uuid4())
    await _publish(history, project, times=5)
    [now] = await history.windows([(f"project:{project}", None)])
    assert now.position is not None
    [window] = await history.windows([(f"project:{project}", asked(now.position.epoch))])
    assert (window.failure, window.entries) == (failure, ())


async def test_a_room_pushed_out_of_a_full_history_starts_a_new_epoch() -> None:
    history, _ = _history(max_rooms=2)
    first, second, third = (str(uuid4()) for _ in range(3))
    await _publish(history, first)
    [before] = await history.windows([(f"project:{first}", None)])
    await _publish(history, second)
    await _publish(history, third)  # the history keeps two rooms: the idlest, first's, goes
    [after] = await history.windows([(f"project:{first}", None)])
    assert before.position is not None
    assert after.position is not None
    assert after.position.epoch != before.position.epoch
    assert after.position.offset == 0


def test_one_backend_is_chosen_from_the_settings() -> None:
    local = Settings.from_env({"JWT_SECRET": SECRET})
    assert isinstance(backend_for(local), LocalBackend)
    assert backend_for(local).ready()
    on_redis = dataclasses.replace(local, redis=RedisSettings("redis://127.0.0.1:1/0"))
    backend = backend_for(on_redis)
    assert isinstance(backend, RedisBackend)
    assert isinstance(backend.manager, ChannelManager)
    assert not backend.ready()  # nothing subscribed nor heard from Redis yet

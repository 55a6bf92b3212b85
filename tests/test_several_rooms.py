"""Which copy of an event for several rooms each member is sent (server/delivery/several_rooms.py),
against a small membership table: copies in either order, members leaving and joining between
them, a copy that never comes. The same promises, over real gateways and a real Redis
Cluster, are in test_cluster_promises.py."""

from __future__ import annotations

from dataclasses import dataclass, field

from swe_realtime.delivery.several_rooms import Delivery, Ledger

ROOMS = ["agent:a", "global"]
"""An agent event: its agent room, then global."""


@dataclass
class Instance:
    """Who is in which room here, and what each member was sent."""

    members: dict[str, set[str]] = field(default_factory=dict)
    now: float = 0.0
    ledger: Ledger = field(init=False)

    def __post_init__(self) -> None:
        self.ledger = Ledger(ttl=5.0, clock=lambda: self.now)

    def member(self, sid: str, room: str) -> bool:
        return room in self.members.get(sid, set())

    def occupied(self, room: str) -> bool:
        return any(room in rooms for rooms in self.members.values())

    def copy(self, index: int, key: bytes = b"e1") -> dict[str, str]:
        """The copy of ``ROOMS[index]`` comes: who is sent which copy now."""
        participants = [(sid, f"eio-{sid}") for sid, rooms in self.members.items() if ROOMS[index] in rooms]
        frames = [ROOMS[index]]
        return sent(
            self.ledger.arrived(
                key, "agent.status_changed", ROOMS, index, frames, participants, self.member, self.occupied
            )
        )

    def leave(self, sid: str, room: str) -> dict[str, str]:
        self.members[sid].discard(room)
        return sent([delivery for _, delivery in self.ledger.left(sid, self.member)])


def sent(deliveries: list[Delivery]) -> dict[str, str]:
    """sid -> the room whose copy it was sent."""
    return {sid: frames[0] for sid, _, frames in deliveries}


def test_a_member_of_both_rooms_gets_the_last_rooms_copy_once_in_either_order() -> None:
    for order in ([0, 1], [1, 0]):
        here = Instance({"both": {"agent:a", "global"}, "agent": {"agent:a"}, "global": {"global"}})
        got: dict[str, list[str]] = {}
        for index in order:
            for sid, room in here.copy(index).items():
                got.setdefault(sid, []).append(room)
        assert got == {"both": ["global"], "agent": ["agent:a"], "global": ["global"]}
        assert len(here.ledger) == 0  # every copy expected here came: nothing kept


def test_leaving_the_later_room_before_its_copy_sends_the_copy_in_hand() -> None:
    here = Instance({"s": {"agent:a", "global"}})
    assert here.copy(0) == {}  # it waits for the global copy
    assert here.leave("s", "global") == {"s": "agent:a"}
    assert here.copy(1) == {}
    assert len(here.ledger) == 0


def test_a_later_copy_that_comes_without_the_member_releases_what_it_was_owed() -> None:
    here = Instance({"s": {"agent:a", "global"}, "other": {"global"}})
    assert here.copy(0) == {}
    here.members["s"].discard("global")  # left before the global copy, and its leave not yet told
    assert here.copy(1) == {"other": "global", "s": "agent:a"}


def test_joining_the_later_room_after_a_copy_came_sends_no_second_copy() -> None:
    here = Instance({"s": {"agent:a"}, "other": {"global"}})
    assert here.copy(0) == {"s": "agent:a"}
    here.members["s"].add("global")
    assert here.copy(1) == {"other": "global"}


def test_joining_a_later_room_that_had_no_member_here_sends_no_second_copy() -> None:
    here = Instance({"s": {"agent:a"}})
    assert here.copy(0) == {"s": "agent:a"}
    assert len(here.ledger) == 0  # no copy expected here: the event is closed at once
    here.members["s"].add("global")  # a subscribe, as the global copy is on its way
    assert here.copy(1) == {}
    here.now = 6.0  # past the ttl the member's copies are forgotten, and the next event comes
    assert here.copy(1, key=b"e2") == {"s": "global"}


def test_a_copy_that_never_comes_releases_what_was_owed_after_the_ttl() -> None:
    here = Instance({"s": {"agent:a", "global"}})
    assert here.copy(0) == {}
    here.now = 4.0
    assert here.ledger.expire() == []
    here.now = 5.5
    assert sent([delivery for _, delivery in here.ledger.expire()]) == {"s": "agent:a"}
    assert len(here.ledger) == 0


def test_a_member_gone_is_owed_nothing() -> None:
    here = Instance({"s": {"agent:a", "global"}})
    assert here.copy(0) == {}
    here.ledger.gone("s")
    del here.members["s"]
    here.now = 10.0
    assert here.ledger.expire() == []

"""Which copy of an event for several rooms a member is sent, while copies arrive and rooms change.

With Redis, an event for several rooms reaches an instance as one copy per room
(server/cluster/streams.py), each carrying its positions in its room and the rooms before it. A
member in several of the rooms is sent one copy, that of the last of its rooms: it holds all
its positions. The copies come one by one, on the rooms' channels, in any order (on a Redis
Cluster they come from several masters), and a member may leave or join a room meanwhile.
So each event is kept while copies are still to come for rooms with members here:

- a member already sent a copy is sent no other (it joined a room whose copy came later),
  for ``ttl`` seconds after it was sent;
- a member in a later room whose copy has not come yet waits for it, and is owed the copy in
  hand; the owed copy goes as soon as no later room it is in has a copy to come: it left
  them, or they came without it;
- a copy that never comes (a Redis Cluster master failed between two of an event's rooms)
  releases what was owed after ``ttl`` seconds.

A member's position in a room it joined while the event was on its way is the one its
subscribe answered: a replay from there may bring the event again (docs/recovery.md).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

Frames = list[Any]
Delivery = tuple[str, str, Frames]
"""(sid, Engine.IO sid, frames): a copy to send to a member."""


@dataclass(slots=True)
class _Event:
    name: str
    """The event's wire name (what its deliveries are counted under)."""
    rooms: list[str]
    since: float
    came: set[int] = field(default_factory=set)
    """The indexes of the copies that came."""
    owed: dict[str, tuple[int, str, Frames]] = field(default_factory=dict)
    """sid -> (index of the copy kept for it, Engine.IO sid, its frames)."""


class Ledger:
    """The events of several rooms whose copies are still arriving on this instance."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._events: dict[bytes, _Event] = {}
        self._owed_by: dict[str, set[bytes]] = {}
        self._sent: dict[str, deque[tuple[float, bytes]]] = {}
        """Per member, the events of several rooms it was sent a copy of in the last ttl
        seconds: kept apart from the events, which close as soon as no copy is expected, so
        that a member that joins a later room after that is not sent the event again."""

    def __len__(self) -> int:
        return len(self._events)

    def arrived(
        self,
        key: bytes,
        name: str,
        rooms: list[str],
        index: int,
        frames: Frames,
        participants: Iterable[tuple[str, str]],
        member: Callable[[str, str], bool],
        occupied: Callable[[str], bool],
    ) -> list[Delivery]:
        """Who is sent the copy of ``rooms[index]`` (``participants``: the room's members
        here), and the copies owed to members that now wait for no other. ``member(sid,
        room)``: whether ``sid`` is in ``room`` here now; ``occupied(room)``: whether ``room``
        has a member here (its copy will come)."""
        event = self._events.get(key)
        if event is None:
            event = self._events[key] = _Event(name, rooms, self._clock())
        event.came.add(index)
        sends: list[Delivery] = []
        for sid, eio_sid in participants:
            if self._was_sent(sid, key):
                continue
            if self._waits(event, sid, index, member):
                self._owe(event, key, sid, (index, eio_sid, frames))
                continue
            self._release(event, key, sid)
            self._note(sid, key)
            sends.append((sid, eio_sid, frames))
        for sid in list(event.owed):
            if not self._waits(event, sid, event.owed[sid][0], member):
                sends.append(self._pay(event, key, sid))
        if not any(occupied(room) for i, room in enumerate(rooms) if i not in event.came):
            sends += self._close(key, event)
        return sends

    def left(self, sid: str, member: Callable[[str, str], bool]) -> list[tuple[str, Delivery]]:
        """``sid`` left a room: the copies owed to it that wait for no other now, with their
        events' names."""
        sends: list[tuple[str, Delivery]] = []
        for key in list(self._owed_by.get(sid, ())):
            event = self._events[key]
            if not self._waits(event, sid, event.owed[sid][0], member):
                sends.append((event.name, self._pay(event, key, sid)))
        return sends

    def gone(self, sid: str) -> None:
        """``sid`` disconnected: nothing is owed to it any more."""
        for key in self._owed_by.pop(sid, set()):
            self._events[key].owed.pop(sid, None)
        self._sent.pop(sid, None)

    def expire(self) -> list[tuple[str, Delivery]]:
        """Give up on the events kept longer than the ttl: what they owe is sent (with their
        events' names)."""
        sends: list[tuple[str, Delivery]] = []
        oldest = self._clock() - self._ttl
        while self._events:
            key, event = next(iter(self._events.items()))
            if event.since > oldest:
                break
            sends += [(event.name, delivery) for delivery in self._close(key, event)]
        return sends

    @staticmethod
    def _waits(event: _Event, sid: str, index: int, member: Callable[[str, str], bool]) -> bool:
        """Whether ``sid`` is in a room after ``index`` whose copy has not come yet."""
        return any(
            member(sid, room) for i, room in enumerate(event.rooms) if i > index and i not in event.came
        )

    def _owe(self, event: _Event, key: bytes, sid: str, copy: tuple[int, str, Frames]) -> None:
        event.owed[sid] = copy
        self._owed_by.setdefault(sid, set()).add(key)

    def _pay(self, event: _Event, key: bytes, sid: str) -> Delivery:
        _, eio_sid, frames = event.owed[sid]
        self._release(event, key, sid)
        self._note(sid, key)
        return sid, eio_sid, frames

    def _was_sent(self, sid: str, key: bytes) -> bool:
        sent = self._sent.get(sid)
        return sent is not None and any(seen == key for _, seen in sent)

    def _note(self, sid: str, key: bytes) -> None:
        """``sid`` was sent a copy of ``key``; what it was sent longer than ttl ago goes."""
        now = self._clock()
        sent = self._sent.get(sid)
        if sent is None:
            sent = self._sent[sid] = deque()
        while sent and sent[0][0] < now - self._ttl:
            sent.popleft()
        sent.append((now, key))

    def _release(self, event: _Event, key: bytes, sid: str) -> None:
        if event.owed.pop(sid, None) is not None:
            owed = self._owed_by[sid]
            owed.discard(key)
            if not owed:
                del self._owed_by[sid]

    def _close(self, key: bytes, event: _Event) -> list[Delivery]:
        """No more copies of the event are expected: what is still owed goes now."""
        sends = [self._pay(event, key, sid) for sid in list(event.owed)]
        del self._events[key]
        return sends

"""Room names: the grammar every room of the API follows.

Grammar: ``global``, or ``<kind>:<uuid>`` with kind one of ``user``, ``project``, ``agent``
and the UUID in its canonical 8-4-4-4-12 hex form, any case. Parsing normalises the UUID to
lowercase, so ``project:ABC...`` and ``project:abc...`` are one room.

Who may join a room is the sessions' concern (server/sessions/access.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

from swe_realtime.errors import InvalidRoom

CANONICAL_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
"""A UUID as written in room names and the API (8-4-4-4-12 hex): ``UUID()`` alone also takes
braces, ``urn:uuid:`` and no hyphens, forms under which one id would have several spellings."""


class RoomKind(StrEnum):
    USER = "user"
    PROJECT = "project"
    AGENT = "agent"
    GLOBAL = "global"


MAX_ROOM_CHARS = len("project:") + 36
"""The longest valid room name; anything longer is refused without further parsing."""


@dataclass(frozen=True)
class Room:
    """A parsed room: its kind and, except for ``global``, the id it is about."""

    kind: RoomKind
    id: UUID | None = None

    def __str__(self) -> str:
        return self.kind.value if self.id is None else f"{self.kind.value}:{self.id}"

    @classmethod
    def user(cls, user_id: UUID) -> Room:
        return cls(RoomKind.USER, user_id)


GLOBAL = Room(RoomKind.GLOBAL)


def parse_room(raw: str) -> Room:
    """Parse a room name sent by a client; raise InvalidRoom if it is not in the grammar."""
    if raw == RoomKind.GLOBAL.value:
        return GLOBAL
    if len(raw) > MAX_ROOM_CHARS:
        raise InvalidRoom()
    kind, _, ident = raw.partition(":")
    if kind not in (RoomKind.USER, RoomKind.PROJECT, RoomKind.AGENT) or not CANONICAL_UUID.fullmatch(ident):
        raise InvalidRoom()
    return Room(RoomKind(kind), UUID(ident))

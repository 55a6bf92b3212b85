"""Room names and who may join them.

Grammar: ``global``, or ``<kind>:<uuid>`` with kind one of ``user``, ``project``, ``agent``
and the UUID in its canonical 8-4-4-4-12 hex form, any case. Parsing normalises the UUID to
lowercase, so ``project:ABC...`` and ``project:abc...`` are one room.

Access is decided by an :class:`AccessPolicy`. The default reads the token's claims; a
deployment that keeps permissions in a database passes its own policy to ``create_app``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol
from uuid import UUID

from swe_realtime.errors import InvalidRoom

if TYPE_CHECKING:  # the grammar is read by the event models, which emitters import without PyJWT
    from swe_realtime.sessions.auth import Principal

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


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
    if kind not in (RoomKind.USER, RoomKind.PROJECT, RoomKind.AGENT) or not _UUID.fullmatch(ident):
        raise InvalidRoom()
    return Room(RoomKind(kind), UUID(ident))


class AccessPolicy(Protocol):
    """Decides whether a principal may subscribe to a room. May consult a database."""

    async def may_subscribe(self, principal: Principal, room: Room) -> bool: ...


class ClaimsAccessPolicy:
    """The default policy, from the token alone.

    Admins may join any room. ``global`` and agent rooms are open to every authenticated
    principal (agent rooms are read-only: clients have no way to publish into them). A user
    room belongs to its user; a project room to the users whose ``projects`` claim lists it.
    """

    async def may_subscribe(self, principal: Principal, room: Room) -> bool:
        if principal.is_admin or room.kind in (RoomKind.GLOBAL, RoomKind.AGENT):
            return True
        if room.kind is RoomKind.USER:
            return room.id == principal.user_id
        return room.id in principal.projects

"""Who may join a room.

Access is decided by an :class:`AccessPolicy`. The default reads the token's claims; a
deployment that keeps permissions in a database passes its own policy to ``create_app``.
"""

from __future__ import annotations

from typing import Protocol

from swe_realtime.events.rooms import Room, RoomKind
from swe_realtime.sessions.auth import Principal


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

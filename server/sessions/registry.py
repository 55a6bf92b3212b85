"""The live connections of this instance, by sid, and the per-user connection limit.

Kept apart from the ``/ws`` handlers so that what is remembered about a connection, and how
many connections a user may hold, can be read and replaced on its own. The sid map is local
by nature (a connection's timer and rate bucket live in this process); the per-user count is
what a cluster-wide implementation would keep in Redis, so ``add``, ``remove`` and ``count``
are async although this one never waits.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from swe_realtime.errors import ConnectionLimit
from swe_realtime.sessions.auth import Principal
from swe_realtime.sessions.limits import TokenBucket

Snapshot = dict[str, Any]
"""``{"connections": int, "rooms": {room: members}}``, what the stats heartbeat sends."""


@dataclass(slots=True)
class Connection:
    """What the gateway remembers about one live connection."""

    principal: Principal
    remote: str
    bucket: TokenBucket
    rooms: set[str] = field(default_factory=set)
    """The named rooms it is in. Kept here: python-socketio finds a sid's rooms by scanning
    every room of the namespace, which made each subscribe O(rooms)."""
    expiry: asyncio.TimerHandle | None = None
    """Fires at the token's ``exp``; replaced when the client refreshes its token."""
    since: float = field(default_factory=time.time)
    """When it connected (Unix time), for the admin API."""


class Registry:
    """Live connections by sid, at most ``per_user`` of them for any one user."""

    def __init__(self, per_user: int) -> None:
        self._per_user = per_user
        self._connections: dict[str, Connection] = {}
        self._by_user: dict[UUID, set[str]] = {}

    def __len__(self) -> int:
        """Live connections on this instance."""
        return len(self._connections)

    def get(self, sid: str) -> Connection | None:
        """The connection of ``sid``, or None once it has been removed (or never was added)."""
        return self._connections.get(sid)

    def sids(self) -> Collection[str]:
        """The sids of every live connection of this instance (a live view)."""
        return self._connections.keys()

    async def add(self, sid: str, connection: Connection) -> None:
        """Register a new connection; ConnectionLimit if its user already holds ``per_user``.

        The check and the registration are one step: an implementation that waits must not
        let two connections of a user both pass the check for the last place. ``get(sid)``
        finds the connection as soon as this returns: the disconnect handler may run while
        the connect handler is still joining rooms.
        """
        if len(self._by_user.get(connection.principal.user_id, ())) >= self._per_user:
            raise ConnectionLimit("Too many connections for this user")
        self._put(sid, connection)

    async def remove(self, sid: str) -> Connection | None:
        """Forget ``sid`` and give its user's place back; None if it was not registered."""
        return self._pop(sid)

    async def count(self, user_id: UUID) -> int:
        """How many connections ``user_id`` holds."""
        return len(self._by_user.get(user_id, ()))

    def of_user(self, user_id: UUID) -> Collection[str]:
        """The sids of ``user_id``'s connections on this instance (a live view)."""
        return self._by_user.get(user_id, set())

    def _put(self, sid: str, connection: Connection) -> None:
        self._connections[sid] = connection
        self._by_user.setdefault(connection.principal.user_id, set()).add(sid)

    def _pop(self, sid: str) -> Connection | None:
        connection = self._connections.pop(sid, None)
        if connection is not None:
            sids = self._by_user[connection.principal.user_id]
            sids.discard(sid)
            if not sids:
                del self._by_user[connection.principal.user_id]
        return connection

    def snapshot(self) -> Snapshot:
        """Live connections and the member count of every named room, on this instance."""
        members = Counter(name for connection in self._connections.values() for name in connection.rooms)
        return {"connections": len(self._connections), "rooms": dict(sorted(members.items()))}

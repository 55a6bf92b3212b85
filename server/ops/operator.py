"""This instance's answers to the admin API: its connections, closing one, its own state.

The admin routes (server/http/admin.py) ask every instance the same question through the
admin bus (server/cluster/admin_bus.py) and merge the answers; each instance answers here, from what
it holds alone. Answers are plain JSON values: they cross Redis between instances.

Connections are listed in the order of their ids, from just after a cursor (``after``): a
page is the first ``limit`` ids of the merged answers, and the next page starts after its
last id, however the cluster changed in between. Each instance sends at most ``limit``
connections per page, so listing 100,000 connections costs each instance one scan of its
candidates (a heap keeps the ``limit`` smallest ids) and the asker ``limit`` x instances
entries.
"""

from __future__ import annotations

import heapq
import resource
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from swe_realtime import __version__
from swe_realtime.cluster.health import RedisHealth
from swe_realtime.errors import AdminDisconnect
from swe_realtime.events import NAMESPACE
from swe_realtime.ops.timeline import Timeline
from swe_realtime.sessions.registry import Registry
from swe_realtime.telemetry import audit

DEFAULT_PAGE = 100
MAX_PAGE = 1000
ROOMS_SHOWN = 20
"""Rooms listed per connection (the first by name; ``room_count`` says how many): a page of
1,000 connections in 100 rooms each would be 5 MB through Redis. Filter by room to find a
room's members."""

Answer = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ConnectionQuery:
    """Which connections to list: a user's, a room's members (or all), after a cursor."""

    user: UUID | None = None
    room: str | None = None
    after: str = ""
    limit: int = DEFAULT_PAGE

    def as_args(self) -> Answer:
        return {
            "user": self.user and str(self.user),
            "room": self.room,
            "after": self.after,
            "limit": self.limit,
        }

    @classmethod
    def from_args(cls, args: Answer) -> ConnectionQuery:
        user = args.get("user")
        return cls(UUID(user) if user else None, args.get("room"), str(args["after"]), int(args["limit"]))


@dataclass(frozen=True, slots=True)
class Page:
    """The instances' answers to one connections query, merged."""

    connections: list[Answer]
    """The first ``limit`` connections over every answer, by id."""
    total: int
    next: str | None
    """The cursor of the next page; None on the last."""


def merged(answers: list[Answer], limit: int) -> Page:
    """One page of the instances' answers: more follow when the answers hold more than the
    page, or an instance had more than it sent."""
    found = sorted((c for answer in answers for c in answer["connections"]), key=lambda c: str(c["id"]))
    page = found[:limit]
    more = len(found) > limit or any(answer["more"] for answer in answers)
    return Page(page, sum(answer["total"] for answer in answers), page[-1]["id"] if more and page else None)


class Operator:
    """What one instance knows and does for the admin API."""

    def __init__(
        self,
        instance_id: str,
        sio: Any,
        gateway: Any,
        registry: Registry,
        timeline: Timeline,
        redis: RedisHealth | None,
    ) -> None:
        self.instance_id = instance_id
        self._sio = sio
        self._gateway = gateway
        self._registry = registry
        self._timeline = timeline
        self._redis = redis
        self._started = time.time()

    async def answer(self, kind: str, args: Answer) -> Answer:
        """The answer to one admin request (this instance's part of it)."""
        if kind == "connections":
            return self.connections(ConnectionQuery.from_args(args))
        if kind == "disconnect":
            return {
                "instance": self.instance_id,
                "found": await self.disconnect(str(args["id"]), str(args["by"])),
            }
        if kind == "instance":
            return self.instance(float(args["since"]))
        raise ValueError(f"unknown admin request {kind!r}")

    def connections(self, query: ConnectionQuery) -> Answer:
        """The first ``query.limit`` matching connections after the cursor, by id; how many
        match in all (cursor aside); whether more follow this page.

        A room's members come from the manager's room, a user's from the registry's index by
        user: a filtered query looks at its candidates only, not at every connection."""
        matching: list[str]
        if query.user is not None:
            mine = self._registry.of_user(query.user)
            room = self._sio.manager.members(NAMESPACE, query.room) if query.room is not None else None
            matching = [sid for sid in mine if room is None or sid in room]
        elif query.room is not None:
            matching = list(self._sio.manager.members(NAMESPACE, query.room))
        else:
            matching = list(self._registry.sids())
        following = [sid for sid in matching if sid > query.after]
        wanted = query.limit + 1
        while True:
            # The smallest ids first; a closing connection (described as None) is skipped and
            # the next id taken in its place, so that no open one is left behind the cursor.
            page = heapq.nsmallest(wanted, following)
            described = [entry for entry in map(self._describe, page) if entry is not None]
            if len(described) > query.limit or len(page) < wanted:
                break
            wanted += len(page) - len(described)
        return {
            "instance": self.instance_id,
            "connections": described[: query.limit],
            "total": len(matching),
            "more": len(described) > query.limit,
        }

    async def disconnect(self, sid: str, by: str) -> bool:
        """Close connection ``sid`` if this instance holds it; the client is told
        ADMIN_DISCONNECT first."""
        if self._registry.get(sid) is None:
            return False
        audit.dropped(connection_id=sid, reason=f"closed by operator {by}")
        return bool(await self._gateway.close(sid, AdminDisconnect(), "admin"))

    def instance(self, since: float) -> Answer:
        """This instance's state and its timeline's notes after ``since``."""
        redis = "none" if self._redis is None else "up" if self._redis.reachable else "down"
        return {
            "id": self.instance_id,
            "version": __version__,
            "started_at": _stamp(self._started),
            "uptime_seconds": round(time.time() - self._started, 3),
            "redis": redis,
            "rss_bytes": _rss_bytes(),
            "connections": len(self._registry),
            "rooms": self._sio.manager.named_rooms(NAMESPACE),
            "samples": self._timeline.since(since),
        }

    def _describe(self, sid: str) -> Answer | None:
        """The connection as the admin API shows it; None if it is closing (its Engine.IO
        session already gone)."""
        connection = self._registry.get(sid)
        eio_sid = self._sio.manager.eio_sid_from_sid(sid, NAMESPACE)
        engine_socket = self._sio.eio.sockets.get(eio_sid) if eio_sid else None
        if connection is None or engine_socket is None:
            return None
        rooms = sorted(connection.rooms)
        return {
            "id": sid,
            "user": str(connection.principal.user_id),
            "instance": self.instance_id,
            "transport": "websocket" if engine_socket.upgraded else "polling",
            "remote": connection.remote,
            "connected_at": _stamp(connection.since),
            "rooms": rooms[:ROOMS_SHOWN],
            "room_count": len(rooms),
            "unread_packets": engine_socket.outbox.pending_frames,
            "unread_bytes": engine_socket.outbox.pending_bytes,
        }


def _stamp(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat().replace("+00:00", "Z")


def _rss_bytes() -> int:
    """Resident memory now (from /proc), or the peak where /proc is not there."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * resource.getpagesize()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

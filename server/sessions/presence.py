"""Agent presence: ``agent.connected`` on an agent's first connection, ``agent.disconnected``
on its last.

An agent (a token with the ``agent`` role, ``sub`` = agent id) may hold several connections;
watchers should hear of it once, not per connection. This implementation counts the
connections of this instance; server/cluster/presence.py counts them over the cluster, in
Redis, behind the same interface (it replaces ``_moved`` alone), so that an agent moving
between instances is announced once too.

What is counted is the principal each connection holds now. ``refresh_token`` may swap a
connection's token for one with or without the ``agent`` role: ``refreshed`` then moves the
connection out of the old principal's count and into the new one's, so the count the close
takes it out of is the one it is in. (Counting by the principal at open and at close made a
refresh out of the role leave the agent counted forever, and a refresh into it take the
count below zero: either way that agent's presence was never announced again.) Every change
is a delta, so the three calls balance in whatever order the handlers run them.
"""

from __future__ import annotations

from collections import Counter
from uuid import UUID

from swe_realtime.events import utc_now
from swe_realtime.events.agent import (
    AgentConnected,
    AgentConnectedData,
    AgentDisconnected,
    AgentDisconnectedData,
)
from swe_realtime.publish.broadcaster import Broadcaster
from swe_realtime.sessions.auth import Principal, Role

REFRESHED = "token refreshed without the agent role"
"""The ``reason`` of an ``agent.disconnected`` caused by a ``refresh_token``."""


class Presence:
    """Counts each agent's open connections and announces the first and the last."""

    def __init__(self, broadcaster: Broadcaster) -> None:
        self._broadcaster = broadcaster
        self._agent_connections: Counter[UUID] = Counter()
        """Per agent, its connections here. May dip below 0 for a moment: the disconnect
        handler can run before the connect handler has finished."""

    async def opened(self, principal: Principal) -> None:
        """A connection of ``principal`` opened; announce it if it is an agent's first."""
        await self._moved(principal, 1, None)

    async def closed(self, principal: Principal, reason: str) -> None:
        """A connection holding ``principal`` closed; announce it, with ``reason``, if it was
        an agent's last."""
        await self._moved(principal, -1, reason)

    async def refreshed(self, before: Principal, after: Principal) -> None:
        """A connection's token was refreshed from ``before`` to ``after``: it counts as
        ``after``'s from now on (announced like a close of ``before`` and an open of ``after``
        where the agent role or the subject changed)."""
        if _agent(before) == _agent(after):
            return
        await self._moved(before, -1, REFRESHED)
        await self._moved(after, 1, None)

    async def _moved(self, principal: Principal, delta: int, reason: str | None) -> None:
        """Count a connection of ``principal`` in (+1) or out (-1); announce the agent's count
        crossing 0."""
        agent_id = _agent(principal)
        if agent_id is None:
            return
        before = self._agent_connections[agent_id]
        after = self._agent_connections[agent_id] = before + delta
        if after == 0:
            del self._agent_connections[agent_id]
        if before <= 0 < after:
            await self._broadcaster.publish(announcement(agent_id, connected=True, reason=reason))
        elif after <= 0 < before:
            await self._broadcaster.publish(announcement(agent_id, connected=False, reason=reason))


def announcement(
    agent_id: UUID, *, connected: bool, reason: str | None
) -> AgentConnected | AgentDisconnected:
    """The event that says ``agent_id`` is now connected (its first connection opened) or
    disconnected (its last closed, for ``reason``)."""
    if connected:
        return AgentConnected(data=AgentConnectedData(agent_id=agent_id, connected_at=utc_now()))
    return AgentDisconnected(
        data=AgentDisconnectedData(agent_id=agent_id, disconnected_at=utc_now(), reason=reason)
    )


def _agent(principal: Principal) -> UUID | None:
    """The agent id ``principal`` is counted under; None if it is not an agent."""
    return principal.user_id if Role.AGENT in principal.roles else None

"""Agent presence: ``agent.connected`` on an agent's first connection, ``agent.disconnected``
on its last.

An agent (a token with the ``agent`` role, ``sub`` = agent id) may hold several connections;
watchers should hear of it once, not per connection. This implementation counts the
connections of this instance. A cluster-wide one would count in Redis, behind the same two
async methods, so that an agent moving between instances is announced once too.
"""

from __future__ import annotations

from collections import Counter
from uuid import UUID

from swe_realtime.auth import Principal, Role
from swe_realtime.broadcaster import Broadcaster
from swe_realtime.events import utc_now
from swe_realtime.events.agent import (
    AgentConnected,
    AgentConnectedData,
    AgentDisconnected,
    AgentDisconnectedData,
)


class Presence:
    """Counts each agent's open connections and announces the first and the last."""

    def __init__(self, broadcaster: Broadcaster) -> None:
        self._broadcaster = broadcaster
        self._agent_connections: Counter[UUID] = Counter()

    async def opened(self, principal: Principal) -> None:
        """A connection of ``principal`` opened; announce it if it is an agent's first."""
        if Role.AGENT not in principal.roles:
            return
        agent_id = principal.user_id
        self._agent_connections[agent_id] += 1
        if self._agent_connections[agent_id] == 1:
            data = AgentConnectedData(agent_id=agent_id, connected_at=utc_now())
            await self._broadcaster.publish(AgentConnected(data=data))

    async def closed(self, principal: Principal, reason: str) -> None:
        """A connection of ``principal`` closed; announce it, with ``reason``, if it was an
        agent's last."""
        if Role.AGENT not in principal.roles:
            return
        agent_id = principal.user_id
        self._agent_connections[agent_id] -= 1
        if self._agent_connections[agent_id] == 0:
            del self._agent_connections[agent_id]
            data = AgentDisconnectedData(agent_id=agent_id, disconnected_at=utc_now(), reason=reason)
            await self._broadcaster.publish(AgentDisconnected(data=data))

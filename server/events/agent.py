"""Agent events: status reports, and presence the gateway derives from agent connections."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal
from uuid import UUID

from pydantic import Field

from swe_realtime.events._examples import AGENT_ID
from swe_realtime.events._types import EventData, Name, Percent, UtcDatetime, WholePercent, examples
from swe_realtime.events.envelope import Envelope, source_field

AGENT_SOURCE = "agent_service"


class AgentStatus(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"
    BUSY = "busy"
    IDLE = "idle"
    ERROR = "error"


class AgentMetadata(EventData):
    """Runtime details an agent reports with its status; all optional."""

    version: str | None = Field(default=None, max_length=100, description="The agent's software version.")
    last_update: UtcDatetime | None = Field(default=None, description="When the agent last reported.")
    cpu_usage: Percent | None = Field(default=None, description="CPU use in percent (0-100).")
    memory_usage: Percent | None = Field(default=None, description="Memory use in percent (0-100).")


STATUS_EXAMPLE: dict[str, Any] = {
    "agent_name": "GPT-4 Code Analyst",
    "status": "online",
    "availability": 85,
    "metadata": {
        "version": "1.0",
        "last_update": "2024-11-08T10:25:00.000Z",
        "cpu_usage": 45.2,
        "memory_usage": 62.1,
    },
}


class AgentStatusReport(EventData):
    """An agent's status as the agent itself reports it (the ``agent.status`` command)."""

    model_config = examples(STATUS_EXAMPLE)

    agent_name: Name = Field(description="The agent's display name.")
    status: AgentStatus = Field(description="Its current status.")
    availability: WholePercent = Field(description="Spare capacity in percent (0-100).")
    metadata: AgentMetadata = Field(default=AgentMetadata(), description="Runtime details.")


class AgentStatusChangedData(AgentStatusReport):
    model_config = examples({"agent_id": AGENT_ID, **STATUS_EXAMPLE})

    agent_id: UUID = Field(description="The agent whose status changed.")


class AgentStatusChanged(Envelope[AgentStatusChangedData]):
    """An agent's status changed. Rooms: agent:<agent_id>, global."""

    type: Literal["agent.status_changed"] = "agent.status_changed"
    source: str = source_field(AGENT_SOURCE)


class AgentConnectedData(EventData):
    model_config = examples({"agent_id": AGENT_ID, "connected_at": "2024-11-08T10:30:00.000Z"})

    agent_id: UUID = Field(description="The agent that came online.")
    connected_at: UtcDatetime = Field(description="When its first connection opened.")


class AgentConnected(Envelope[AgentConnectedData]):
    """An agent opened its first connection. Sent by the gateway. Rooms: agent:<agent_id>, global."""

    type: Literal["agent.connected"] = "agent.connected"


class AgentDisconnectedData(EventData):
    model_config = examples(
        {
            "agent_id": AGENT_ID,
            "disconnected_at": "2024-11-08T11:30:00.000Z",
            "reason": "transport close",
        }
    )

    agent_id: UUID = Field(description="The agent that went away.")
    disconnected_at: UtcDatetime = Field(description="When its last connection closed.")
    reason: str | None = Field(default=None, max_length=200, description="Why the last connection closed.")


class AgentDisconnected(Envelope[AgentDisconnectedData]):
    """An agent's last connection closed. Sent by the gateway. Rooms: agent:<agent_id>, global."""

    type: Literal["agent.disconnected"] = "agent.disconnected"

"""Commands clients send and the acknowledgements they get back.

Payloads are validated strictly (a room must be a JSON string, not a number that happens to
convert); unknown keys are ignored so that older gateways accept newer clients.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from server.errors import ErrorCode


class RoomCommand(BaseModel):
    """Payload of ``subscribe`` and ``unsubscribe``."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    room: str = Field(description="A room name: global, user:<uuid>, project:<uuid>, agent:<uuid>.")


class RoomAck(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: Literal["success"] = Field(default="success", description="The command succeeded.")
    room: str = Field(description="The room, normalised (lowercase UUID).")


class EventAck(BaseModel):
    """Answer to a command that published an event (``agent.status``)."""

    model_config = ConfigDict(frozen=True)

    status: Literal["success"] = Field(default="success", description="The event was sent.")
    id: UUID = Field(description="The id of the event that was sent.")


class PongAck(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: Literal["pong"] = Field(default="pong", description="The gateway is alive and answering.")


class ErrorAck(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: Literal["error"] = Field(default="error", description="The command failed.")
    room: str | None = Field(description="The room the command named, when it named one.")
    error_code: ErrorCode = Field(description="Why, as a stable code.")
    message: str = Field(description="Why, for a human.")

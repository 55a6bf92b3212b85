"""Commands clients send and the acknowledgements they get back.

Payloads are validated strictly (a room must be a JSON string, not a number that happens to
convert); unknown keys are ignored so that older gateways accept newer clients.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from swe_realtime.errors import ErrorCode
from swe_realtime.events._types import Index, UtcDatetime
from swe_realtime.events.envelope import StreamPosition

ROOM_PATTERN = r"^(global|(user|project|agent):[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12})$"

ACK_CONFIG = ConfigDict(frozen=True, json_schema_serialization_defaults_required=True)
"""Acks always carry every field, so their (serialization) schemas mark every field required."""


class RoomCommand(BaseModel):
    """Payload of ``subscribe`` and ``unsubscribe``."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    room: str = Field(
        description="A room name: global, user:<uuid>, project:<uuid>, agent:<uuid>.",
        # The TypeScript emitter types this as the template-literal Room union.
        json_schema_extra={"pattern": ROOM_PATTERN, "x-ts-type": "Room"},
    )


class RecoverCommand(RoomCommand):
    """Payload of ``recover``: subscribe to a room and get what was missed since a position."""

    position: StreamPosition = Field(description="The last position the client holds for the room.")


class RefreshTokenCommand(BaseModel):
    """Payload of ``refresh_token``: a newer token for the same subject."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    token: str = Field(description="The new JWT; its sub must be the connection's.")


class PingCommand(BaseModel):
    """Payload of ``ping``: an empty object (anything in it is ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class RoomAck(BaseModel):
    model_config = ACK_CONFIG

    status: Literal["success"] = Field(default="success", description="The command succeeded.")
    room: str = Field(description="The room, normalised (lowercase UUID).")
    position: StreamPosition | None = Field(
        default=None,
        description="On subscribe: the room's position now; events after it follow. Null when"
        " history is off, and on unsubscribe.",
    )


class RecoveryFailure(StrEnum):
    """Why a room's missed events could not be replayed (the client refetches over REST)."""

    EPOCH_CHANGED = "epoch_changed"
    """The room's history was lost since (expired, or Redis restarted): offsets start anew."""
    HISTORY_TRIMMED = "history_trimmed"
    """The history no longer reaches back to the position (HISTORY_SIZE, HISTORY_TTL)."""
    POSITION_AHEAD = "position_ahead"
    """The position is past the room's last event: not one this gateway gave out."""
    HISTORY_OFF = "history_off"
    """This gateway keeps no history (HISTORY_SIZE=0)."""
    HISTORY_UNAVAILABLE = "history_unavailable"
    """The history could not be read just now (Redis unreachable); the room is joined."""


class RecoverAck(BaseModel):
    """Answer to ``recover``: subscribed, and whether every missed event was replayed.

    The replayed events arrive before this ack, in order, then live events follow, none twice.
    """

    model_config = ACK_CONFIG

    status: Literal["success"] = Field(default="success", description="Subscribed to the room.")
    room: str = Field(description="The room, normalised (lowercase UUID).")
    recovered: bool = Field(description="Every event after the given position was replayed.")
    replayed: Index = Field(description="How many events were replayed.")
    reason: RecoveryFailure | None = Field(
        default=None, description="Why not recovered; null when recovered."
    )
    position: StreamPosition | None = Field(
        description="The room's position after the replay; events after it follow. Null when history is off."
    )


class EventAck(BaseModel):
    """Answer to a command that published an event (``agent.status``)."""

    model_config = ACK_CONFIG

    status: Literal["success"] = Field(default="success", description="The event was sent.")
    id: UUID = Field(description="The id of the event that was sent.")


class RefreshAck(BaseModel):
    """Answer to ``refresh_token``: when the connection now expires, and what it had to leave."""

    model_config = ACK_CONFIG

    status: Literal["success"] = Field(default="success", description="The new token is in use.")
    expires_at: UtcDatetime = Field(description="The new token's exp: the connection ends then.")
    left: list[str] = Field(description="Rooms left because the new token no longer allows them.")


class PongAck(BaseModel):
    model_config = ACK_CONFIG

    status: Literal["pong"] = Field(default="pong", description="The gateway is alive and answering.")


class ErrorAck(BaseModel):
    model_config = ACK_CONFIG

    status: Literal["error"] = Field(default="error", description="The command failed.")
    room: str | None = Field(description="The room the command named, when it named one.")
    error_code: ErrorCode = Field(description="Why, as a stable code.")
    message: str = Field(description="Why, for a human.")


@dataclass(frozen=True)
class Command:
    """A client command: what it does, its payload model and the acks it may answer with."""

    summary: str
    payload: type[BaseModel]
    acks: tuple[type[BaseModel], ...]

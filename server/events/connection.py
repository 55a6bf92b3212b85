"""The two connection events: the welcome after a successful connect and the refusal."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from swe_realtime.errors import ErrorCode
from swe_realtime.events._examples import USER_ID
from swe_realtime.events._types import EventData, examples
from swe_realtime.events.commands import ErrorAck, RecoverAck
from swe_realtime.events.envelope import Envelope

PROTOCOL_VERSION: Literal["1.0"] = "1.0"


class ConnectionEstablishedData(EventData):
    model_config = examples(
        {
            "connection_id": "Ck5zT1kqLZUcY0HNAAAB",
            "user_id": USER_ID,
            "protocol_version": "1.0",
            "recovery": [],
        }
    )

    connection_id: str = Field(description="The Socket.IO id of this connection (socket.id).")
    user_id: str = Field(description="The token's subject.")
    protocol_version: Literal["1.0"] = Field(default=PROTOCOL_VERSION, description="API version.")
    recovery: list[RecoverAck | ErrorAck] = Field(
        default_factory=list,
        description="For each room of auth.positions, the answer a recover command would give;"
        " the replayed events follow this event.",
    )


class ConnectionEstablished(Envelope[ConnectionEstablishedData]):
    """Sent once to a connection after it is authenticated and has joined its default rooms."""

    wire_name: ClassVar[str | None] = "connection_established"
    type: Literal["connection.established"] = "connection.established"


class ConnectionErrorData(EventData):
    model_config = examples(
        {
            "error_code": "AUTH_FAILED",
            "error_message": "Invalid or expired token",
            "connection_id": None,
        }
    )

    error_code: ErrorCode = Field(description="Why the connection was refused or ended.")
    error_message: str = Field(description="A human-readable explanation.")
    connection_id: str | None = Field(default=None, description="Null when no connection was made.")


class ConnectionErrorEvent(Envelope[ConnectionErrorData]):
    """Carried as the data of a refused connect (``err.data`` in socket.io-client)."""

    wire_name: ClassVar[str | None] = "connection_error"
    type: Literal["connection.error"] = "connection.error"

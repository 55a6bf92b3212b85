"""The catalogue: every event the gateway sends and every command it accepts, as models."""

from server.events.commands import ErrorAck, PongAck, RoomAck, RoomCommand
from server.events.connection import (
    PROTOCOL_VERSION,
    ConnectionErrorData,
    ConnectionErrorEvent,
    ConnectionEstablished,
    ConnectionEstablishedData,
)
from server.events.envelope import Envelope, rfc3339

__all__ = [
    "PROTOCOL_VERSION",
    "ConnectionErrorData",
    "ConnectionErrorEvent",
    "ConnectionEstablished",
    "ConnectionEstablishedData",
    "Envelope",
    "ErrorAck",
    "PongAck",
    "RoomAck",
    "RoomCommand",
    "rfc3339",
]

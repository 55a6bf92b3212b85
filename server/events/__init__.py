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

SERVER_EVENTS = (ConnectionEstablished, ConnectionErrorEvent)
"""Every event the gateway sends, as its envelope model."""

CLIENT_COMMANDS = {"subscribe": RoomCommand, "unsubscribe": RoomCommand}
"""Client commands with a payload model (``ping`` takes an empty object)."""

ACKS = (RoomAck, PongAck, ErrorAck)
"""Every acknowledgement a command can answer with."""

__all__ = [
    "ACKS",
    "CLIENT_COMMANDS",
    "PROTOCOL_VERSION",
    "SERVER_EVENTS",
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

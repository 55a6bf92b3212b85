"""The catalogue: every event the gateway sends and every command it accepts, as models."""

from typing import Any

from pydantic import BaseModel

from swe_realtime.events.agent import AgentStatusReport
from swe_realtime.events.catalogue import CATALOGUE
from swe_realtime.events.commands import (
    Command,
    ErrorAck,
    EventAck,
    PingCommand,
    PongAck,
    RecoverAck,
    RecoverCommand,
    RecoveryFailure,
    RefreshAck,
    RefreshTokenCommand,
    RoomAck,
    RoomCommand,
)
from swe_realtime.events.connection import (
    PROTOCOL_VERSION,
    ConnectionErrorData,
    ConnectionErrorEvent,
    ConnectionEstablished,
    ConnectionEstablishedData,
)
from swe_realtime.events.envelope import Envelope, StreamPosition, utc_now

NAMESPACE = "/ws"
"""The Socket.IO namespace clients connect to and every event is sent on."""

SERVER_EVENTS: tuple[type[Envelope[Any]], ...] = (
    ConnectionEstablished,
    ConnectionErrorEvent,
    *(entry.event for entry in CATALOGUE.values()),
)
"""Every event the gateway sends, as its envelope model."""

CLIENT_COMMANDS: dict[str, Command] = {
    "subscribe": Command("Join a room to receive its events.", RoomCommand, (RoomAck, ErrorAck)),
    "unsubscribe": Command("Leave a room.", RoomCommand, (RoomAck, ErrorAck)),
    "recover": Command(
        "Join a room and get, in order and once, the events sent to it after a position.",
        RecoverCommand,
        (RecoverAck, ErrorAck),
    ),
    "ping": Command("Check the connection and measure latency.", PingCommand, (PongAck,)),
    "refresh_token": Command(
        "Extend the session with a newer token of the same subject, without reconnecting.",
        RefreshTokenCommand,
        (RefreshAck, ErrorAck),
    ),
    "agent.status": Command(
        "An agent reports its status (agents only); sent on as agent.status_changed.",
        AgentStatusReport,
        (EventAck, ErrorAck),
    ),
}
"""Every client command, by its Socket.IO event name."""

ACKS: tuple[type[BaseModel], ...] = (RoomAck, RecoverAck, PongAck, RefreshAck, EventAck, ErrorAck)
"""Every acknowledgement a command can answer with."""

__all__ = [
    "ACKS",
    "CATALOGUE",
    "CLIENT_COMMANDS",
    "NAMESPACE",
    "PROTOCOL_VERSION",
    "SERVER_EVENTS",
    "Command",
    "ConnectionErrorData",
    "ConnectionErrorEvent",
    "ConnectionEstablished",
    "ConnectionEstablishedData",
    "Envelope",
    "ErrorAck",
    "EventAck",
    "PingCommand",
    "PongAck",
    "RecoverAck",
    "RecoverCommand",
    "RecoveryFailure",
    "RefreshAck",
    "RefreshTokenCommand",
    "RoomAck",
    "RoomCommand",
    "StreamPosition",
    "utc_now",
]

"""The gateway's error tree and the error codes a client can see.

Every code a client may receive is declared once here, in :class:`ErrorCode`, with the
message it carries by default; the rest of the code raises the matching exception and lets
the edge (connect handler, command handler, HTTP route) turn it into the wire shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydantic import ValidationError


class ErrorCode(StrEnum):
    """Error codes sent to clients in refusals, acks and HTTP error bodies."""

    AUTH_FAILED = "AUTH_FAILED"
    AUTH_MISSING = "AUTH_MISSING"
    ROOM_ACCESS_DENIED = "ROOM_ACCESS_DENIED"
    INVALID_ROOM = "INVALID_ROOM"
    INVALID_REQUEST = "INVALID_REQUEST"
    RATE_LIMITED = "RATE_LIMITED"
    CONNECTION_LIMIT = "CONNECTION_LIMIT"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    INVALID_EVENT = "INVALID_EVENT"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    ROOM_LIMIT = "ROOM_LIMIT"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    ADMIN_DISCONNECT = "ADMIN_DISCONNECT"
    NOT_FOUND = "NOT_FOUND"

    @property
    def default_message(self) -> str:
        return _DEFAULT_MESSAGES[self]


_DEFAULT_MESSAGES: dict[ErrorCode, str] = {
    ErrorCode.AUTH_FAILED: "Invalid or expired token",
    ErrorCode.AUTH_MISSING: "No authentication provided",
    ErrorCode.ROOM_ACCESS_DENIED: "Access denied to room",
    ErrorCode.INVALID_ROOM: "Invalid room format",
    ErrorCode.INVALID_REQUEST: "Invalid request",
    ErrorCode.RATE_LIMITED: "Too many requests",
    ErrorCode.CONNECTION_LIMIT: "The gateway has reached its connection limit",
    ErrorCode.PERMISSION_DENIED: "The token lacks the role this needs",
    ErrorCode.INVALID_EVENT: "The event does not match its model",
    ErrorCode.PAYLOAD_TOO_LARGE: "The request body is larger than MAX_PAYLOAD_BYTES",
    ErrorCode.ROOM_LIMIT: "This connection is in as many rooms as it may be",
    ErrorCode.SERVICE_UNAVAILABLE: "Events cannot be stored and sent just now; retry later",
    ErrorCode.ADMIN_DISCONNECT: "An operator closed this connection",
    ErrorCode.NOT_FOUND: "No such connection",
}


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""


class SettingsError(GatewayError, ValueError):
    """The configuration cannot be used; the message is one line naming the mistake."""


class RedisUnavailable(GatewayError, ConnectionError):
    """Redis could not be reached: the event was not stored or sent."""

    sent = 0
    """Of a batch, how many events were sent all the same."""
    unsent: tuple[int, ...] = ()
    """Of a batch, the indexes of the events not sent (on a Redis Cluster, not always the
    last ones: each master takes its part)."""


class ClientError(GatewayError):
    """A mistake of the caller: it carries the code and message the caller is shown."""

    code: ErrorCode

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.code.default_message
        super().__init__(self.message)


class AuthMissing(ClientError, PermissionError):
    code = ErrorCode.AUTH_MISSING


class AuthFailed(ClientError, PermissionError):
    code = ErrorCode.AUTH_FAILED


class InvalidRoom(ClientError, ValueError):
    code = ErrorCode.INVALID_ROOM


class RoomAccessDenied(ClientError, PermissionError):
    code = ErrorCode.ROOM_ACCESS_DENIED


class InvalidRequest(ClientError, ValueError):
    code = ErrorCode.INVALID_REQUEST


class ConnectionLimit(ClientError, ConnectionError):
    code = ErrorCode.CONNECTION_LIMIT


class RateLimited(ClientError, ConnectionError):
    code = ErrorCode.RATE_LIMITED


class RoomLimit(ClientError, PermissionError):
    code = ErrorCode.ROOM_LIMIT


class PermissionDenied(ClientError, PermissionError):
    code = ErrorCode.PERMISSION_DENIED


class SubscriptionUnavailable(ClientError, ConnectionError):
    """Redis answers but did not confirm a room's subscription in time: the join did not
    happen (rather than a member in a room whose events would never come)."""

    code = ErrorCode.SERVICE_UNAVAILABLE


class AdminDisconnect(ClientError, ConnectionError):
    """Not the client's mistake: the notice sent before an operator closes its connection."""

    code = ErrorCode.ADMIN_DISCONNECT


@dataclass(frozen=True)
class FieldError:
    """One reason an event was refused: where (a path into the event) and what is wrong."""

    loc: tuple[str | int, ...]
    message: str

    def as_json(self) -> dict[str, object]:
        return {"loc": list(self.loc), "message": self.message}


class EventRejected(ClientError, ValueError):
    """An event failed validation; ``errors`` names every bad field. Nothing was sent."""

    code = ErrorCode.INVALID_EVENT

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        details = "; ".join(f"{'.'.join(map(str, e.loc)) or '(event)'}: {e.message}" for e in errors)
        super().__init__(f"{self.code.default_message}: {details}")


def field_errors(error: ValidationError, prefix: tuple[str | int, ...] = ()) -> list[FieldError]:
    return [FieldError(prefix + tuple(e["loc"]), e["msg"]) for e in error.errors(include_url=False)]

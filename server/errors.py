"""The gateway's error tree and the error codes a client can see.

Every code a client may receive is declared once here, in :class:`ErrorCode`, with the
message it carries by default; the rest of the code raises the matching exception and lets
the edge (connect handler, command handler, HTTP route) turn it into the wire shape.
"""

from __future__ import annotations

from enum import StrEnum


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
}


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""


class SettingsError(GatewayError, ValueError):
    """The configuration cannot be used; the message is one line naming the mistake."""


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

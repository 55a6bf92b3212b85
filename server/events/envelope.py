"""The envelope every server event travels in.

``type`` names the event, ``id`` is fresh per event (clients de-duplicate on it),
``timestamp`` is UTC in RFC 3339 with a ``Z`` suffix, ``source`` names the emitting service and
``data`` holds the event's own model. A concrete event subclasses :class:`Envelope` with its
data model and narrows ``type`` to a Literal.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar, Generic, TypeVar
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, field_serializer

DataT = TypeVar("DataT", bound=BaseModel)

GATEWAY_SOURCE = "realtime_gateway"


def utc_now() -> datetime:
    return datetime.now(UTC)


def rfc3339(moment: datetime) -> str:
    """Millisecond RFC 3339 in UTC with a ``Z``, as JavaScript's ``Date.toISOString`` writes it."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Envelope(BaseModel, Generic[DataT]):
    model_config = ConfigDict(frozen=True, extra="forbid")

    wire_name: ClassVar[str | None] = None
    """The Socket.IO event name when it differs from ``type``."""

    type: str = Field(description="The event type, e.g. 'project.updated'.")
    id: UUID = Field(default_factory=uuid4, description="Unique id of this event.")
    timestamp: datetime = Field(default_factory=utc_now, description="When the event was made (UTC).")
    source: str = Field(default=GATEWAY_SOURCE, description="The service that emitted the event.")
    data: DataT

    @field_serializer("timestamp")
    def _serialize_timestamp(self, moment: datetime) -> str:
        return rfc3339(moment)

    @classmethod
    def event_name(cls) -> str:
        """The name the event is emitted under on the wire."""
        if cls.wire_name is not None:
            return cls.wire_name
        default = cls.model_fields["type"].default
        assert isinstance(default, str), f"{cls.__name__} must give 'type' a default"
        return default

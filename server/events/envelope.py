"""The envelope every server event travels in.

``type`` names the event, ``id`` is fresh per event (clients de-duplicate on it),
``timestamp`` is UTC in RFC 3339 with a ``Z`` suffix, ``source`` names the emitting service and
``data`` holds the event's own model. A concrete event subclasses :class:`Envelope` with its
data model and narrows ``type`` to a Literal.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, TypeVar
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field

from swe_realtime.events._types import Index, UtcDatetime

DataT = TypeVar("DataT", bound=BaseModel)

MAX_EPOCH_CHARS = 32


def new_epoch() -> str:
    """A fresh epoch: a random token naming one life of a room's history."""
    return secrets.token_urlsafe(9)


class StreamPosition(BaseModel):
    """Where an event stands in one room's history (see server/delivery/history.py).

    ``offset`` counts the room's events from 1; ``epoch`` names the history they are counted
    in and changes when that history is lost, so that an old offset is never read against a
    new count. A client keeps the last position per room and passes it back to resume.
    """

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")

    epoch: str = Field(min_length=1, max_length=MAX_EPOCH_CHARS, description="The room history's epoch.")
    offset: Index = Field(description="The event's number in the room, from 1.")


GATEWAY_SOURCE = "realtime_gateway"

ModelClass = type[BaseModel]


def utc_now() -> datetime:
    return datetime.now(UTC)


def source_field(default: str) -> Any:
    """The ``source`` field of an event whose usual emitter is ``default``."""
    return Field(
        default=default, min_length=1, max_length=100, description="The service that emitted the event."
    )


class Envelope(BaseModel, Generic[DataT]):
    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_serialization_defaults_required=True)

    wire_name: ClassVar[str | None] = None
    """The Socket.IO event name when it differs from ``type``."""

    type: str = Field(description="The event type, e.g. 'project.updated'.")
    id: UUID = Field(default_factory=uuid4, description="Unique id of this event.")
    timestamp: UtcDatetime = Field(default_factory=utc_now, description="When the event was made (UTC).")
    source: str = source_field(GATEWAY_SOURCE)
    data: DataT = Field(description="The fields of this kind of event.")
    positions: dict[str, StreamPosition] = Field(
        default_factory=dict,
        description="The event's position in each room it was sent to, keyed by room; empty when"
        " history is off. Set by the gateway. On connection_established: the positions of the"
        " rooms joined at connect that were not resumed.",
    )

    @classmethod
    def event_type(cls) -> str:
        """The value of ``type`` for this event."""
        default = cls.model_fields["type"].default
        assert isinstance(default, str), f"{cls.__name__} must give 'type' a default"
        return default

    @classmethod
    def event_name(cls) -> str:
        """The name the event is emitted under on the wire."""
        return cls.wire_name if cls.wire_name is not None else cls.event_type()

    @classmethod
    def data_model(cls) -> ModelClass:
        """The model of this event's ``data``."""
        annotation = cls.model_fields["data"].annotation
        assert isinstance(annotation, type)
        assert issubclass(annotation, BaseModel)
        return annotation

    @classmethod
    def example(cls) -> dict[str, Any]:
        """An example envelope (without id and timestamp), from the data model's first example."""
        extra = cls.data_model().model_config.get("json_schema_extra")
        assert isinstance(extra, dict), f"{cls.data_model().__name__} needs examples"
        examples = extra["examples"]
        assert isinstance(examples, list)
        assert isinstance(examples[0], dict)
        return {"type": cls.event_type(), "source": cls.model_fields["source"].default, "data": examples[0]}

"""Field types shared by the event models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema


def rfc3339(moment: datetime) -> str:
    """Millisecond RFC 3339 in UTC with a ``Z``, as JavaScript's ``Date.toISOString`` writes it."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


UtcDatetime = Annotated[
    AwareDatetime,
    PlainSerializer(rfc3339, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
"""A timezone-aware moment; sent as RFC 3339 UTC with ``Z``. Naive datetimes are refused."""

HttpUrlText = Annotated[str, Field(pattern=r"^https?://[^\s]+$", max_length=2048)]
"""An http(s) URL kept exactly as given (pydantic's HttpUrl would rewrite it)."""

Name = Annotated[str, Field(min_length=1, max_length=200)]
Title = Annotated[str, Field(min_length=1, max_length=500)]
Text = Annotated[str, Field(max_length=20_000)]
Percent = Annotated[float, Field(ge=0, le=100)]


def examples(*items: dict[str, Any]) -> ConfigDict:
    """Model configuration carrying examples: they become the contract's examples."""
    return ConfigDict(json_schema_extra={"examples": list(items)})


class EventData(BaseModel):
    """Base of every event's ``data``: immutable, and unknown fields are refused.

    The gateway sends every field, defaults included, so the (serialization) schema of what
    clients receive marks every field required; the validation schema keeps defaults optional.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_serialization_defaults_required=True)

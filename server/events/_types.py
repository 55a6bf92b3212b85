"""Field types shared by the event models."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import InitErrorDetails


def rfc3339(moment: datetime) -> str:
    """Millisecond RFC 3339 in UTC with a ``Z``, as JavaScript's ``Date.toISOString`` writes it."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


UtcDatetime = Annotated[
    AwareDatetime,
    PlainSerializer(rfc3339, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
"""A timezone-aware moment; sent as RFC 3339 UTC with ``Z``. Naive datetimes are refused."""

HttpUrlText = Annotated[str, Field(pattern=r"^https?://[^\u0000-\u0020\u007f-\u009f]+$", max_length=2048)]
"""An http(s) URL kept exactly as given (pydantic's HttpUrl would rewrite it). No spaces or
control characters, spelled out: ``\\s`` means different things to the Rust regex engine
that validates and to the JavaScript engines that read the published schema."""

Name = Annotated[str, Field(min_length=1, max_length=200)]
Title = Annotated[str, Field(min_length=1, max_length=500)]
Text = Annotated[str, Field(max_length=20_000)]
Percent = Annotated[float, Field(ge=0, le=100)]


def empty(kind: type[list[Any]] | type[dict[str, Any]], **field: Any) -> Any:
    """A field that defaults to an empty list or dict: made new for each event, where
    ``default=[]`` deep-copies the default each time, and documented as ``default=[]`` is."""
    return Field(default_factory=kind, json_schema_extra={"default": kind()}, **field)


def examples(*items: dict[str, Any]) -> ConfigDict:
    """Model configuration carrying examples: they become the contract's examples."""
    return ConfigDict(json_schema_extra={"examples": list(items)})


M = TypeVar("M", bound=BaseModel)


def from_wire(model: type[M], value: object) -> M:
    """Validate a value that arrived as JSON with JSON's own types (strict JSON mode).

    Python-mode validation is lax (``true`` passes as the integer 1, ``"5"`` as 5, a number
    as a datetime), which would let clients send what the published schemas forbid; strict
    JSON validation still reads UUIDs and datetimes from their string forms. NaN and
    Infinity, which some JSON parsers accept, are refused anywhere in the value: clients'
    JSON.parse would choke on them.
    """
    try:
        text = json.dumps(value, allow_nan=False)
    except ValueError:
        error = InitErrorDetails(type="finite_number", loc=(), input=str(value)[:100])
        raise ValidationError.from_exception_data(model.__name__, [error]) from None
    return model.model_validate_json(text, strict=True)


def _integral(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


MAX_SAFE_INTEGER = 2**53 - 1
"""The largest integer a JSON client is sure to hold exactly: JavaScript's
``Number.MAX_SAFE_INTEGER``. ``JSON.parse`` reads numbers as doubles, so past it integers lose
digits, and past about 309 digits they become ``Infinity``."""

SafeInt = Annotated[int, Field(ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER)]
"""An integer every JSON client reads back as sent. Every integer field of the models is
one (narrowed further where the field has natural bounds), so the contracts carry the bounds."""

Index = Annotated[SafeInt, Field(ge=0)]
"""A non-negative SafeInt that must be sent as a JSON integer (offsets, counts the gateway
reports)."""

# An integer that, as JSON Schema's ``integer`` does, also accepts 76.0 (but not true). The
# bounds come before the validator so that they stay ``minimum``/``maximum`` in the schema.
Count = Annotated[Index, BeforeValidator(_integral)]
WholePercent = Annotated[SafeInt, Field(ge=0, le=100), BeforeValidator(_integral)]


class EventData(BaseModel):
    """Base of every event's ``data``: immutable, and unknown fields are refused.

    The gateway sends every field, defaults included, so the (serialization) schema of what
    clients receive marks every field required; the validation schema keeps defaults optional.
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", allow_inf_nan=False, json_schema_serialization_defaults_required=True
    )

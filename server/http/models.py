"""The bodies of the HTTP API, as models: the routes build them, codegen documents them."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from swe_realtime.errors import ErrorCode, EventRejected
from swe_realtime.events._types import Index

MAX_BATCH = 100
"""The most events one batch request may carry."""

CONFIG = ConfigDict(frozen=True, json_schema_serialization_defaults_required=True)


class StatusBody(BaseModel):
    model_config = CONFIG

    status: Literal["ok", "ready", "not ready"] = Field(description="The probe's answer.")


class ErrorBody(BaseModel):
    model_config = CONFIG

    error_code: ErrorCode = Field(description="Why the request failed, as a stable code.")
    message: str = Field(description="Why, for a human.")


class FieldErrorBody(BaseModel):
    model_config = CONFIG

    loc: list[str | Index] = Field(description="Path to the bad value: batch index, then field names.")
    message: str = Field(description="What is wrong with it.")


class RejectedBody(ErrorBody):
    errors: list[FieldErrorBody] = Field(description="Every bad field of the event(s).")

    @classmethod
    def of(cls, error: EventRejected) -> RejectedBody:
        return cls(
            error_code=error.code,
            message=error.code.default_message,
            errors=[FieldErrorBody(loc=list(e.loc), message=e.message) for e in error.errors],
        )


class ReceiptBody(BaseModel):
    model_config = CONFIG

    id: UUID = Field(description="The id the gateway gave the event.")
    type: str = Field(description="The event's type.")
    rooms: list[str] = Field(description="The rooms it was sent to.")


class BatchReceiptBody(BaseModel):
    model_config = CONFIG

    receipts: list[ReceiptBody] = Field(description="One receipt per event, in the batch's order.")


class InstanceStats(BaseModel):
    model_config = CONFIG

    connections: Index = Field(description="Live connections on this instance.")
    rooms: dict[str, Index] = Field(description="Members of every named room on this instance.")


class StatsBody(InstanceStats):
    """Counts summed over every live instance, and each instance's own."""

    connections: Index = Field(description="Live connections, all instances together.")
    rooms: dict[str, Index] = Field(description="Members of every named room, all instances together.")
    instances: dict[str, InstanceStats] = Field(description="The same counts per instance id.")
    partial: bool = Field(description="True when other instances could not be asked (Redis unreachable).")

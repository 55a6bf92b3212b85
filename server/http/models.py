"""The bodies of the HTTP API, as models: the routes build them, codegen documents them."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from swe_realtime.errors import ErrorCode, EventRejected
from swe_realtime.events._types import Index
from swe_realtime.events.envelope import StreamPosition

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


class ConnectionBody(BaseModel):
    """One live connection, as the admin API shows it."""

    model_config = CONFIG

    id: str = Field(description="The connection's id: the Socket.IO socket id its client sees.")
    user: UUID = Field(description="The user (or agent) the token names (`sub`).")
    instance: str = Field(description="The instance holding the connection.")
    transport: Literal["websocket", "polling"] = Field(description="The Engine.IO transport now.")
    remote: str = Field(
        description="The client's address and port, as the instance sees it; behind a trusted"
        " proxy (FORWARDED_ALLOW_IPS) the address the proxy names, without a port."
    )
    connected_at: AwareDatetime = Field(description="When it connected.")
    rooms: list[str] = Field(description="The named rooms it is in, sorted: the first 20.")
    room_count: Index = Field(description="How many named rooms it is in.")
    unread_packets: Index = Field(description="Packets sent to it that it has not read yet.")
    unread_bytes: Index = Field(description="Bytes of those packets.")


class ConnectionPageBody(BaseModel):
    model_config = CONFIG

    connections: list[ConnectionBody] = Field(description="One page of the matching connections, by id.")
    total: Index = Field(description="How many connections match, over every instance that answered.")
    next: str | None = Field(description="The `after` of the next page; null on the last page.")
    partial: bool = Field(description="True when some instance did not answer (Redis unreachable, or late).")


class DisconnectedBody(BaseModel):
    model_config = CONFIG

    id: str = Field(description="The connection closed.")
    instance: str = Field(description="The instance that held it.")


class RoomBody(BaseModel):
    model_config = CONFIG

    room: str = Field(description="The room.")
    position: StreamPosition | None = Field(description="Its position now; null when `history` is not `ok`.")
    history: Literal["ok", "off", "unavailable", "none"] = Field(
        description="The room's history: `ok`; `off` (HISTORY_SIZE=0); `unavailable` (Redis did not"
        " answer in time: position and events unknown, not absent); `none` (no event kept: the room"
        " was never published to, or its history expired)."
    )
    members: Index = Field(description="Its members, over every instance that answered.")
    instances: dict[str, Index] = Field(
        description="Its members per instance (instances with none left out)."
    )
    connections: list[ConnectionBody] = Field(description="Its first members by connection id (at most 100).")
    events: list[dict[str, Any]] = Field(description="Its last events from the history, oldest first.")
    partial: bool = Field(description="True when some instance did not answer (Redis unreachable, or late).")


class InstanceBody(BaseModel):
    model_config = CONFIG

    id: str = Field(description="The instance id (INSTANCE_ID).")
    version: str = Field(description="The gateway's version there.")
    started_at: AwareDatetime = Field(description="When it started.")
    uptime_seconds: float = Field(ge=0, description="Seconds since it started.")
    redis: Literal["up", "down", "none"] = Field(
        description="Whether it reaches Redis; none: it runs without."
    )
    rss_bytes: Index = Field(description="Its resident memory.")
    connections: Index = Field(description="Its live connections.")
    rooms: Index = Field(description="Rooms with a member there.")
    samples: list[list[float]] = Field(
        description="Its notes of the last 15 minutes after `since`, oldest first, each"
        " `[t, connections, published/s, delivered/s, refused/s, dropped/s]`: t in Unix seconds,"
        " a multiple of `step` (the same instants on every instance); the rates since the note"
        " before, from the counters of /metrics (refused: events, connections and rate-limited"
        " commands; dropped: connections the gateway closed)."
    )


class InstancesBody(BaseModel):
    model_config = CONFIG

    instances: list[InstanceBody] = Field(description="Every instance that answered, by id.")
    step: float = Field(description="Seconds between two notes of an instance.")
    partial: bool = Field(description="True when some instance did not answer (Redis unreachable, or late).")

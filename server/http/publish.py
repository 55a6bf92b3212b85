"""``POST /api/v1/events`` and ``/api/v1/events/batch``: how non-Python backends publish.

Service tokens only. The body is an event without ``id`` and ``timestamp`` (the gateway sets
them); the answer is 202 with the receipt, 422 naming every bad field, or 503 when the event
could not be stored and sent (Redis unreachable): an accepted event is never a lost one. A batch (a JSON
array of up to MAX_BATCH events) is validated whole before any of it is sent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import Field, TypeAdapter
from sanic import Blueprint, Request
from sanic.response import JSONResponse, json

from swe_realtime.errors import ErrorCode, EventRejected, FieldError, RedisUnavailable
from swe_realtime.events.envelope import Envelope
from swe_realtime.http._auth import Authenticator, error_response
from swe_realtime.http.models import MAX_BATCH, RejectedBody
from swe_realtime.publish.broadcaster import EVENT, Broadcaster, parse_event, read_events
from swe_realtime.publish.typed import Receipt
from swe_realtime.sessions.auth import Role
from swe_realtime.telemetry import metrics

ONE_EVENT: TypeAdapter[Any] = TypeAdapter(EVENT)
EVENT_BATCH: TypeAdapter[Any] = TypeAdapter(Annotated[list[EVENT], Field(min_length=1, max_length=MAX_BATCH)])
RECEIPTS = TypeAdapter(list[Receipt])
"""Receipts as ReceiptBody documents them (a test holds the two together), written in one
call instead of one model per receipt."""


def publish_blueprint(auth: Authenticator, broadcaster: Broadcaster) -> Blueprint:
    bp = Blueprint("publish", url_prefix="/api/v1/events")

    async def accept(
        request: Request, adapter: TypeAdapter[Any], parse: Callable[[Any], list[Envelope[Any]]]
    ) -> list[Receipt] | JSONResponse:
        """Authorize, validate everything, then send: the receipts, or the error response.

        Good bodies are validated from their bytes (``read_events``); any other is parsed and
        judged event by event, which names every bad field."""
        allowed = auth.authorize(request, (Role.SERVICE,))
        if isinstance(allowed, JSONResponse):
            return allowed
        try:
            events = read_events(adapter, request.body) or parse(request.json)
        except EventRejected as exc:
            metrics.EVENTS_REFUSED.labels("invalid").inc()
            metrics.VALIDATION_FAILURES.labels("publish").inc()
            return rejected(exc)
        try:
            return await broadcaster.publish_many(events)
        except RedisUnavailable as exc:
            metrics.EVENTS_REFUSED.labels("redis_unavailable").inc()
            return error_response(
                503,
                ErrorCode.SERVICE_UNAVAILABLE,
                f"{ErrorCode.SERVICE_UNAVAILABLE.default_message} ({exc.sent} of {len(events)} sent"
                + (f"; not sent: {', '.join(map(str, exc.unsent))})" if exc.sent else ")"),
            )

    @bp.post("/")
    async def publish(request: Request) -> JSONResponse:
        receipts = await accept(request, ONE_EVENT, lambda body: [parse_event(body)])
        if isinstance(receipts, JSONResponse):
            return receipts
        return json(RECEIPTS.dump_python(receipts, mode="json")[0], status=202)

    @bp.post("/batch")
    async def publish_batch(request: Request) -> JSONResponse:
        receipts = await accept(request, EVENT_BATCH, parse_batch)
        if isinstance(receipts, JSONResponse):
            return receipts
        return json({"receipts": RECEIPTS.dump_python(receipts, mode="json")}, status=202)

    return bp


def parse_batch(body: Any) -> list[Envelope[Any]]:
    """Validate every event of a batch; raise one EventRejected naming all bad fields."""
    if not isinstance(body, list) or not 1 <= len(body) <= MAX_BATCH:
        raise EventRejected([FieldError((), f"must be a JSON array of 1 to {MAX_BATCH} events")])
    events: list[Envelope[Any]] = []
    errors: list[FieldError] = []
    for index, item in enumerate(body):
        try:
            events.append(parse_event(item, prefix=(index,)))
        except EventRejected as exc:
            errors += exc.errors
    if errors:
        raise EventRejected(errors)
    return events


def rejected(error: EventRejected) -> JSONResponse:
    return json(RejectedBody.of(error).model_dump(mode="json"), status=422)

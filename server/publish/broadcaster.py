"""The typed API backends use to send events: validate -> route -> emit.

Every event is validated against its model before anything is sent, serialised once, and
emitted once to the union of its rooms: python-socketio resolves the union to distinct
connections, so a connection in two of the rooms receives the event once.

It needs only pydantic: the gateway hands it the sink that delivers (server/delivery/history.py), a
backend process without a gateway the rooms' streams in Redis (server/cluster/emitter.py).
Which one a process gets is chosen by ``get_broadcaster()`` (server/broadcaster.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Annotated, Any, Protocol, Union

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from swe_realtime.errors import EventRejected, FieldError, RedisUnavailable, field_errors
from swe_realtime.events._types import from_wire
from swe_realtime.events.catalogue import CATALOGUE
from swe_realtime.events.envelope import Envelope
from swe_realtime.publish.broadcasts_gen import BroadcastMethods
from swe_realtime.publish.message import Outgoing
from swe_realtime.publish.typed import Receipt

_OBJECT = TypeAdapter(dict[str, Any])


class EventSink(Protocol):
    """Where the broadcaster hands validated events: the gateway's history (positions, then
    delivery), or the rooms' streams in Redis."""

    async def send(self, events: Sequence[Outgoing]) -> list[BaseException | None]:
        """Send the events; per event, None once sent, or why not."""


def parse_event(body: object, prefix: tuple[str | int, ...] = ()) -> Envelope[Any]:
    """Validate an event given as JSON (``type``, optional ``source``, ``data``).

    ``id`` and ``timestamp`` are the gateway's to set: giving them is an error, like an
    unknown ``type`` or any field that does not match the event's model.
    """
    try:
        fields = _OBJECT.validate_python(body)
    except ValidationError as exc:
        raise EventRejected(field_errors(exc, prefix)) from None
    reserved = [
        FieldError((*prefix, key), "is set by the gateway")
        for key in ("id", "timestamp", "positions")
        if key in fields
    ]
    if reserved:
        raise EventRejected(reserved)
    event_type = fields.get("type")
    entry = CATALOGUE.get(event_type) if isinstance(event_type, str) else None
    if entry is None:
        known = ", ".join(sorted(CATALOGUE))
        raise EventRejected([FieldError((*prefix, "type"), f"must be one of: {known}")])
    try:
        return from_wire(entry.event, fields)
    except ValidationError as exc:
        raise EventRejected(field_errors(exc, prefix)) from None


RESERVED = frozenset({"id", "timestamp", "positions"})
"""Envelope fields only the gateway sets."""


def _one_of_the_catalogue() -> Any:
    """The type of any catalogue event, told apart by ``type`` (a tagged union: one lookup)."""
    events = tuple(entry.event for entry in CATALOGUE.values())
    return Annotated[Union[events], Field(discriminator="type")]  # noqa: UP007 (a tuple of types)


def _free_form(schema: object) -> bool:
    """Whether a pydantic core schema takes any JSON somewhere (``dict[str, Any]``)."""
    if isinstance(schema, dict):
        return schema.get("type") == "any" or any(_free_form(value) for value in schema.values())
    if isinstance(schema, list):
        return any(_free_form(value) for value in schema)
    return False


EVENT = _one_of_the_catalogue()
"""Any catalogue event, as one validatable type (see ``read_events``)."""
_FREE_FORM = frozenset(
    entry.event for entry in CATALOGUE.values() if _free_form(entry.event.__pydantic_core_schema__)
)
"""Events with a field that takes any JSON: the only place a NaN or Infinity could hide."""


def read_events(adapter: TypeAdapter[Any], body: bytes) -> list[Envelope[Any]] | None:
    """The events of a request body, validated straight from its JSON in one pass, when all of
    them are good; None otherwise, and then ``parse_event`` judges the parsed body with its
    exact field errors. So this only ever accepts what ``parse_event`` accepts, at a fraction
    of the cost (no parse to Python objects, no copy, no second JSON text per event).

    ``adapter`` validates ``EVENT`` or a list of them. What ``parse_event`` refuses and this
    would not see is refused here too: the gateway's own fields (they are set, so they were
    given), and non-finite numbers in free-form fields (typed numbers refuse them already).
    """
    try:
        parsed = adapter.validate_json(body, strict=True)
    except ValidationError:
        return None
    events: list[Envelope[Any]] = parsed if isinstance(parsed, list) else [parsed]
    for event in events:
        if not RESERVED.isdisjoint(event.model_fields_set):
            return None
        if type(event) in _FREE_FORM and not _finite(event):
            return None
    return events


def _finite(value: object) -> bool:
    """No NaN or infinity anywhere in ``value``, as ``json.dumps(allow_nan=False)`` checks."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, BaseModel):
        return _all_finite(value.__dict__.values())
    if isinstance(value, dict):
        return _all_finite(value.values())
    if isinstance(value, list | tuple):
        return _all_finite(value)
    return True


def _all_finite(values: Iterable[object]) -> bool:
    return all(_finite(value) for value in values)


class Broadcaster(BroadcastMethods):
    """Sends catalogue events to their rooms; one typed ``broadcast_*`` method per event
    (generated from the catalogue into publish/broadcasts_gen.py by ``just codegen``)."""

    def __init__(self, sink: EventSink) -> None:
        self._sink = sink

    async def publish(self, event: Envelope[Any]) -> Receipt:
        """Send a validated event to the union of its rooms and say where it went."""
        [receipt] = await self.publish_many([event])
        return receipt

    async def publish_many(self, events: Sequence[Envelope[Any]]) -> list[Receipt]:
        """Send validated events, together; RedisUnavailable (``sent`` saying how many went,
        ``unsent`` which did not) if some could not be sent."""
        outgoing = [_outgoing(event) for event in events]
        errors = await self._sink.send(outgoing)
        failed = [error for error in errors if error is not None]
        if failed:
            refusal = RedisUnavailable(str(failed[0]))
            refusal.sent = len(errors) - len(failed)
            refusal.unsent = tuple(index for index, error in enumerate(errors) if error is not None)
            raise refusal from failed[0]
        return [
            Receipt(event.id, event.type, tuple(out.rooms))
            for event, out in zip(events, outgoing, strict=True)
        ]


def _outgoing(event: Envelope[Any]) -> Outgoing:
    entry = CATALOGUE.get(event.type)
    if entry is None or not isinstance(event, entry.event):
        raise EventRejected([FieldError(("type",), "is not a publishable event")])
    return Outgoing(entry.name, event, list(entry.route.rooms(event.data.__dict__)))

"""The shape of the Broadcaster's typed methods: one per catalogue event, taking the event's
data fields as keyword arguments, checked by mypy at the call site and by pydantic at run time.

publish/broadcasts_gen.py, written from the catalogue by ``just codegen``, is one :func:`typed` line
per event: adding an event is its model and its catalogue row.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar
from uuid import UUID

from pydantic import BaseModel, ValidationError

from swe_realtime.errors import EventRejected, field_errors
from swe_realtime.events.envelope import Envelope

P = ParamSpec("P")
D = TypeVar("D", bound=BaseModel)


@dataclass(frozen=True)
class Receipt:
    """What was sent: the event's id and type, and the rooms it went to."""

    id: UUID
    type: str
    rooms: tuple[str, ...]


class Publisher(Protocol):
    """What a typed method sends through: the Broadcaster."""

    async def publish(self, event: Envelope[Any]) -> Receipt: ...


def typed(
    event: type[Envelope[D]], data: Callable[P, D]
) -> Callable[Concatenate[Publisher, P], Coroutine[Any, Any, Receipt]]:
    """A broadcaster method taking ``data``'s fields as keyword arguments (typed by mypy)."""

    async def broadcast(self: Publisher, /, *args: P.args, **kwargs: P.kwargs) -> Receipt:
        try:
            built = event.model_validate({"data": data(*args, **kwargs)})
        except ValidationError as exc:
            raise EventRejected(field_errors(exc, ("data",))) from None
        return await self.publish(built)

    broadcast.__doc__ = f"Validate and send a {event.event_type()} event; keyword arguments are its data."
    return broadcast

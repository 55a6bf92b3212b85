"""What stands between live delivery and a connection that is catching up on missed events.

While a connection's history is being read (server/delivery/recovery.py), its live events are held;
once the replay is out they follow, except those it already had. Afterwards, per room, a
floor (the position the replay reached) drops the live events at or below it, which an
instance whose channel subscriber lags behind Redis may still deliver. A floor is forgotten
once live delivery passes it, and the gate with its last floor: connections not catching up
have no gate, and fan-out to them costs one dictionary lookup.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

Positions = dict[str, dict[str, Any]] | None
"""An event's ``positions`` as delivered: room -> {epoch, offset}; None or empty without."""


@dataclass(slots=True)
class Gate:
    floors: dict[str, tuple[str, int]] = field(default_factory=dict)
    """Room -> (epoch, offset): the connection has had every event of the room up to there."""
    held: deque[tuple[Positions, list[Any]]] | None = None
    """Live events (positions, frames) waiting for a replay to finish; None when not holding."""
    holders: int = 0
    """Recoveries in progress on this connection."""

    def admit(self, positions: Positions, frames: list[Any]) -> bool:
        """Whether to send a live event now (False: held, or already had)."""
        if self.held is not None:
            self.held.append((positions, frames))
            return False
        return self.passes(positions)

    def passes(self, positions: Positions) -> bool:
        """False when the connection has had this event: at or below a floor of one of its rooms."""
        if not positions or not self.floors:
            return True
        had = False
        for room, position in positions.items():
            floor = self.floors.get(room)
            if floor is None:
                continue
            if position.get("epoch") == floor[0] and position.get("offset", 0) <= floor[1]:
                had = True
            else:  # past the floor (or in a new history): the floor has done its job
                del self.floors[room]
        return not had

    @property
    def idle(self) -> bool:
        return self.held is None and not self.floors

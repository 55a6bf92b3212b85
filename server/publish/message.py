"""One copy of an event as a room's channel carries it and its stream keeps it: a small header,
then the WebSocket frame every member's socket is written, byte for byte.

    <event> <accepted> <index> <rooms> <positions>\\n<frame>

- ``event``: the event's wire name (the metrics' label);
- ``accepted``: when the gateway accepted it, in milliseconds since the Unix epoch (the
  publish-to-emit histogram; the order in which replays of several rooms interleave);
- ``index``: which of the event's rooms this copy is for;
- ``rooms``: all of the event's rooms, in publishing order, joined by commas (room names
  hold neither commas nor spaces: server/events/rooms.py);
- ``positions``: ``epoch:offset`` of the copy in each room up to and including its own,
  joined by commas; ``-`` with history off;
- ``frame``: an unmasked WebSocket text frame of the Engine.IO message holding the
  Socket.IO EVENT packet on ``/ws`` (server/protocol/frames.py), its payload's ``positions`` those of
  the header.

The publisher writes it once (server/cluster/streams.py: in Redis, inside the append script, which
alone knows the offsets); every instance with members reads only the header and hands the
frame as it is to each member's socket, and a replay from the stream sends the very same
bytes. Nothing on the receiving side decodes JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from swe_realtime.events import NAMESPACE
from swe_realtime.events.envelope import Envelope
from swe_realtime.protocol.websocket import TEXT, frame_head

NO_POSITIONS = b"-"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A validated event on its way to its rooms, as the broadcaster hands it to its sink,
    which takes the form it needs: JSON data (in memory) or JSON text (Redis)."""

    event: str
    """The wire name."""
    envelope: Envelope[Any]
    rooms: list[str]

    @property
    def accepted(self) -> float:
        """When the gateway accepted it (Unix time): the envelope's ``timestamp``."""
        return self.envelope.timestamp.timestamp()

    def payload(self) -> dict[str, Any]:
        """The envelope as JSON data."""
        return self.envelope.model_dump(mode="json")

    def payload_json(self) -> str:
        """The envelope as JSON text, without its ``positions`` (each copy's are written in)."""
        return self.envelope.model_dump_json(exclude={"positions"})


def compact(value: Any) -> str:
    """JSON as the gateway writes it on the wire: no spaces, UTF-8 as it is."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def packet_head(event: str, payload_json: str) -> str:
    """The Socket.IO packet text (Engine.IO message type first) up to the payload's positions:
    ``payload_json`` is the envelope without ``positions``, which is appended after this."""
    return f'42{NAMESPACE},[{compact(event)},{payload_json[:-1]},"positions":{{'


def header_head(event: str, accepted_ms: int, index: int, rooms: list[str]) -> bytes:
    """The header up to its positions."""
    return f"{event} {accepted_ms} {index} {','.join(rooms)} ".encode()


def without_positions(event: str, accepted_ms: int, index: int, rooms: list[str], payload_json: str) -> bytes:
    """A copy with history off: no positions (the payload's are empty)."""
    text = (packet_head(event, payload_json) + "}}]").encode()
    return (
        header_head(event, accepted_ms, index, rooms)
        + NO_POSITIONS
        + b"\n"
        + frame_head(TEXT, len(text))
        + text
    )


class RoomMessage:
    """A parsed header and its frame (see the module's docstring)."""

    __slots__ = ("_positions", "_rooms", "accepted", "event", "frame", "index")

    def __init__(self, data: bytes) -> None:
        end = data.index(b"\n")
        event, accepted, index, rooms, positions = data[:end].split(b" ")
        self.event = event.decode()
        self.accepted = int(accepted) / 1000
        self.index = int(index)
        self._rooms = rooms
        self._positions = positions
        self.frame = data[end + 1 :]

    @property
    def rooms(self) -> list[str]:
        return self._rooms.decode().split(",")

    @property
    def room(self) -> str:
        return self.rooms[self.index]

    @property
    def several(self) -> bool:
        """Whether the event went to several rooms (this is one of its copies)."""
        return b"," in self._rooms

    @property
    def key(self) -> bytes:
        """Names the event, whichever copy this is: its rooms and its position in the first,
        or with history off its frame (then the same in every copy, and unique: it holds the
        event's id)."""
        if self._positions == NO_POSITIONS:
            return self.frame
        return self._rooms + b" " + self._positions.partition(b",")[0]

    @property
    def position(self) -> tuple[str, int] | None:
        """``(epoch, offset)`` of this copy in its room; None with history off."""
        if self._positions == NO_POSITIONS:
            return None
        epoch, _, offset = self._positions.rpartition(b",")[2].partition(b":")
        return epoch.decode(), int(offset)

    @property
    def positions(self) -> dict[str, dict[str, Any]]:
        """The copy's positions as its payload carries them (room -> epoch, offset)."""
        if self._positions == NO_POSITIONS:
            return {}
        pairs = (pair.partition(b":") for pair in self._positions.split(b","))
        return {
            room: {"epoch": epoch.decode(), "offset": int(offset)}
            for room, (epoch, _, offset) in zip(self.rooms, pairs, strict=False)
        }

    @property
    def text(self) -> str:
        """The frame's text: the Engine.IO packet (``4`` then the Socket.IO packet)."""
        length = self.frame[1] & 0x7F
        return self.frame[2 if length < 126 else 4 if length == 126 else 10 :].decode()

    @property
    def payload(self) -> dict[str, Any]:
        """The event as JSON (decoded: for the admin API's room view, not for delivery)."""
        payload: dict[str, Any] = json.loads(self.text[len(f"42{NAMESPACE},") :])[1]
        return payload

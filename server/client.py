"""A typed asyncio client of the gateway, for Python services and agents that subscribe.

python-socketio's AsyncClient underneath (the ``client`` extra: python-socketio and aiohttp).
What it adds over a bare AsyncClient, each a mistake a port of the JavaScript examples tends
to make:

- it connects to the ``/ws`` namespace of a *base* URL (a Socket.IO client pointed at
  ``http://host/ws`` asks for the path ``/ws/socket.io`` or lands on namespace ``/``);
- a refused connect raises :class:`ConnectionRefused` with the gateway's error code, not a
  bare "One or more namespaces failed to connect";
- acks and events come back as the gateway's own pydantic models, validated on receipt with
  the rules the gateway applies to what clients send (strict JSON);
- it keeps every room's last position and passes them in ``auth.positions`` on each
  (re)connection, like the TypeScript ``resumable`` helper (contracts/typescript/resume.js),
  so that a reconnection replays what was missed, in order and once.

An event that fails validation (or that this version does not know: a newer gateway) is
logged at WARNING on the ``swe_realtime.client`` logger and skipped, and its positions still
count: it was delivered, and a replay would only bring the same payload back. One odd event
must not stop a long-running consumer; the log line is where a version skew shows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeAlias, TypeVar
from urllib.parse import urlsplit

import socketio
from pydantic import BaseModel, TypeAdapter, ValidationError

from swe_realtime.errors import ErrorCode
from swe_realtime.events import (
    NAMESPACE,
    SERVER_EVENTS,
    ConnectionErrorEvent,
    ConnectionEstablished,
    Envelope,
    ErrorAck,
    EventAck,
    PongAck,
    RecoverAck,
    RefreshAck,
    RoomAck,
    StreamPosition,
)
from swe_realtime.events._types import from_wire
from swe_realtime.events.agent import AgentStatusReport
from swe_realtime.events.rooms import GLOBAL
from swe_realtime.protocol.socketio_client import start_reconnecting, stop_reconnecting

logger = logging.getLogger(__name__)

Event: TypeAlias = Envelope[Any]
"""Any event of the catalogue, or ``connection_established``: match on its class."""
Positions: TypeAlias = dict[str, StreamPosition]

EVENT_MODELS: Mapping[str, type[Event]] = {model.event_name(): model for model in SERVER_EVENTS}
"""The model of each event the gateway sends, by its Socket.IO name (``connection_error``
comes as an event when the token expires, just before the gateway closes the connection)."""

MAX_UNREAD = 10_000
"""Events held for ``events()`` by default before the oldest are dropped."""

AUTH_CODES = frozenset({ErrorCode.AUTH_FAILED, ErrorCode.AUTH_MISSING})
"""Refusals a retry with the same token cannot overcome: reconnecting stops on them."""

A = TypeVar("A", bound=BaseModel)
J = TypeVar("J", RoomAck, RecoverAck)
_ROOM_ANSWER: TypeAdapter[RoomAck | ErrorAck] = TypeAdapter(RoomAck | ErrorAck)
_RECOVER_ANSWER: TypeAdapter[RecoverAck | ErrorAck] = TypeAdapter(RecoverAck | ErrorAck)
_REFRESH_ANSWER: TypeAdapter[RefreshAck | ErrorAck] = TypeAdapter(RefreshAck | ErrorAck)
_EVENT_ANSWER: TypeAdapter[EventAck | ErrorAck] = TypeAdapter(EventAck | ErrorAck)
_PONG: TypeAdapter[PongAck | ErrorAck] = TypeAdapter(PongAck | ErrorAck)


class RealtimeError(Exception):
    """Root of the errors this client raises."""


class ConnectionRefused(RealtimeError):
    """The gateway refused the connection (``connection_error``): ``code`` says why."""

    def __init__(self, refusal: ConnectionErrorEvent) -> None:
        super().__init__(f"{refusal.data.error_code}: {refusal.data.error_message}")
        self.refusal = refusal
        self.code: ErrorCode = refusal.data.error_code


class CommandFailed(RealtimeError):
    """A command was answered with an error ack: ``code`` says why, ``ack`` has the rest."""

    def __init__(self, command: str, ack: ErrorAck) -> None:
        super().__init__(f"{command}: {ack.error_code}: {ack.message}")
        self.ack = ack
        self.code: ErrorCode = ack.error_code


def newer(current: StreamPosition | None, candidate: StreamPosition) -> bool:
    """Whether ``candidate`` replaces ``current``: another epoch (the history was lost: the
    old count means nothing now) or further on in the same one; never a step back."""
    return current is None or current.epoch != candidate.epoch or candidate.offset > current.offset


class _Stop:
    """Put in the event queue when the connection has ended for good."""

    def __init__(self, error: RealtimeError | None) -> None:
        self.error = error


class RealtimeClient:
    """One connection to the gateway's ``/ws`` namespace; made and closed by :func:`connect`."""

    def __init__(
        self,
        token: str,
        *,
        positions: Mapping[str, StreamPosition] | None = None,
        on_not_recovered: Callable[[RecoverAck], None] | None = None,
        ack_timeout: float = 10.0,
        max_unread: int = MAX_UNREAD,
        **client_options: Any,
    ) -> None:
        if max_unread < 1:
            raise ValueError("max_unread must be at least 1")
        self._token = token
        self._positions: Positions = dict(positions or {})
        self._rooms: set[str] = set(self._positions)
        self._on_not_recovered = on_not_recovered
        self._timeout = ack_timeout
        self._refusal: ConnectionErrorEvent | None = None
        self._queue: asyncio.Queue[Event | _Stop] = asyncio.Queue()
        self._max_unread = max_unread
        self.dropped = 0
        """Events dropped unread because ``max_unread`` were waiting (the oldest go first)."""
        self._sio = socketio.AsyncClient(**client_options)
        # Sync handlers: python-socketio runs each incoming message in a task of its own, and
        # a handler with no await in it runs whole in arrival order, so positions and the
        # queue see the events in the order they were sent.
        self._sio.on("*", self._on_event, namespace=NAMESPACE)
        self._sio.on("connect_error", self._on_refused, namespace=NAMESPACE)
        self._sio.on("disconnect", self._on_disconnect, namespace=NAMESPACE)

    # -- connecting ------------------------------------------------------------------------

    async def _connect(self, url: str, socketio_path: str, transports: list[str] | None) -> None:
        try:
            await self._sio.connect(
                url,
                auth=self._auth,  # called again on every reconnection: the positions of now
                namespaces=[NAMESPACE],
                transports=transports,
                socketio_path=socketio_path,
                wait_timeout=self._timeout,
            )
        except socketio.exceptions.ConnectionError as exc:
            if self._refusal is not None:
                raise ConnectionRefused(self._refusal) from None
            raise RealtimeError(f"cannot connect to {url}: {exc}") from exc

    def _auth(self) -> dict[str, Any]:
        return {
            "token": self._token,
            "positions": {room: p.model_dump(mode="json") for room, p in self._positions.items()},
        }

    def _on_refused(self, data: Any = None) -> None:
        """A refusal, at the first connect or a reconnection; one of the auth codes ends the
        client (the same token will not be accepted on the next attempt)."""
        payload = data.get("data") if isinstance(data, dict) else None
        if payload is None:
            return  # the gateway could not be reached at all: python-socketio retries
        try:
            self._refusal = ConnectionErrorEvent.model_validate(payload)
        except ValidationError:
            logger.warning("connect refused without a connection_error payload: %r", data)
            return
        if self._refusal.data.error_code in AUTH_CODES:
            self._stop(ConnectionRefused(self._refusal))

    def _on_disconnect(self, reason: str = "") -> None:
        """Ended by the gateway, python-socketio does not reconnect. Two cases: the gateway
        left the namespace (the token expired: the Engine.IO session is still up as this
        runs), and the events end; or it closed the Engine.IO session, as a draining gateway
        does so that its clients reconnect to another instance (socket.io-client does), and
        this client reconnects and resumes too, with python-socketio's reconnection loop."""
        if reason != socketio.AsyncClient.reason.SERVER_DISCONNECT:
            return
        if self._sio.eio.state == "connected":
            self._stop(None)
        elif self._sio.reconnection:
            start_reconnecting(self._sio)

    def _stop(self, error: RealtimeError | None) -> None:
        self._queue.put_nowait(_Stop(error))
        # A refusal while reconnecting: python-socketio's own way to stop its reconnection
        # loop (shutdown) awaits that loop, which is not done until this handler returns.
        stop_reconnecting(self._sio)

    async def close(self) -> None:
        """Disconnect (or stop reconnecting); ``events()`` ends once it has yielded what came."""
        await self._sio.shutdown()
        self._queue.put_nowait(_Stop(None))
        # engine.io leaves its aiohttp session open when the gateway refused or ended the
        # connection; the session is the client's own (none was passed in as http_session).
        http = self._sio.eio.http
        if http is not None and not self._sio.eio.external_http and not http.closed:
            await http.close()

    # -- events and positions --------------------------------------------------------------

    def _on_event(self, name: str, payload: Any = None, *_: Any) -> None:
        event = self._validated(name, payload)
        if isinstance(event, ConnectionEstablished):
            self._welcome(event)
        elif isinstance(payload, dict) and isinstance(payload.get("positions"), dict):
            self._advance(payload["positions"])  # a skipped event's too: it was delivered
        if event is not None:
            self._hold(event)

    def _hold(self, event: Event) -> None:
        """Queue the event for ``events()``; at ``max_unread`` waiting, drop the oldest first.

        A consumer that stops reading must not grow the process without bound; the newest
        events are the ones worth keeping, and the count says how many were lost (their
        positions count as delivered: a reconnection will not bring them back)."""
        if self._queue.qsize() >= self._max_unread:
            self._queue.get_nowait()
            self.dropped += 1
            if self.dropped == 1:
                logger.warning("dropping the oldest unread events: %d are waiting", self._max_unread)
        self._queue.put_nowait(event)

    @staticmethod
    def _validated(name: str, payload: Any) -> Event | None:
        model = EVENT_MODELS.get(name)
        if model is None:
            logger.warning("skipped an event this client does not know: %r", name)
            return None
        try:
            return from_wire(model, payload)
        except ValidationError as exc:
            logger.warning("skipped a %s event that does not match its model: %s", name, exc)
            return None

    def _welcome(self, event: ConnectionEstablished) -> None:
        """The rooms joined at connect, and the answers for the rooms resumed (the replayed
        events follow; they move their positions themselves)."""
        self._rooms.update((f"user:{event.data.user_id}", str(GLOBAL)))
        for room, position in event.positions.items():
            self._keep(room, position)
        for answer in event.data.recovery:
            if isinstance(answer, ErrorAck):
                if answer.room is not None:
                    self._forget(answer.room)
                continue
            self._rooms.add(answer.room)
            if not answer.recovered:
                if self._on_not_recovered is not None:
                    self._on_not_recovered(answer)
                if answer.position is not None:
                    self._keep(answer.room, answer.position)

    def _advance(self, positions: Mapping[str, Any]) -> None:
        """An event's positions: an event of several rooms can arrive after later events of
        one of them, so each room keeps its newest position; rooms left are not taken back."""
        for room, raw in positions.items():
            if room in self._rooms:
                try:
                    self._keep(room, from_wire(StreamPosition, raw))
                except ValidationError:
                    logger.warning("ignored a malformed position of %s: %r", room, raw)

    def _keep(self, room: str, position: StreamPosition) -> None:
        if newer(self._positions.get(room), position):
            self._positions[room] = position

    def _forget(self, room: str) -> None:
        self._rooms.discard(room)
        self._positions.pop(room, None)

    def positions(self) -> Positions:
        """The last position of every room the client is in: store it to resume in a later
        process (``connect(..., positions=...)``)."""
        return dict(self._positions)

    async def events(self) -> AsyncIterator[Event]:
        """The events as they arrive, ``connection_established`` included (again after each
        reconnection, with the recovery answers), each once. Ends when the client is closed or
        the gateway ends the connection; raises :class:`ConnectionRefused` when a reconnection
        is refused for its token."""
        while True:
            item = await self._queue.get()
            if isinstance(item, _Stop):
                self._queue.put_nowait(item)  # a second events() loop ends too
                if item.error is not None:
                    raise item.error
                return
            yield item

    # -- commands --------------------------------------------------------------------------

    async def _call(self, command: str, payload: Any, answers: TypeAdapter[A | ErrorAck]) -> A:
        raw = await self._sio.call(command, payload, namespace=NAMESPACE, timeout=self._timeout)
        answer = answers.validate_python(raw)
        if isinstance(answer, ErrorAck):
            raise CommandFailed(command, answer)
        return answer

    async def _join(self, command: str, payload: dict[str, Any], answers: TypeAdapter[J | ErrorAck]) -> J:
        """Join the payload's room, its position kept from the first event on: events of the
        room can come before the ack (and a recover's replayed events always do), so the room
        counts as joined from the moment the command is sent; the ack's own position only
        ever moves it forward."""
        room = str(payload["room"]).lower()  # the ack's normalised form (lowercase UUID)
        already_in = room in self._rooms
        self._rooms.add(room)
        try:
            ack = await self._call(command, payload, answers)
        except CommandFailed:
            if not already_in:
                self._forget(room)
            raise
        self._rooms.add(ack.room)
        if ack.position is not None:
            self._keep(ack.room, ack.position)
        return ack

    async def subscribe(self, room: str) -> RoomAck:
        """Join ``room`` and keep its position from now on."""
        return await self._join("subscribe", {"room": room}, _ROOM_ANSWER)

    async def unsubscribe(self, room: str) -> RoomAck:
        """Leave ``room`` and forget its position."""
        ack = await self._call("unsubscribe", {"room": room}, _ROOM_ANSWER)
        self._forget(ack.room)
        return ack

    async def recover(self, room: str, position: StreamPosition) -> RecoverAck:
        """Join ``room`` and get what was sent to it after ``position`` (the replayed events
        come before this returns); ``recovered`` false: refetch the room over REST."""
        payload = {"room": room, "position": position.model_dump(mode="json")}
        return await self._join("recover", payload, _RECOVER_ANSWER)

    async def ping(self) -> PongAck:
        """Check that the gateway answers on this connection."""
        return await self._call("ping", {}, _PONG)

    async def refresh_token(self, token: str) -> RefreshAck:
        """Extend the session with a newer token of the same subject; reconnections use it."""
        ack = await self._call("refresh_token", {"token": token}, _REFRESH_ANSWER)
        self._token = token
        for room in ack.left:
            self._forget(room)
        return ack

    async def report_status(self, report: AgentStatusReport) -> EventAck:
        """As an agent (a token with the ``agent`` role): send the agent's status, which the
        gateway publishes as ``agent.status_changed`` to ``agent:<sub>`` and ``global``."""
        return await self._call("agent.status", report.model_dump(mode="json"), _EVENT_ANSWER)


@asynccontextmanager
async def connect(
    url: str,
    token: str,
    *,
    positions: Mapping[str, StreamPosition] | None = None,
    on_not_recovered: Callable[[RecoverAck], None] | None = None,
    ack_timeout: float = 10.0,
    max_unread: int = MAX_UNREAD,
    socketio_path: str = "socket.io",
    transports: list[str] | None = None,
    **client_options: Any,
) -> AsyncIterator[RealtimeClient]:
    """Connect to the gateway at ``url`` (its base URL, such as ``http://gateway:8000``).

    ``positions``: from an earlier client's ``positions()``, to resume where it left off.
    ``on_not_recovered``: called for each resumed room whose missed events could not all be
    replayed (refetch it over REST). ``ack_timeout``: seconds to wait for the connection and for
    each command's ack. ``max_unread``: events held for ``events()`` before the oldest are
    dropped (counted in ``client.dropped``). ``client_options`` go to ``socketio.AsyncClient``
    (``reconnection_delay``, ``logger``...). Raises :class:`ConnectionRefused` when the
    gateway refuses the token.
    """
    if urlsplit(url).path.rstrip("/").endswith(NAMESPACE):
        raise ValueError(f"pass the gateway's base URL, without {NAMESPACE}: the client picks the namespace")
    client = RealtimeClient(
        token,
        positions=positions,
        on_not_recovered=on_not_recovered,
        ack_timeout=ack_timeout,
        max_unread=max_unread,
        **client_options,
    )
    try:
        await client._connect(url, socketio_path, transports)
        yield client
    finally:
        await client.close()

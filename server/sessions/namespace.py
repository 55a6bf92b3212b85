"""The ``/ws`` namespace: authenticate on connect, then serve the client commands.

Commands: ``subscribe``, ``unsubscribe``, ``recover``, ``ping``, ``refresh_token`` and, for
agents, ``agent.status``. A client that reconnects passes its last positions in
``auth.positions`` (or later, per room, with ``recover``) and gets what it missed first
(server/delivery/recovery.py). The live connections are kept by the registry (server/sessions/registry.py),
agents' ``agent.connected`` / ``agent.disconnected`` announced by presence
(server/sessions/presence.py).

The event path: python-socketio calls ``trigger_event``; ``connect`` and ``disconnect`` go to
``on_connect`` / ``on_disconnect`` (our AsyncServer drops client packets with those names),
and every other name is looked up in the command table built in ``__init__``, one entry per
CLIENT_COMMANDS name, never by method name. Every command handler takes ``*args`` and
validates them itself: python-socketio calls a handler with whatever arguments the client
sent, and a fixed signature would turn a client's extra or missing argument into a
server-side TypeError.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qs

import socketio
from pydantic import BaseModel, ValidationError

from swe_realtime.delivery.gate import Gate
from swe_realtime.delivery.history import Window
from swe_realtime.delivery.recovery import Plan, Recovery, Request
from swe_realtime.errors import (
    AuthFailed,
    ClientError,
    ConnectionLimit,
    ErrorCode,
    EventRejected,
    InvalidRequest,
    PermissionDenied,
    RateLimited,
    RedisUnavailable,
    RoomAccessDenied,
    RoomLimit,
    field_errors,
)
from swe_realtime.events import (
    CLIENT_COMMANDS,
    NAMESPACE,
    ConnectionErrorData,
    ConnectionErrorEvent,
    ConnectionEstablished,
    ConnectionEstablishedData,
    ErrorAck,
    EventAck,
    PongAck,
    RecoverAck,
    RecoverCommand,
    RefreshAck,
    RefreshTokenCommand,
    RoomAck,
    RoomCommand,
    StreamPosition,
)
from swe_realtime.events._types import from_wire
from swe_realtime.events.agent import AgentStatusChanged, AgentStatusChangedData, AgentStatusReport
from swe_realtime.events.rooms import GLOBAL, Room, parse_room
from swe_realtime.protocol.manager import encode
from swe_realtime.publish.broadcaster import Broadcaster
from swe_realtime.sessions.access import AccessPolicy
from swe_realtime.sessions.auth import Principal, Role, TokenVerifier
from swe_realtime.sessions.limits import SlidingWindow, TokenBucket, client_address
from swe_realtime.sessions.presence import Presence
from swe_realtime.sessions.registry import Connection, Registry
from swe_realtime.settings import Limits
from swe_realtime.telemetry import audit, metrics

MAX_EVENT_NAME_CHARS = 64
"""Unknown event names are quoted back in the error ack up to this length."""
MAX_ECHO_ROOM_CHARS = 128
"""A room is echoed in its error ack only up to this length."""

Ack = dict[str, Any]
INPUT_ERRORS = frozenset({ErrorCode.INVALID_REQUEST, ErrorCode.INVALID_ROOM, ErrorCode.INVALID_EVENT})
"""Error codes of a command payload that failed validation."""
M = TypeVar("M", bound=BaseModel)
C = TypeVar("C", bound=RoomCommand)


class Handler(Protocol):
    """A command handler: the sender's sid, then whatever arguments the client sent."""

    def __call__(self, sid: str, /, *args: object) -> Awaitable[Ack]: ...


class Gateway(socketio.AsyncNamespace):  # type: ignore[misc]
    """Handlers of the ``/ws`` namespace."""

    def __init__(
        self,
        verifier: TokenVerifier,
        policy: AccessPolicy,
        broadcaster: Broadcaster,
        recovery: Recovery,
        registry: Registry,
        presence: Presence,
        max_connections: int,
        limits: Limits,
    ) -> None:
        super().__init__(NAMESPACE)
        self._verifier = verifier
        self._policy = policy
        self._broadcaster = broadcaster
        self._recovery = recovery
        self._registry = registry
        self._presence = presence
        self._max_connections = max_connections
        self._limits = limits
        self._connect_attempts = SlidingWindow(limits.connects_per_ip_per_minute)
        self.commands: Mapping[str, Handler] = {
            "subscribe": self._subscribe,
            "unsubscribe": self._unsubscribe,
            "recover": self._recover,
            "ping": self._ping,
            "refresh_token": self._refresh_token,
            "agent.status": self._agent_status,
        }
        """The client commands, by event name: the one way a client's event reaches code."""
        if self.commands.keys() != CLIENT_COMMANDS.keys():
            raise RuntimeError(
                f"The command table must have one handler per CLIENT_COMMANDS entry: "
                f"missing {sorted(CLIENT_COMMANDS.keys() - self.commands.keys())}, "
                f"unknown {sorted(self.commands.keys() - CLIENT_COMMANDS.keys())}"
            )

    # -- lifecycle -------------------------------------------------------------------------

    async def on_connect(self, sid: str, environ: Mapping[str, Any], auth: object = None) -> None:
        address, remote = client_address(environ)
        try:
            if not self._connect_attempts.allow(address):
                raise RateLimited("Too many connection attempts from this address; wait a minute")
            if len(self._registry) >= self._max_connections:
                raise ConnectionLimit()
            principal = self._verifier.verify(_token(auth, environ))
            rate = self._limits.commands_per_second
            connection = Connection(principal, remote, TokenBucket(rate, 2 * rate))
            await self._registry.add(sid, connection)
        except ClientError as exc:
            raise _refused(exc, remote) from None
        positions = auth.get("positions") if isinstance(auth, dict) else None
        # Resuming: hold live events from before the first join until the replay is out.
        held = self._recovery.hold(sid) if positions is not None else None
        try:
            for room in (Room.user(principal.user_id), GLOBAL):
                await self._join(connection, sid, str(room))
        except ClientError as exc:  # the rooms every connection is in cannot be joined just now
            self._recovery.forget(sid)
            await self._registry.remove(sid)
            raise _refused(exc, remote) from None
        metrics.CONNECTIONS_OPENED.inc()
        self._expire_at_exp(sid, connection)
        audit.connected(
            user_id=principal.user_id,
            connection_id=sid,
            remote=remote,
            transport=self._transport(sid),
        )
        # The CONNECT packet is sent after this handler returns; the welcome must follow it.
        self.server.start_background_task(self._welcome, sid, principal, positions, held)
        await self._presence.opened(principal)

    def _transport(self, sid: str) -> str:
        """The connection's transport now, not the one its session opened with: a polling
        session may have upgraded while its CONNECT was handled (it then has no upgrade line
        of its own after this one)."""
        try:
            return str(self.server.transport(sid, namespace=self.namespace))
        except KeyError:  # the session closed meanwhile
            return "closed"

    async def _welcome(self, sid: str, principal: Principal, positions: object, held: Gate | None) -> None:
        """Send connection_established; when resuming, with each room's recovery answer, and
        followed by the replay (the welcome goes straight out: the gate holds live events).
        Its ``positions`` are those of the rooms joined at connect and not resumed (the user
        room, ``global``): a client can resume them next time, as it resumes subscribed ones."""
        answers: list[RecoverAck | ErrorAck] = []
        plan = None
        resumed: set[str] = set()
        if held is not None:
            requests, admitted, answers = await self._position_requests(sid, positions)
            plan, refused = await self._prepare(sid, requests, admitted, held=held)
            answers += [_recover_ack(request, window) for request, window in plan.windows]
            answers += [
                ErrorAck(room=room, error_code=error.code, message=error.message)
                for room, error in sorted(refused.items())
            ]
            resumed = {request.room for request in requests}
        defaults = [str(room) for room in (Room.user(principal.user_id), GLOBAL) if str(room) not in resumed]
        event = ConnectionEstablished(
            data=ConnectionEstablishedData(
                connection_id=sid, user_id=str(principal.user_id), recovery=answers
            ),
            positions=await self._recovery.positions(defaults),
        )
        send = self._recovery.sender(sid)
        await send(encode(self.server, event.event_name(), event.model_dump(mode="json"), NAMESPACE))
        if plan is not None:
            await self._recovery.finish(plan)

    async def _position_requests(
        self, sid: str, positions: object
    ) -> tuple[list[Request], dict[str, Principal], list[RecoverAck | ErrorAck]]:
        """Check ``auth.positions`` room by room: what to resume, the principal each room was
        admitted for, and the refusals."""
        limit = self._limits.rooms_per_connection
        if not isinstance(positions, dict) or len(positions) > limit:
            refusal = InvalidRequest(f"auth.positions must be an object of at most {limit} rooms")
            return [], {}, [ErrorAck(room=None, error_code=refusal.code, message=refusal.message)]
        requests: dict[str, Request] = {}
        admitted: dict[str, Principal] = {}
        refusals: list[RecoverAck | ErrorAck] = []
        for key, value in positions.items():
            named = key if isinstance(key, str) and len(key) <= MAX_ECHO_ROOM_CHARS else None
            try:
                room = parse_room(key)
                principal = await self._admit(sid, room, pending=len(requests))
                named = str(room)
                try:
                    after = from_wire(StreamPosition, value)
                except ValidationError:
                    raise InvalidRequest("A position must be an object {epoch, offset}") from None
                requests[named] = Request(named, after)
                admitted[named] = principal
            except ClientError as exc:
                refusals.append(ErrorAck(room=named, error_code=exc.code, message=exc.message))
        return list(requests.values()), admitted, refusals

    def _expire_at_exp(self, sid: str, connection: Connection) -> None:
        """(Re)arm the timer that ends the connection when its token expires."""
        if connection.expiry is not None:
            connection.expiry.cancel()
        principal = connection.principal
        delay = max(0.0, self._verifier.ends_at(principal) - time.time())
        connection.expiry = asyncio.get_running_loop().call_later(
            delay, lambda: self.server.start_background_task(self._expire, sid, principal)
        )

    async def _expire(self, sid: str, principal: Principal) -> None:
        connection = self._registry.get(sid)
        if connection is None or connection.principal is not principal:
            return  # gone already, or refreshed meanwhile
        audit.expired(user_id=connection.principal.user_id, connection_id=sid, remote=connection.remote)
        await self.close(sid, AuthFailed("Token has expired"), "token_expired")

    async def close(self, sid: str, why: ClientError, reason: str) -> bool:
        """Send the client a ``connection_error`` saying ``why``, then close its connection;
        False if this instance holds no connection ``sid``. ``reason`` labels the drop in
        the metrics. The client is told first so that it does not reconnect blindly."""
        if self._registry.get(sid) is None:
            return False
        metrics.DROPPED.labels(reason).inc()
        notice = ConnectionErrorEvent(
            data=ConnectionErrorData(error_code=why.code, error_message=why.message, connection_id=sid)
        )
        await self.emit(notice.event_name(), notice.model_dump(mode="json"), to=sid)
        await self.disconnect(sid)
        return True

    async def on_disconnect(self, sid: str, reason: object = None) -> None:
        connection = await self._registry.remove(sid)
        if connection is None:
            return
        if connection.expiry is not None:
            connection.expiry.cancel()
        metrics.disconnects(str(reason)).inc()
        self._recovery.forget(sid)
        audit.disconnected(
            user_id=connection.principal.user_id,
            connection_id=sid,
            remote=connection.remote,
            reason=str(reason),
        )
        await self._presence.closed(connection.principal, str(reason))

    # -- commands --------------------------------------------------------------------------

    async def trigger_event(self, event: str, *args: Any) -> Any:
        """Run ``on_connect`` / ``on_disconnect``, or the command table's handler of ``event``.

        Any other event gets an INVALID_REQUEST ack.
        """
        if event in ("connect", "disconnect"):
            return await super().trigger_event(event, *args)
        started = time.perf_counter()
        command = event if event in self.commands else "unknown"
        ack = await self._answer(event, *args)
        metrics.commands(command, ack.get("status", "")).inc()
        metrics.command_seconds(command).observe(time.perf_counter() - started)
        if ack.get("error_code") in INPUT_ERRORS:
            metrics.VALIDATION_FAILURES.labels("command").inc()
        elif ack.get("error_code") == ErrorCode.RATE_LIMITED:
            metrics.RATE_LIMITED.labels("command").inc()
        return ack

    async def _answer(self, event: str, *args: Any) -> Ack:
        connection = self._registry.get(args[0]) if args else None
        if connection is not None and not connection.bucket.take():
            return _error_ack(RateLimited(f"More than {self._limits.commands_per_second} commands a second"))
        handler = self.commands.get(event)
        if handler is not None:
            return await handler(*args)
        shown = event if len(event) <= MAX_EVENT_NAME_CHARS else event[:MAX_EVENT_NAME_CHARS] + "..."
        return _error_ack(InvalidRequest(f"Unknown event {shown!r}"))

    async def _subscribe(self, sid: str, *args: object) -> Ack:
        async def subscribe(_: RoomCommand, room: Room) -> RoomAck:
            window = await self._enter(sid, Request(str(room), None), await self._admit(sid, room))
            return RoomAck(room=str(room), position=window.position)

        return await _room_command(args, RoomCommand, "a string 'room'", subscribe)

    async def _unsubscribe(self, sid: str, *args: object) -> Ack:
        async def unsubscribe(_: RoomCommand, room: Room) -> RoomAck:
            await self._leave(sid, str(room))
            return RoomAck(room=str(room))

        return await _room_command(args, RoomCommand, "a string 'room'", unsubscribe)

    async def _recover(self, sid: str, *args: object) -> Ack:
        """Subscribe to a room and replay what came after the client's position."""

        async def recover(command: RecoverCommand, room: Room) -> RecoverAck:
            admitted = await self._admit(sid, room)
            request = Request(str(room), command.position)
            return _recover_ack(request, await self._enter(sid, request, admitted))

        shape = "a string 'room' and a 'position' {epoch, offset}"
        return await _room_command(args, RecoverCommand, shape, recover)

    async def _ping(self, sid: str, *args: object) -> Ack:
        return PongAck().model_dump(mode="json")

    async def _agent_status(self, sid: str, *args: object) -> Ack:
        """An agent reports its status; it is broadcast as ``agent.status_changed``."""
        try:
            connection = self._registry.get(sid)
            if connection is None or Role.AGENT not in connection.principal.roles:
                raise PermissionDenied("Only agents may report an agent status")
            if len(args) != 1:
                raise InvalidRequest("Expected one payload object: the agent's status")
            try:
                report = from_wire(AgentStatusReport, args[0])
                data = AgentStatusChangedData(agent_id=connection.principal.user_id, **dict(report))
            except ValidationError as exc:
                raise EventRejected(field_errors(exc)) from None
            receipt = await self._broadcaster.publish(AgentStatusChanged(data=data))
        except ClientError as exc:
            return _error_ack(exc)
        except RedisUnavailable:
            unavailable = ErrorCode.SERVICE_UNAVAILABLE
            return ErrorAck(
                room=None, error_code=unavailable, message=unavailable.default_message
            ).model_dump(mode="json")
        return EventAck(id=receipt.id).model_dump(mode="json")

    async def _refresh_token(self, sid: str, *args: object) -> Ack:
        """Swap in a newer token of the same subject; leave the rooms it no longer allows.

        The swap and the snapshot of the rooms to re-check are one step (no await between):
        a join still on its way re-checks against the new principal itself (``_join_admitted``).
        """
        try:
            connection = self._registry.get(sid)
            if connection is None:
                raise AuthFailed()
            principal = self._verifier.verify(_payload(args, RefreshTokenCommand, "a string 'token'").token)
            if principal.user_id != connection.principal.user_id:
                raise AuthFailed("The new token is for another subject")
            before, connection.principal = connection.principal, principal
            self._expire_at_exp(sid, connection)
            rooms = sorted(connection.rooms)
            # Presence first: once the swap is made, nothing may keep it from being counted.
            await self._presence.refreshed(before, principal)
            left = [
                name for name in rooms if await self._leave_if_forbidden(sid, connection, principal, name)
            ]
        except ClientError as exc:
            return _error_ack(exc)
        expires_at = datetime.fromtimestamp(principal.expires_at, UTC)
        return RefreshAck(expires_at=expires_at, left=left).model_dump(mode="json")

    async def _leave_if_forbidden(
        self, sid: str, connection: Connection, principal: Principal, name: str
    ) -> bool:
        """Leave ``name`` if ``principal``, refreshed in, may not be there; whether it left.

        A newer refresh that lands while the policy answers re-checks every room itself: this
        one's answer is then stale and not acted on."""
        if name not in connection.rooms or await self._policy.may_subscribe(principal, parse_room(name)):
            return False
        if connection.principal is not principal or name not in connection.rooms:
            return False
        await self._leave(sid, name)
        return True

    async def _admit(self, sid: str, room: Room, pending: int = 0) -> Principal:
        """The principal for which this connection may join ``room`` (``pending`` more joins
        on the way); the join checks again if a refresh replaces it meanwhile."""
        connection = self._registry.get(sid)
        if connection is None:
            raise RoomAccessDenied()
        principal = connection.principal
        if not await self._policy.may_subscribe(principal, room):
            raise RoomAccessDenied()
        limit = self._limits.rooms_per_connection
        if str(room) not in connection.rooms and len(connection.rooms) + pending >= limit:
            raise RoomLimit(f"A connection may be in {limit} rooms at most")
        return principal

    async def _enter(self, sid: str, request: Request, admitted: Principal) -> Window:
        """Join a room admitted for ``admitted`` at a position (server/delivery/recovery.py);
        RoomAccessDenied if a refreshed token forbids it by the time of the join, or why else
        the room could not be joined."""
        plan, refused = await self._prepare(sid, [request], {request.room: admitted})
        await self._recovery.finish(plan)
        if refused:
            raise refused[request.room]
        return plan.windows[0][1]

    async def _prepare(
        self,
        sid: str,
        requests: list[Request],
        admitted: Mapping[str, Principal],
        *,
        held: Gate | None = None,
    ) -> tuple[Plan, dict[str, ClientError]]:
        """``Recovery.prepare`` with joins that re-check access: the plan of the rooms joined
        (a refused room's history is neither read out nor replayed), and why each refused
        room was (denied by a refreshed token, its subscription unavailable)."""
        refused: dict[str, ClientError] = {}

        async def join(name: str) -> None:
            try:
                if not await self._join_admitted(sid, name, admitted[name]):
                    refused[name] = RoomAccessDenied()
            except ClientError as exc:
                refused[name] = exc

        plan = await self._recovery.prepare(sid, requests, join, held=held)
        windows = tuple(pair for pair in plan.windows if pair[0].room not in refused)
        return dataclasses.replace(plan, windows=windows), refused

    async def _join_admitted(self, sid: str, name: str, principal: Principal) -> bool:
        """Join ``name``, admitted for ``principal``, if the connection may still be there.

        The admission awaited the policy (a database, perhaps); a ``refresh_token`` may have
        swapped the principal meanwhile, and its re-check of the connection's rooms ran
        before this room was one of them. So when the principal is no longer the one admitted,
        the policy is asked again for the current one, until the principal stays put across
        an answer; then the room is added with no await between that comparison and the add.
        Either the refresh swapped first and this sees its principal, or the room was added
        first and the refresh re-checks it.

        Chosen over serialising refreshes with subscribes (a lock per connection): nothing
        waits on a slow policy but the command that asked it, concurrent subscribes stay
        concurrent, and without a refresh the cost is one identity comparison.
        """
        while (connection := self._registry.get(sid)) is not None:
            if connection.principal is principal:
                await self._join(connection, sid, name)
                return True
            principal = connection.principal
            if not await self._policy.may_subscribe(principal, parse_room(name)):
                return False
        return False  # closed meanwhile

    async def _join(self, connection: Connection, sid: str, name: str) -> None:
        was_in = name in connection.rooms
        connection.rooms.add(name)
        try:
            await self.enter_room(sid, name)
        except ClientError:  # the room's events cannot reach this instance: not joined
            if not was_in:
                connection.rooms.discard(name)
            raise

    async def _leave(self, sid: str, name: str) -> None:
        connection = self._registry.get(sid)
        if connection is not None:
            connection.rooms.discard(name)
        self._recovery.forget(sid, name)
        await self.leave_room(sid, name)


async def _room_command(
    args: tuple[object, ...], model: type[C], shape: str, act: Callable[[C, Room], Awaitable[BaseModel]]
) -> Ack:
    """Validate a payload naming a room, run the action, and answer with the ack to send."""
    named: str | None = None
    try:
        command = _payload(args, model, shape)
        # Echo the client's room in an error ack only while it is short (no megabyte echoes).
        named = command.room if len(command.room) <= MAX_ECHO_ROOM_CHARS else None
        room = parse_room(command.room)
        named = str(room)
        return (await act(command, room)).model_dump(mode="json")
    except ClientError as exc:
        return _error_ack(exc, named)


def _payload(args: tuple[object, ...], model: type[M], shape: str) -> M:
    """The one payload object a command takes, validated; InvalidRequest otherwise."""
    if len(args) != 1:
        raise InvalidRequest(f"Expected one payload object with {shape}")
    try:
        return model.model_validate(args[0])
    except ValidationError:
        raise InvalidRequest(f"Payload must be an object with {shape}") from None


def _recover_ack(request: Request, window: Window) -> RecoverAck:
    recovered = window.failure is None and request.after is not None
    metrics.RECOVERIES.labels("recovered" if recovered else str(window.failure)).inc()
    return RecoverAck(
        room=request.room,
        recovered=recovered,
        replayed=len(window.entries) if recovered else 0,
        reason=window.failure,
        position=window.position,
    )


def _refused(error: ClientError, remote: str) -> socketio.exceptions.ConnectionRefusedError:
    """The refusal of a connection, audited and counted: its ``connection_error`` says why."""
    audit.refused(code=error.code, reason=error.message, remote=remote)
    metrics.CONNECTIONS_REFUSED.labels(error.code).inc()
    refusal = ConnectionErrorEvent(
        data=ConnectionErrorData(error_code=error.code, error_message=error.message)
    )
    return socketio.exceptions.ConnectionRefusedError(error.message, refusal.model_dump(mode="json"))


def _error_ack(error: ClientError, room: str | None = None) -> Ack:
    return ErrorAck(room=room, error_code=error.code, message=error.message).model_dump(mode="json")


def _token(auth: object, environ: Mapping[str, Any]) -> object:
    """The token from ``auth.token``, else from the ``token`` query parameter, else None."""
    if isinstance(auth, dict) and auth.get("token") not in (None, ""):
        return auth["token"]
    values = parse_qs(environ.get("QUERY_STRING", "")).get("token")
    return values[0] if values else None

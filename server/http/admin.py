"""The admin API: list connections, close one, look into a room, the instances' state.

Admin tokens only, each admin at most ADMIN_REQUESTS_PER_SECOND requests a second on an
instance (bursts of twice as many), so N instances behind a balancer allow N times that: every
request makes every instance look through its connections. Every route asks every instance through the
admin bus (server/cluster/admin_bus.py) and merges their parts (server/ops/operator.py); an answer some
instance did not give in time is marked ``partial`` rather than withheld.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote
from uuid import UUID

from sanic import Blueprint, Request
from sanic.response import JSONResponse, json

from swe_realtime.cluster.admin_bus import AdminBus
from swe_realtime.delivery.history import History, Window
from swe_realtime.errors import ClientError, ErrorCode, InvalidRequest
from swe_realtime.events.commands import RecoveryFailure
from swe_realtime.events.rooms import CANONICAL_UUID, parse_room
from swe_realtime.http._auth import Authenticator, error_response, rate_limited
from swe_realtime.http.models import (
    ConnectionPageBody,
    DisconnectedBody,
    InstancesBody,
    RoomBody,
)
from swe_realtime.ops.operator import DEFAULT_PAGE, MAX_PAGE, ConnectionQuery, merged
from swe_realtime.sessions.auth import Principal, Role
from swe_realtime.sessions.limits import Buckets
from swe_realtime.telemetry import metrics

MAX_EVENTS = 100
DEFAULT_EVENTS = 20
ROOM_MEMBERS_SHOWN = 100
MAX_ID_CHARS = 64
"""Longer than any Socket.IO id: a longer one is not looked for."""
_COUNT = re.compile(r"[0-9]{1,9}")
"""A count as the API document writes it: ``int()`` alone also takes spaces, signs,
underscores and any script's digits (``events=-0``, an Arabic-Indic five)."""
_NUMBER = re.compile(r"-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,30})?([eE][+-]?[0-9]{1,3})?")
"""A number as JSON (and so OpenAPI) writes it: ``float()`` alone also takes spaces,
underscores, other scripts' digits, ``inf`` and ``nan``."""


def admin_blueprint(
    auth: Authenticator, bus: AdminBus, history: History, per_second: int, step: float
) -> Blueprint:
    bp = Blueprint("admin", url_prefix="/api/v1")
    buckets = Buckets(per_second, 2 * per_second)

    def admitted(request: Request, *parameters: str) -> tuple[Principal, dict[str, str]] | JSONResponse:
        """The admin calling and the query's parameters, or the answer: 401, 403, 429, or 422
        for a query parameter the route does not know (a typo must not read as "no filter")."""
        allowed = auth.authorize(request, (Role.ADMIN,))
        if not isinstance(allowed, Principal):
            return allowed
        if not buckets.take(str(allowed.user_id)):
            metrics.RATE_LIMITED.labels("admin").inc()
            return rate_limited(f"More than {per_second} admin requests a second", 1)
        args = _args(request)
        unknown = sorted(set(args) - set(parameters))
        if unknown:
            return error_response(422, ErrorCode.INVALID_REQUEST, f"Unknown parameter {unknown[0][:40]!r}")
        return allowed, args

    @bp.get("/connections")
    async def connections(request: Request) -> JSONResponse:
        caller = admitted(request, "user", "room", "limit", "after")
        if isinstance(caller, JSONResponse):
            return caller
        _, args = caller
        try:
            query = ConnectionQuery(
                user=_user(args.get("user")),
                room=_room(args.get("room")),
                after=args.get("after", "")[:MAX_ID_CHARS],
                limit=_bounded(args.get("limit"), "limit", DEFAULT_PAGE, 1, MAX_PAGE),
            )
        except ClientError as exc:
            return error_response(422, exc.code, exc.message)
        gathered = await bus.ask("connections", query.as_args())
        page = merged(gathered.answers, query.limit)
        return _json(
            ConnectionPageBody,
            connections=page.connections,
            total=page.total,
            next=page.next,
            partial=gathered.partial,
        )

    @bp.delete("/connections/<sid:str>")
    async def disconnect(request: Request, sid: str) -> JSONResponse:
        caller = admitted(request)
        if isinstance(caller, JSONResponse):
            return caller
        admin, _ = caller
        sid = unquote(sid)
        if len(sid) <= MAX_ID_CHARS:
            gathered = await bus.ask("disconnect", {"id": sid, "by": str(admin.user_id)})
            for answer in gathered.answers:
                if answer["found"]:
                    return _json(DisconnectedBody, id=sid, instance=answer["instance"])
            if gathered.partial:
                return error_response(
                    503,
                    ErrorCode.SERVICE_UNAVAILABLE,
                    "Not found on the instances that answered; some did not: retry later",
                )
        return error_response(404, ErrorCode.NOT_FOUND, ErrorCode.NOT_FOUND.default_message)

    @bp.get("/rooms/<name:str>")
    async def room(request: Request, name: str) -> JSONResponse:
        caller = admitted(request, "events")
        if isinstance(caller, JSONResponse):
            return caller
        _, args = caller
        try:
            room = str(parse_room(unquote(name)))  # Sanic leaves a path parameter quoted
            count = _bounded(args.get("events"), "events", DEFAULT_EVENTS, 0, MAX_EVENTS)
        except ClientError as exc:
            return error_response(422, exc.code, exc.message)
        query = ConnectionQuery(room=room, limit=ROOM_MEMBERS_SHOWN)
        gathered, window = await asyncio.gather(
            bus.ask("connections", query.as_args()), history.recent(room, count)
        )
        shown = merged(gathered.answers, ROOM_MEMBERS_SHOWN)
        return _json(
            RoomBody,
            room=room,
            position=window.position,
            history=_history_state(window),
            members=shown.total,
            instances={answer["instance"]: answer["total"] for answer in gathered.answers if answer["total"]},
            connections=shown.connections,
            events=[entry.payload for entry in window.entries],
            partial=gathered.partial,
        )

    @bp.get("/instances")
    async def instances(request: Request) -> JSONResponse:
        caller = admitted(request, "since")
        if isinstance(caller, JSONResponse):
            return caller
        _, args = caller
        raw = args.get("since", "0")
        since = float(raw) if _NUMBER.fullmatch(raw) else math.inf
        if not math.isfinite(since):  # 1e999 is a JSON number too
            return error_response(422, ErrorCode.INVALID_REQUEST, "since must be a number (Unix seconds)")
        gathered = await bus.ask("instance", {"since": since})
        return _json(
            InstancesBody,
            instances=sorted(gathered.answers, key=lambda answer: str(answer["id"])),
            step=step,
            partial=gathered.partial,
        )

    return bp


def _history_state(window: Window) -> str:
    if window.failure is RecoveryFailure.HISTORY_OFF:
        return "off"
    if window.failure is not None:
        return "unavailable"
    return "ok" if window.position is not None else "none"


def _json(model: Callable[..., Any], **fields: Any) -> JSONResponse:
    """The body validated by its model, so that what is sent is what OpenAPI says."""
    return json(model(**fields).model_dump(mode="json"), headers={"Cache-Control": "no-store"})


def _args(request: Request) -> dict[str, str]:
    """The query's parameters, blank ones too (``room=`` is a bad room, not no room); the
    first value of a repeated one."""
    return {name: values[0] for name, values in request.get_args(keep_blank_values=True).items()}


def _user(raw: str | None) -> UUID | None:
    if raw is None:
        return None
    if not CANONICAL_UUID.fullmatch(raw):
        raise InvalidRequest("user must be a UUID (8-4-4-4-12 hex digits)")
    return UUID(raw)


def _room(raw: str | None) -> str | None:
    return None if raw is None else str(parse_room(raw))


def _bounded(raw: str | None, name: str, default: int, low: int, high: int) -> int:
    if raw is None:
        return default
    value = int(raw) if _COUNT.fullmatch(raw) else low - 1
    if not low <= value <= high:
        raise InvalidRequest(f"{name} must be an integer from {low} to {high}")
    return value

"""Liveness and readiness probes for orchestrators.

``/health`` answers as long as the process serves HTTP. ``/ready`` answers 200 once the
application's start-up has completed; it is the place where checks of the gateway's
dependencies belong (the Redis connection, when one is configured).
"""

from __future__ import annotations

from typing import Any

from sanic import Blueprint, Request, Sanic
from sanic.response import JSONResponse, json

from server.http.models import StatusBody


def health_blueprint() -> Blueprint:
    bp = Blueprint("health")

    @bp.get("/health")
    async def health(request: Request) -> JSONResponse:
        return json(StatusBody(status="ok").model_dump(mode="json"))

    @bp.get("/ready")
    async def ready(request: Request) -> JSONResponse:
        if getattr(request.app.ctx, "ready", False):
            return json(StatusBody(status="ready").model_dump(mode="json"))
        return json(StatusBody(status="not ready").model_dump(mode="json"), status=503)

    @bp.after_server_start
    async def mark_ready(app: Sanic[Any, Any]) -> None:
        app.ctx.ready = True

    return bp

"""Liveness and readiness probes for orchestrators.

``/health`` answers as long as the process serves HTTP. ``/ready`` answers 200 while the
gateway should be sent clients: started, not draining for shutdown, and, with Redis,
able to reach it (without it, events would not cross to the other instances).
"""

from __future__ import annotations

from collections.abc import Callable

from sanic import Blueprint, Request
from sanic.response import JSONResponse, json

from swe_realtime.http.models import StatusBody


def health_blueprint(ready: Callable[[], bool]) -> Blueprint:
    bp = Blueprint("health")

    @bp.get("/health")
    async def health(request: Request) -> JSONResponse:
        return json(StatusBody(status="ok").model_dump(mode="json"))

    @bp.get("/ready")
    async def readiness(request: Request) -> JSONResponse:
        if ready():
            return json(StatusBody(status="ready").model_dump(mode="json"))
        return json(StatusBody(status="not ready").model_dump(mode="json"), status=503)

    return bp

"""``GET /api/v1/websocket/stats``: live connections and room sizes, over every instance.

Room names reveal user and project ids, so only admin and service tokens may read them.
"""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import JSONResponse, json

from swe_realtime.cluster.stats import Stats
from swe_realtime.http._auth import Authenticator
from swe_realtime.http.models import StatsBody
from swe_realtime.sessions.auth import Role


def stats_blueprint(auth: Authenticator, stats: Stats) -> Blueprint:
    bp = Blueprint("stats", url_prefix="/api/v1/websocket")

    @bp.get("/stats")
    async def websocket_stats(request: Request) -> JSONResponse:
        allowed = auth.authorize(request, (Role.ADMIN, Role.SERVICE))
        if isinstance(allowed, JSONResponse):
            return allowed
        return json(StatsBody.model_validate(await stats.snapshot()).model_dump(mode="json"))

    return bp

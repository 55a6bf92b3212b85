"""``GET /metrics``: this instance's Prometheus metrics (server/telemetry/metrics.py).

Room and event counts say what the platform's users do, so the endpoint is not public: it
takes ``Authorization: Bearer <METRICS_TOKEN>`` (a static secret, what Prometheus'
``authorization.credentials_file`` sends) or, without that setting, an admin token.
"""

from __future__ import annotations

import hmac

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, JSONResponse, raw

from swe_realtime.http._auth import Authenticator
from swe_realtime.sessions.auth import Role
from swe_realtime.telemetry import metrics

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def metrics_blueprint(auth: Authenticator, token: str | None) -> Blueprint:
    bp = Blueprint("metrics")

    @bp.get("/metrics")
    async def scrape(request: Request) -> HTTPResponse:
        scheme, _, given = (request.headers.get("authorization") or "").partition(" ")
        static = token is not None and scheme.lower() == "bearer"
        if not (static and hmac.compare_digest(given.strip().encode(), (token or "").encode())):
            allowed = auth.authorize(request, (Role.ADMIN,))
            if isinstance(allowed, JSONResponse):
                return allowed
        return raw(metrics.exposition(), content_type=CONTENT_TYPE)

    return bp

"""Assembly: one validated Settings in, a runnable ASGI application out.

The Socket.IO server runs in python-socketio's ``asgi`` mode and wraps the Sanic app, which
serves every path outside ``/socket.io/``. The mode is set explicitly: left to
auto-detection python-socketio would pick its ``sanic`` driver, which is no longer
maintained and, under a mass disconnect, logged hundreds of "Task was destroyed but it is
pending" errors in our probe where the ASGI driver under uvicorn logged none.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import socketio
from sanic import Sanic

from server.auth import TokenVerifier
from server.broadcaster import Broadcaster, install_broadcaster
from server.gateway import Gateway
from server.http import docs_blueprint, health_blueprint, publish_blueprint, stats_blueprint
from server.http.body_limit import BodyLimit
from server.rooms import AccessPolicy, ClaimsAccessPolicy
from server.settings import Settings
from server.sio import AsyncServer, EngineLogger

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})


@dataclass(frozen=True)
class GatewayApp:
    """The parts of a running gateway: ``asgi`` is what the HTTP server serves."""

    asgi: Any
    sanic: Sanic[Any, Any]
    sio: AsyncServer
    gateway: Gateway
    broadcaster: Broadcaster


def create_app(settings: Settings, *, policy: AccessPolicy | None = None) -> GatewayApp:
    """Build the gateway. ``policy`` replaces the claims-based room access policy."""
    verifier = TokenVerifier(settings.jwt)
    sio = AsyncServer(
        async_mode="asgi",
        cors_allowed_origins=_cors_policy(settings),
        max_http_buffer_size=settings.max_payload_bytes,
        logger=logging.getLogger("socketio.server"),
        engineio_logger=EngineLogger(logging.getLogger("engineio.server")),
    )
    broadcaster = Broadcaster(sio)
    install_broadcaster(broadcaster)
    gateway = Gateway(verifier, policy or ClaimsAccessPolicy(), broadcaster, settings.max_connections)
    sio.register_namespace(gateway)

    sanic = Sanic("swe_realtime", configure_logging=False)
    sanic.blueprint(health_blueprint())
    sanic.blueprint(stats_blueprint(verifier, gateway))
    sanic.blueprint(publish_blueprint(verifier, broadcaster))
    sanic.blueprint(docs_blueprint())
    asgi = socketio.ASGIApp(sio, other_asgi_app=BodyLimit(sanic, settings.max_payload_bytes))
    return GatewayApp(asgi=asgi, sanic=sanic, sio=sio, gateway=gateway, broadcaster=broadcaster)


def _cors_policy(settings: Settings) -> list[str] | str | Callable[[str | None], bool] | None:
    """Origins allowed to open a connection from a browser.

    ``CORS_ORIGINS`` when set; otherwise same-origin only, except in ``--dev`` where any
    page served from this machine (any port on localhost) may connect.
    """
    if settings.cors_origins:
        return list(settings.cors_origins)
    if settings.dev:
        return _is_local_origin
    return None


def _is_local_origin(origin: str | None) -> bool:
    if origin is None:
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.hostname is not None and parts.hostname in LOCAL_HOSTS

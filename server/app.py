"""Assembly: one validated Settings in, a runnable ASGI application out.

The Socket.IO server runs in python-socketio's ``asgi`` mode and wraps the Sanic app, which
serves every path outside ``/socket.io/``. The mode is set explicitly: left to
auto-detection python-socketio would pick its ``sanic`` driver, which is no longer
maintained and, under a mass disconnect, logged hundreds of "Task was destroyed but it is
pending" errors in our probe where the ASGI driver under uvicorn logged none.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass, field
from typing import Any

import socketio
from sanic import Sanic

from swe_realtime import __version__
from swe_realtime.backends import Backend, backend_for
from swe_realtime.broadcaster import install_broadcaster
from swe_realtime.delivery.history import CountedSink
from swe_realtime.delivery.recovery import Recovery
from swe_realtime.events import NAMESPACE
from swe_realtime.http._auth import Authenticator
from swe_realtime.http.admin import admin_blueprint
from swe_realtime.http.body_limit import BodyLimit
from swe_realtime.http.docs import docs_blueprint
from swe_realtime.http.health import health_blueprint
from swe_realtime.http.inspector import inspector_blueprint
from swe_realtime.http.metrics import metrics_blueprint
from swe_realtime.http.publish import publish_blueprint
from swe_realtime.http.sanic_errors import install_error_bodies
from swe_realtime.http.stats import stats_blueprint
from swe_realtime.ops.operator import Operator
from swe_realtime.ops.timeline import Timeline
from swe_realtime.protocol.engineio import EngineLogger
from swe_realtime.protocol.socketio import AsyncServer
from swe_realtime.publish.broadcaster import Broadcaster
from swe_realtime.sessions.access import AccessPolicy, ClaimsAccessPolicy
from swe_realtime.sessions.auth import TokenVerifier
from swe_realtime.sessions.limits import FileDescriptors, SessionAdmission
from swe_realtime.sessions.namespace import Gateway
from swe_realtime.sessions.origins import Origins
from swe_realtime.settings import Settings
from swe_realtime.telemetry import metrics

_APP_NUMBERS = itertools.count(1)
"""Sanic keeps a process-wide registry of app names: each gateway gets its own."""


@dataclass
class GatewayApp:
    """The parts of a running gateway: ``asgi`` is what the HTTP server serves."""

    asgi: Any
    sanic: Sanic[Any, Any]
    sio: AsyncServer
    gateway: Gateway
    broadcaster: Broadcaster
    backend: Backend
    """In memory or on Redis (server/backends.py)."""
    started: bool = False
    draining: bool = False
    _started: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    async def wait_started(self) -> None:
        """Return once the server serving ``asgi`` has started the gateway."""
        await self._started.wait()

    def ready(self) -> bool:
        """Serving, not draining, and (with Redis) subscribed and caught up: every event
        accepted for this instance's rooms reaches it."""
        return self.started and not self.draining and self.backend.ready()

    async def drain(self) -> None:
        """Stop looking ready and close every client session, so clients reconnect elsewhere."""
        self.draining = True
        await self.sio.drain()


def create_app(settings: Settings, *, policy: AccessPolicy | None = None) -> GatewayApp:
    """Build the gateway. ``policy`` replaces the claims-based room access policy.

    Several gateways may be built in one process (tests do); they share the process's
    counters (server/telemetry/metrics.py), and ``get_broadcaster()`` returns the last one's.
    """
    verifier = TokenVerifier(settings.jwt)
    backend = backend_for(settings)
    manager = backend.manager
    sio = AsyncServer(
        async_mode="asgi",
        client_manager=manager,
        # Worker processes share one listening socket: a polling session's requests could
        # land on different workers, so with several workers only WebSocket is offered.
        transports=["websocket"] if settings.workers > 1 else None,
        cors_allowed_origins=Origins(settings.cors_origins, local=settings.dev),
        max_http_buffer_size=settings.max_payload_bytes,
        max_queued_packets=settings.limits.queued_packets,
        connect_timeout=settings.limits.connect_timeout,
        max_queued_bytes=settings.limits.queued_bytes,
        ping_interval=settings.timings.ping_interval,
        ping_timeout=settings.timings.ping_timeout,
        logger=logging.getLogger("socketio.server"),
        engineio_logger=EngineLogger(logging.getLogger("engineio.server")),
    )
    history = backend.history(sio)
    broadcaster = Broadcaster(CountedSink(history))
    install_broadcaster(broadcaster)
    # With Redis, per-user limits and agent presence count every instance's connections.
    registry, presence = backend.counts(broadcaster)
    gateway = Gateway(
        verifier,
        policy or ClaimsAccessPolicy(),
        broadcaster,
        Recovery(sio, manager, history, NAMESPACE),
        registry,
        presence,
        settings.max_connections,
        settings.limits,
    )
    sio.register_namespace(gateway)
    stats = backend.stats(registry.snapshot)
    timeline = Timeline(lambda: len(registry), settings.timings.timeline_step)
    operator = Operator(settings.instance_id, sio, gateway, registry, timeline, backend.health)
    bus = backend.bus(operator.answer)

    limits = settings.limits
    sio.eio.admission = SessionAdmission(
        limits.connects_per_ip_per_minute, settings.max_connections, FileDescriptors()
    )
    sanic = Sanic(f"swe_realtime_{next(_APP_NUMBERS)}", configure_logging=False)
    # The body bound covers the Engine.IO polling requests too: python-engineio would read a
    # POST announcing too much no further, answer nothing and hang (see http/body_limit.py).
    asgi = BodyLimit(socketio.ASGIApp(sio, other_asgi_app=sanic), settings.max_payload_bytes)
    app = GatewayApp(
        asgi=asgi,
        sanic=sanic,
        sio=sio,
        gateway=gateway,
        broadcaster=broadcaster,
        backend=backend,
    )
    auth = Authenticator(verifier, limits.auth_failures_per_minute)
    sanic.blueprint(health_blueprint(app.ready))
    sanic.blueprint(stats_blueprint(auth, stats))
    sanic.blueprint(metrics_blueprint(auth, settings.metrics_token))
    sanic.blueprint(inspector_blueprint(settings.dev))
    health = backend.health
    metrics.install(
        settings.instance_id,
        __version__,
        connections=lambda: len(registry),
        rooms=lambda: manager.named_rooms(NAMESPACE),
        redis_up=(lambda: float(health.reachable)) if health else None,
    )
    sanic.blueprint(publish_blueprint(auth, broadcaster))
    sanic.blueprint(admin_blueprint(auth, bus, history, limits.admin_requests_per_second, timeline.step))
    sanic.blueprint(docs_blueprint(settings.contracts_dir))
    install_error_bodies(sanic)

    @sanic.after_server_start
    async def started(_: Sanic[Any, Any]) -> None:
        app.started = True
        app._started.set()
        # The bus listens before the heartbeat says this instance is alive (asked, it must
        # answer), and goes after the heartbeat is withdrawn.
        await bus.start()
        await stats.start()
        timeline.start()
        await backend.start()

    @sanic.before_server_stop
    async def stopping(_: Sanic[Any, Any]) -> None:
        await timeline.stop()
        await stats.stop()
        await bus.stop()
        await backend.stop()

    return app

"""Running the gateway: uvicorn, one process or several workers, with a draining shutdown.

On SIGTERM uvicorn stops accepting connections, then waits for open ones to finish. The
gateway's connections never finish on their own (they are meant to stay open), so before
that wait the gateway drains: every Engine.IO session is closed with a CLOSE packet, which
socket.io-client answers by reconnecting, through the load balancer, to another instance.

With several workers the parent binds the socket, starts the workers (spawned, each
building its own app from the environment), forwards SIGTERM/SIGINT to them and waits. A
worker that dies is not replaced: the supervisor of the host (systemd, Kubernetes) restarts
the whole gateway, which keeps one failure story for one- and many-worker deployments.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import multiprocessing
import os
import signal
import socket
import sys
from collections.abc import Mapping
from typing import Any

import uvicorn

from swe_realtime.app import GatewayApp, create_app
from swe_realtime.cluster.identity import InstanceIdTaken, claim
from swe_realtime.protocol.uvicorn import SlimWebSocketProtocol
from swe_realtime.settings import Settings
from swe_realtime.telemetry.logs import configure_logging

GRACEFUL_SHUTDOWN_SECONDS = 5
GC_YOUNG_THRESHOLD = 10_000
"""Net allocations of container objects between two collections of the youngest generation
(CPython's default: 700). See ``tune_gc``."""
GC_OLDEST_THRESHOLD = 100
"""Collections of the middle generation between two looks at a full one (CPython's
default: 10). See ``tune_gc``."""
_log = logging.getLogger("swe_realtime.cluster")


class GatewayServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: GatewayApp) -> None:
        super().__init__(config)
        self.gateway = app
        self._listening = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._listening.set()

    async def wait_listening(self) -> None:
        """Return once the server accepts connections. The gateway's start (``GatewayApp.
        wait_started``) comes earlier: uvicorn runs the application's startup before it
        binds its socket, and a client connecting in between is refused."""
        await self._listening.wait()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await self.gateway.drain()
        await super().shutdown(sockets)


def gateway_server(app: GatewayApp, settings: Settings, **overrides: Any) -> GatewayServer:
    """The uvicorn server ``serve`` runs, for a gateway built in your own program: the slim
    WebSocket protocol, the frame bound, no per-message deflate, the draining shutdown.
    ``overrides`` are further ``uvicorn.Config`` arguments (``log_level``, ...)."""
    return GatewayServer(_uvicorn_config(app, settings, **overrides), app)


def _uvicorn_config(app: GatewayApp, settings: Settings, **overrides: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app.asgi,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        ws=SlimWebSocketProtocol,
        # Engine.IO enforces the payload limit per message; this stops bigger frames earlier.
        ws_max_size=settings.max_payload_bytes + 1024,
        # Engine.IO runs its own heartbeat; a second one at the WebSocket layer is noise.
        ws_ping_interval=None,
        # Compression ran once per message per recipient: a fifth of a fan-out profile. The
        # Node server also ships with it off; events are small JSON.
        ws_per_message_deflate=False,
        ws_ping_timeout=None,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        ssl_certfile=settings.tls.cert if settings.tls else None,
        ssl_keyfile=settings.tls.key if settings.tls else None,
        **overrides,
    )


def serve(settings: Settings) -> int:
    """Serve until SIGTERM or SIGINT, in this process or in ``settings.workers`` workers; the
    exit status: 1 if this process, or any worker, refused to start or failed."""
    if settings.workers == 1:
        return _run_worker(settings)
    # Workers read their settings from the environment: pass on what the CLI decided.
    os.environ.update({"WORKERS": str(settings.workers), "HOST": settings.host, "PORT": str(settings.port)})
    if settings.jwt.secret is not None:
        os.environ["JWT_SECRET"] = settings.jwt.secret  # a --dev secret must be the same in all
    if settings.tls is not None:
        os.environ.update({"SSL_CERT": settings.tls.cert, "SSL_KEY": settings.tls.key})
    listening = uvicorn.Config("unused", host=settings.host, port=settings.port).bind_socket()
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_worker_from_env, args=([listening], index))
        for index in range(1, settings.workers + 1)
    ]
    for worker in workers:
        worker.start()

    def forward(signum: int, _: object) -> None:
        for worker in workers:
            if worker.pid is not None and worker.is_alive():
                os.kill(worker.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for worker in workers:
        worker.join()
    return 0 if all(worker.exitcode in (0, -signal.SIGTERM, -signal.SIGINT) for worker in workers) else 1


def _worker_from_env(sockets: list[socket.socket], index: int) -> None:
    settings = worker_settings(Settings.from_env(os.environ), os.environ, index)
    configure_logging(fmt=settings.log_format)
    sys.exit(_run_worker(settings, sockets))


def worker_settings(settings: Settings, environ: Mapping[str, str], index: int) -> Settings:
    """Worker ``index``'s (from 1) settings: a configured INSTANCE_ID gets the index appended,
    ``gw`` becoming ``gw-1``, ``gw-2``. Every worker is an instance of its own in the cluster
    (its heartbeat, its admin answers, its share of the per-user counts), and one id for two
    live processes is refused (server/cluster/identity.py). The default id, host-pid,
    already differs per worker."""
    if not environ.get("INSTANCE_ID"):
        return settings
    return dataclasses.replace(settings, instance_id=f"{settings.instance_id}-{index}")


def tune_gc() -> None:
    """Take what start-up made out of garbage collection, and collect a hundred times less often.

    CPython walks every live container object in a full collection, run when those that
    survived since the last one pass a quarter of the rest, and checks for one every 70,000
    net allocations by default. A gateway keeps many (each connection's, HISTORY_SIZE events
    per room) and adds more with every connect and every event: full collections took 40% of
    the server's CPU in the publish benchmark, 20% in the connect one. What exists before
    serving (modules, the app, the models) lives as long as the process: frozen, it is
    never walked again. A young collection every 10,000 net allocations instead of 700, and a
    look at a full one every hundred middle collections instead of ten, make the full ones
    come after 10,000,000: a connect storm grows the heap by more than a quarter again and
    again, and 10,000 connects then disconnects cost three full collections, 0.7-0.8 s of CPU
    (70 us per connection), where now they cost none (gc callbacks, bench connect runs).
    Cyclic garbage lives a little longer: little of it gets that old (5,800 objects over those
    10,000 connections, against 290,000 collected young), and each young collection pauses a
    few milliseconds.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, gc.get_threshold()[1], GC_OLDEST_THRESHOLD)


def _run_worker(settings: Settings, sockets: list[socket.socket] | None = None) -> int:
    """Claim the instance id (with Redis), then serve; 1 if the id is another live process's."""
    if settings.redis is not None:
        try:
            asyncio.run(claim(settings.redis, settings.instance_id, heartbeat=settings.timings.heartbeat))
        except InstanceIdTaken as taken:
            _log.error("%s", taken)
            return 1
    app = create_app(settings)
    tune_gc()
    gateway_server(app, settings).run(sockets=sockets)
    return 0

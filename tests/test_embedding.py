"""Gateways built inside another program: create_app() more than once, served by gateway_server().

Two gateways in one process each deliver their own events, and the server a program gets
from gateway_server() is the hardened one `swe-realtime serve` runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
from uuid import uuid4

from swe_realtime.app import create_app
from swe_realtime.events.workflow import WorkflowStatus
from swe_realtime.protocol.uvicorn import SlimWebSocketProtocol
from swe_realtime.serve import GatewayServer, gateway_server
from swe_realtime.settings import Settings
from tests.support import ADMIN, SECRET, Client, free_port, make_token


def settings() -> Settings:
    return dataclasses.replace(Settings.from_env({"JWT_SECRET": SECRET}), port=free_port())


async def test_two_gateways_in_one_process() -> None:
    configs = [settings(), settings()]
    apps = [create_app(config) for config in configs]
    servers = [
        gateway_server(app, config, log_level="warning") for app, config in zip(apps, configs, strict=True)
    ]
    serving = [asyncio.create_task(server.serve()) for server in servers]
    clients: list[Client] = []
    try:
        await asyncio.wait_for(asyncio.gather(*(app.wait_started() for app in apps)), 10)
        project = uuid4()
        for config in configs:
            client = await Client().connect(f"http://127.0.0.1:{config.port}", make_token(projects=[project]))
            clients.append(client)
            await client.next("connection_established")
            assert (await client.call("subscribe", {"room": f"project:{project}"}))["status"] == "success"
        for progress, app in enumerate(apps):
            await app.broadcaster.broadcast_workflow_progress(
                workflow_id=uuid4(), project_id=project, status=WorkflowStatus.RUNNING, progress=progress
            )
        # Each client's first event is its own gateway's: the other's never reached it.
        for progress, client in enumerate(clients):
            assert (await client.next("workflow.progress"))["data"]["progress"] == progress
        # The process's connection gauge adds both gateways up.
        metrics_page = await clients[0].sio.eio.http.get(
            f"http://127.0.0.1:{configs[0].port}/metrics", headers={"Authorization": f"Bearer {ADMIN}"}
        )
        assert "swe_realtime_connections 2.0" in await metrics_page.text()
    finally:
        for client in clients:
            await client.close()
        for server in servers:
            server.should_exit = True
        await asyncio.gather(*serving)


def test_embedded_server_is_the_hardened_one() -> None:
    config = settings()
    server = gateway_server(create_app(config), config)
    assert isinstance(server, GatewayServer)  # drains on shutdown
    assert server.config.ws is SlimWebSocketProtocol
    assert server.config.ws_per_message_deflate is False
    assert server.config.ws_max_size == config.max_payload_bytes + 1024

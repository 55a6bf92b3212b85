"""Run the gateway inside your own Python service and broadcast from it.

Usage: JWT_SECRET=... python embedded_gateway.py PORT PROJECT_ID
Serves the gateway on PORT, then sends a project.updated event to project:PROJECT_ID every
second, five times, and exits.
"""

import asyncio
import os
import sys
from dataclasses import replace
from uuid import UUID

from swe_realtime.app import create_app
from swe_realtime.broadcaster import get_broadcaster
from swe_realtime.serve import gateway_server
from swe_realtime.settings import Settings


async def send_project_updates(project_id: UUID) -> None:
    broadcaster = get_broadcaster()
    for round_number in range(5):
        receipt = await broadcaster.broadcast_project_updated(
            project_id=project_id,
            project_name="AI Agent Framework",
            repository_url="https://github.com/user/ai-agent-framework",
            status="active",
            updated_by=UUID("660e8400-e29b-41d4-a716-446655440001"),
            changes={"status": "updated", "fields": ["description"]},
        )
        print(f"round {round_number}: sent {receipt.id} to {', '.join(receipt.rooms)}", flush=True)
        await asyncio.sleep(1)


async def main(port: int, project_id: UUID) -> None:
    settings = replace(Settings.from_env(os.environ), port=port)
    app = create_app(settings)
    # The same hardened server as `swe-realtime serve` (slim WebSocket protocol, frame bound,
    # draining shutdown), on this event loop.
    server = gateway_server(app, settings, log_level="warning")
    serving = asyncio.create_task(server.serve())
    await server.wait_listening()  # the gateway started and uvicorn accepts connections
    await send_project_updates(project_id)
    server.should_exit = True
    await serving


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), UUID(sys.argv[2])))

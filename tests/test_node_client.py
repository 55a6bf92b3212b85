"""The API document's JavaScript flows, run by node with the real socket.io-client."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from tests.support import ServerProcess, make_token, node_script, subscribed

pytestmark = pytest.mark.node

NODE_DIR = Path(__file__).with_name("node")


async def run_flow(server: ServerProcess, token: str, project: str, transport: str) -> dict[str, Any]:
    node = shutil.which("node")
    assert node, "node is required (the test recipe installs tests/node with npm)"
    assert (NODE_DIR / "node_modules" / "socket.io-client").is_dir(), "run: npm ci --prefix tests/node"
    result: dict[str, Any] = await node_script(
        "spec_flow.mjs", server.url, token, project, transport, cwd=NODE_DIR
    )
    return result


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_spec_javascript_flows(server: ServerProcess, transport: str) -> None:
    user, project = uuid4(), str(uuid4())
    seen = await run_flow(server, make_token(user, projects=[project]), project, transport)

    assert seen["established"]["type"] == "connection.established"
    assert seen["established"]["data"]["user_id"] == str(user)
    assert seen["established"]["data"]["protocol_version"] == "1.0"
    assert seen["connection_id_matches"] is True
    assert subscribed(seen["subscribe"], f"project:{project}")
    assert seen["ping"] == {"status": "pong"}
    assert seen["denied"] == {
        "status": "error",
        "room": "project:00000000-0000-4000-8000-000000000000",
        "error_code": "ROOM_ACCESS_DENIED",
        "message": "Access denied to room",
    }
    assert seen["invalid"]["error_code"] == "INVALID_ROOM"
    assert seen["unsubscribe"] == {"status": "success", "room": f"project:{project}", "position": None}
    assert seen["disconnect_reason"] == "io client disconnect"
    assert seen["query_established"]["data"]["user_id"] == str(user)

    bad = seen["refused_bad_token"]
    assert bad["message"] == "Invalid or expired token"
    assert bad["data"]["type"] == "connection.error"
    assert bad["data"]["data"] == {
        "error_code": "AUTH_FAILED",
        "error_message": "Invalid or expired token",
        "connection_id": None,
    }
    missing = seen["refused_no_token"]
    assert missing["message"] == "No authentication provided"
    assert missing["data"]["data"]["error_code"] == "AUTH_MISSING"

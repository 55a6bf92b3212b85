"""The runnable examples of docs/emitting-events.md run, and their events arrive."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path
from uuid import uuid4

import pytest

from swe_realtime.events.rooms import Room, RoomKind
from tests.support import SECRET, SERVICE, Client, ServerProcess, free_port, listener, make_token

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"


async def test_publish_http_example(server: ServerProcess, clients: Callable[[], Client]) -> None:
    project = uuid4()
    watcher = await listener(server, clients, Room(RoomKind.PROJECT, project))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / "publish_http.py"),
        str(project),
        env={**os.environ, "GATEWAY_URL": server.url, "SERVICE_TOKEN": SERVICE},
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0
    assert out.startswith(b"202 ")
    assert (await watcher.next("workflow.progress"))["data"]["progress"] == 45


@pytest.mark.slow
async def test_embedded_gateway_example(clients: Callable[[], Client]) -> None:
    port, project = free_port(), uuid4()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / "embedded_gateway.py"),
        str(port),
        str(project),
        env={**os.environ, "JWT_SECRET": SECRET},
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        first = await asyncio.wait_for(process.stdout.readline(), 30)  # the gateway is up once it sends
        assert first.startswith(b"round 0: sent ")
        client = await clients().connect(f"http://127.0.0.1:{port}", make_token(projects=[project]))
        await client.call("subscribe", {"room": f"project:{project}"})
        event = await client.next("project.updated", timeout=5)
        assert event["data"]["project_id"] == str(project)
        await client.close()
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_security_table_names_tests_that_exist() -> None:
    """Every `file.py::test_name` in docs/security.md is a test function in that file."""
    import re

    text = (EXAMPLES.parent / "security.md").read_text()
    references = re.findall(r"`(test_\w+\.py)::(test_\w+)`", text)
    assert len(references) >= 15
    for filename, name in references:
        source = (Path(__file__).with_name(filename)).read_text()
        assert f"def {name}(" in source, f"{filename}::{name}"

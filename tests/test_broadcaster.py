"""The Python broadcaster, in the gateway's own process, as a backend module would use it."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from uuid import UUID, uuid4

import pytest
import pytest_asyncio
import uvicorn

from swe_realtime.app import create_app
from swe_realtime.broadcaster import get_broadcaster
from swe_realtime.errors import EventRejected
from swe_realtime.events.connection import ConnectionEstablished, ConnectionEstablishedData
from swe_realtime.events.workflow import WorkflowProgress, WorkflowProgressData, WorkflowStatus
from swe_realtime.settings import Settings
from tests.support import SECRET, Client, eventually, free_port, make_token

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def gateway_url() -> AsyncIterator[str]:
    """create_app() served by uvicorn inside this test process, on a real socket."""
    settings = dataclasses.replace(Settings.from_env({"JWT_SECRET": SECRET}), port=free_port())
    app = create_app(settings)
    config = uvicorn.Config(
        app.asgi, host="127.0.0.1", port=settings.port, log_config=None, lifespan="on", ws="websockets-sansio"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started, message="uvicorn did not start")  # it has no event for it
    yield f"http://127.0.0.1:{settings.port}"
    server.should_exit = True
    await task


async def member_of(url: str, project: UUID) -> Client:
    client = await Client().connect(url, make_token(projects=[project]))
    await client.next("connection_established")
    assert (await client.call("subscribe", {"room": f"project:{project}"}))["status"] == "success"
    return client


async def test_spec_python_example(gateway_url: str) -> None:
    project, editor = uuid4(), uuid4()
    client = await member_of(gateway_url, project)
    try:
        broadcaster = get_broadcaster()
        receipt = await broadcaster.broadcast_project_updated(
            project_id=project,
            project_name="AI Agent Framework",
            repository_url="https://github.com/user/ai-agent-framework",
            status="active",
            updated_by=editor,
            changes={"status": "updated"},
        )
        event = await client.next("project.updated")
    finally:
        await client.close()
    assert receipt.rooms == (f"project:{project}", f"user:{editor}")
    assert event["id"] == str(receipt.id)
    assert event["source"] == "project_service"
    assert event["data"]["changes"] == {"status": "updated", "fields": []}


async def test_invalid_call_names_each_field_and_sends_nothing(gateway_url: str) -> None:
    project = uuid4()
    client = await member_of(gateway_url, project)
    try:
        with pytest.raises(EventRejected) as raised:
            await get_broadcaster().broadcast_workflow_progress(
                workflow_id="not-a-uuid", project_id=project, status="paused", progress=120
            )
        await get_broadcaster().broadcast_workflow_progress(
            workflow_id=uuid4(), project_id=project, status="running", progress=1
        )
        first = await client.next("workflow.progress")
    finally:
        await client.close()
    assert {".".join(map(str, e.loc)) for e in raised.value.errors} == {
        "data.workflow_id",
        "data.status",
        "data.progress",
    }
    assert first["data"]["progress"] == 1  # the invalid event never went out


async def test_publish_takes_a_built_event(gateway_url: str) -> None:
    data = WorkflowProgressData(workflow_id=uuid4(), status=WorkflowStatus.PENDING, progress=0)
    receipt = await get_broadcaster().publish(WorkflowProgress(data=data, source="scheduler"))
    assert receipt.rooms == ("global",)
    assert receipt.type == "workflow.progress"


async def test_connection_events_are_not_publishable(gateway_url: str) -> None:
    welcome = ConnectionEstablished(data=ConnectionEstablishedData(connection_id="x", user_id=str(uuid4())))
    with pytest.raises(EventRejected):
        await get_broadcaster().publish(welcome)

"""Every integer the gateway takes in or sends fits a JSON client's number (issue 15, item 9).

JavaScript's ``JSON.parse`` reads a number as an IEEE double: above 2**53-1
(``Number.MAX_SAFE_INTEGER``) integers lose their last digits, and a 401-digit one becomes
``Infinity``. The models bound every integer to +-(2**53-1), so the published contracts say
it too and the gateway refuses what a client could not read back.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from swe_realtime.events._types import MAX_SAFE_INTEGER
from swe_realtime.events.rooms import Room, RoomKind
from tests.support import SERVICE, Client, ServerProcess, api, example, listener, make_token, progress_event

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = Path(__file__).with_name("node")
EVENTS = "/api/v1/events"


def integer_schemas(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema of type integer in a JSON Schema tree, with where it is."""
    if isinstance(node, dict):
        kind = node.get("type")
        if kind == "integer" or (isinstance(kind, list) and "integer" in kind):
            yield path, node
        for key, value in node.items():
            yield from integer_schemas(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from integer_schemas(value, f"{path}/{index}")


@pytest.mark.parametrize("document", ["asyncapi.json", "openapi.json"])
def test_every_integer_in_the_contracts_is_bounded(document: str) -> None:
    schemas = list(integer_schemas(json.loads((ROOT / "contracts" / document).read_text())))
    assert schemas, "the walk found no integer at all"
    unbounded = [
        path
        for path, schema in schemas
        if not (
            -MAX_SAFE_INTEGER
            <= schema.get("minimum", -(2**63))
            <= schema.get("maximum", 2**63)
            <= MAX_SAFE_INTEGER
        )
    ]
    assert unbounded == []


def with_total_steps(value: object) -> dict[str, Any]:
    body = progress_event(None)
    body["data"]["total_steps"] = value
    return body


@pytest.mark.parametrize(
    "value",
    [10**400, 2**53, MAX_SAFE_INTEGER + 1, 1e300],
    ids=["401 digits", "2**53", "MAX_SAFE_INTEGER+1", "float 1e300"],
)
async def test_publish_refuses_an_integer_a_client_cannot_hold(server: ServerProcess, value: object) -> None:
    status, body = await api(server, "POST", EVENTS, SERVICE, with_total_steps(value))

    assert status == 422, body
    assert body["error_code"] == "INVALID_EVENT"
    [error] = body["errors"]
    assert error["loc"] == ["data", "total_steps"]
    assert str(MAX_SAFE_INTEGER) in error["message"]


async def test_batch_names_the_oversized_integer(server: ServerProcess) -> None:
    batch = [with_total_steps(1), with_total_steps(10**400)]
    status, body = await api(server, "POST", f"{EVENTS}/batch", SERVICE, batch)

    assert status == 422, body
    assert [error["loc"] for error in body["errors"]] == [[1, "data", "total_steps"]]


async def test_the_largest_safe_integer_arrives_intact(
    server: ServerProcess, clients: Callable[[], Client]
) -> None:
    project = uuid4()
    client = await listener(server, clients, Room(RoomKind.PROJECT, project))
    body = progress_event(str(project))
    body["data"].update(total_steps=MAX_SAFE_INTEGER, estimated_time_remaining=MAX_SAFE_INTEGER)

    status, receipt = await api(server, "POST", EVENTS, SERVICE, body)

    assert status == 202, receipt
    event = await client.next("workflow.progress")
    assert event["data"]["total_steps"] == MAX_SAFE_INTEGER
    assert event["data"]["estimated_time_remaining"] == MAX_SAFE_INTEGER


async def test_commands_refuse_an_integer_a_client_cannot_hold(
    server: ServerProcess, clients: Callable[[], Client]
) -> None:
    """Over Socket.IO, python-engineio's decoder already closes the session on integers of
    more than 100 digits; what fits in 100 digits is the models' to refuse."""
    project = str(uuid4())
    agent = await clients().connect(server.url, make_token(projects=[project], roles=["agent"]))
    await agent.next("connection_established")
    report = {"agent_name": "a", "status": "online", "availability": 2**53}
    position = {"epoch": "e", "offset": 2**53}

    status = await agent.call("agent.status", report)
    recover = await agent.call("recover", {"room": f"project:{project}", "position": position})

    assert (status["status"], status["error_code"]) == ("error", "INVALID_EVENT")
    assert (recover["status"], recover["error_code"]) == ("error", "INVALID_REQUEST")


NODE_LISTENER = """
import { io } from "socket.io-client";
const [url, token, room] = process.argv.slice(1);
const socket = io(`${url}/ws`, { auth: { token }, transports: ["websocket"] });
socket.on("workflow.progress", (event) => {
  const steps = event.data.total_steps;
  console.log(JSON.stringify({ text: String(steps), safe: Number.isSafeInteger(steps) }));
  socket.close();
  process.exit(0);
});
socket.on("connection_established", async () => {
  const ack = await socket.emitWithAck("subscribe", { room });
  console.log(JSON.stringify({ subscribed: ack.status }));
});
setTimeout(() => process.exit(3), 20000);
"""


@pytest.mark.node
async def test_node_client_reads_the_largest_safe_integer_exactly(server: ServerProcess) -> None:
    node = shutil.which("node")
    assert node, "node is required (the test recipe installs tests/node with npm)"
    assert (NODE_DIR / "node_modules" / "socket.io-client").is_dir(), "run: npm ci --prefix tests/node"
    project = str(uuid4())
    room = f"project:{project}"
    process = await asyncio.create_subprocess_exec(
        *(node, "--input-type=module", "-e", NODE_LISTENER, server.url, make_token(projects=[project]), room),
        cwd=NODE_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), 20)
        assert json.loads(line) == {"subscribed": "success"}
        body = progress_event(project)
        body["data"]["total_steps"] = MAX_SAFE_INTEGER
        assert (await api(server, "POST", EVENTS, SERVICE, body))[0] == 202
        stdout, stderr = await asyncio.wait_for(process.communicate(), 20)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()
    assert json.loads(stdout) == {"text": str(MAX_SAFE_INTEGER), "safe": True}


async def test_a_float_field_refuses_a_number_past_the_double_range(server: ServerProcess) -> None:
    """Floats need no bound of their own: a double holds what JSON clients hold, and what
    overflows one is refused as not finite rather than sent on as Infinity."""
    body = example("workflow.completed")
    body["data"]["duration_seconds"] = 10**400

    status, answer = await api(server, "POST", EVENTS, SERVICE, body)

    assert status == 422, answer
    assert [error["loc"] for error in answer["errors"]] == [["data", "duration_seconds"]]

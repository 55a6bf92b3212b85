"""POST /api/v1/events and /batch: who may publish, and how bad events are refused.

Request/response checks (status codes, error bodies) call the routes in this process
(``in_process``, sanic-testing); what needs the wire stays against the real server: delivery
to clients, the body limit of the ASGI stack (413), chunked bodies, fuzzing the live server.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swe_realtime.errors import EventRejected
from swe_realtime.events.catalogue import CATALOGUE
from swe_realtime.events.envelope import Envelope
from swe_realtime.events.rooms import GLOBAL, Room, RoomKind
from swe_realtime.http.models import BatchReceiptBody, ReceiptBody
from swe_realtime.http.publish import EVENT_BATCH, ONE_EVENT, parse_batch
from swe_realtime.publish.broadcaster import parse_event, read_events
from tests.support import (
    SERVICE,
    Client,
    InProcessAPI,
    ServerProcess,
    api,
    drained,
    example,
    listener,
    make_token,
    publish,
    publish_marker,
)

EVENTS = "/api/v1/events"
BATCH = "/api/v1/events/batch"


@pytest.mark.parametrize(("token", "code"), [(None, "AUTH_MISSING"), ("garbage", "AUTH_FAILED")])
async def test_publish_needs_a_valid_token(in_process: InProcessAPI, token: str | None, code: str) -> None:
    status, body = await in_process("POST", EVENTS, token, example("pr.created"))
    assert status == 401
    assert body["error_code"] == code


@pytest.mark.parametrize("roles", [[], ["admin"], ["agent"]])
async def test_publish_is_for_services_only(in_process: InProcessAPI, roles: list[str]) -> None:
    status, body = await in_process("POST", EVENTS, make_token(roles=roles), example("pr.created"))
    assert status == 403
    assert body["error_code"] == "PERMISSION_DENIED"


def rejected_fields(body: dict[str, Any]) -> dict[str, str]:
    assert body["error_code"] == "INVALID_EVENT"
    return {".".join(map(str, error["loc"])): error["message"] for error in body["errors"]}


async def test_invalid_event_names_every_bad_field(in_process: InProcessAPI) -> None:
    event = example("issue.updated")
    event["data"].update(priority="urgent", status="done", assigned_to="bob", title="")
    del event["data"]["updated_at"]
    event["data"]["colour"] = "red"

    status, body = await in_process("POST", EVENTS, SERVICE, event)

    assert status == 422
    fields = rejected_fields(body)
    assert set(fields) == {
        "data.priority",
        "data.status",
        "data.assigned_to",
        "data.title",
        "data.updated_at",
        "data.colour",
    }
    assert "'low', 'medium', 'high' or 'critical'" in fields["data.priority"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"type": "project.renamed"}, "type"),
        ({"type": None}, "type"),
        ({"id": "5d1b1e3c-2b2a-4f0e-9a53-0a4f9e0c8f00"}, "id"),
        ({"timestamp": "2024-11-08T10:30:00Z"}, "timestamp"),
        ({"source": ""}, "source"),
        ({"data": None}, "data"),
        ({"extra": 1}, "extra"),
    ],
)
async def test_envelope_errors(in_process: InProcessAPI, change: dict[str, Any], field: str) -> None:
    event = example("pr.created") | change
    status, body = await in_process("POST", EVENTS, SERVICE, event)
    assert status == 422
    assert field in rejected_fields(body)


@pytest.mark.parametrize("body", [[], "pr.created", 42, None])
async def test_body_must_be_an_event_object(in_process: InProcessAPI, body: Any) -> None:
    status, answer = await in_process("POST", EVENTS, SERVICE, body)
    assert status == 422
    assert answer["error_code"] == "INVALID_EVENT"


@pytest.mark.parametrize("path", [EVENTS, BATCH])
async def test_malformed_json_is_a_client_error(in_process: InProcessAPI, path: str) -> None:
    """Sanic parses the JSON before the route sees it: its 400 has the API's error body too."""
    status, body = await in_process("POST", path, SERVICE, raw=b'{"type": "pr.created", ')
    assert status == 400
    assert body["error_code"] == "INVALID_REQUEST"
    assert set(body) == {"error_code", "message"}


async def test_body_over_the_payload_limit_is_413(server: ServerProcess) -> None:
    """On the wire: the limit is the ASGI middleware's, in front of the Sanic app."""
    event = example("workflow.failed")
    event["data"]["error"] = "x" * 1_100_000
    status, _ = await api(server, "POST", EVENTS, SERVICE, raw=json.dumps(event).encode())
    assert status == 413


async def test_batch_is_sent_whole(server: ServerProcess, clients: Callable[[], Client]) -> None:
    events = [example("workflow.progress") for _ in range(3)]
    project = events[0]["data"]["project_id"]
    for event in events:
        event["data"]["project_id"] = project
    watcher = await listener(server, clients, project_room(project))

    status, body = await api(server, "POST", BATCH, SERVICE, events)

    assert status == 202
    assert [r["type"] for r in body["receipts"]] == ["workflow.progress"] * 3
    got = [await watcher.next("workflow.progress") for _ in events]
    assert [g["id"] for g in got] == [r["id"] for r in body["receipts"]]


async def test_batch_with_one_bad_event_sends_nothing(
    server: ServerProcess, clients: Callable[[], Client]
) -> None:
    good, bad = example("workflow.progress"), example("workflow.progress")
    bad["data"]["progress"] = 101
    bad["data"]["project_id"] = good["data"]["project_id"]
    watcher = await listener(server, clients, project_room(good["data"]["project_id"]))

    status, body = await api(server, "POST", BATCH, SERVICE, [good, bad, {"type": "nope"}])

    assert status == 422
    assert set(rejected_fields(body)) == {"1.data.progress", "2.type"}
    marker = await publish_marker(server, "workflow.progress")
    assert await drained(watcher, marker, "workflow.progress") == 0


@pytest.mark.parametrize("size", [0, 101])
async def test_batch_size_bounds(in_process: InProcessAPI, size: int) -> None:
    status, body = await in_process("POST", BATCH, SERVICE, [example("pr.created") for _ in range(size)])
    assert status == 422
    assert body["error_code"] == "INVALID_EVENT"


async def test_receipts_are_as_documented(in_process: InProcessAPI) -> None:
    """The receipts are written without their models; they must still be what the models
    (and so the OpenAPI document) say, to the byte."""
    event = example("issue.created")  # two rooms: the project's and the assignee's
    status, body = await in_process("POST", EVENTS, SERVICE, event)
    assert status == 202
    assert ReceiptBody.model_validate(body).model_dump(mode="json") == body
    assert body["rooms"] == [f"project:{event['data']['project_id']}", f"user:{event['data']['assigned_to']}"]
    status, body = await in_process("POST", BATCH, SERVICE, [event, example("pr.created")])
    assert status == 202
    assert BatchReceiptBody.model_validate(body).model_dump(mode="json") == body


async def test_batch_of_the_maximum_size(in_process: InProcessAPI) -> None:
    status, body = await in_process("POST", BATCH, SERVICE, [example("pr.created") for _ in range(100)])
    assert status == 202
    assert len(body["receipts"]) == 100


def project_room(project: str) -> Room:
    return Room(RoomKind.PROJECT, UUID(project))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=20), children, max_size=5)
    ),
    max_leaves=20,
)
NEAR_EVENTS = st.builds(
    lambda event_type, data, source: {"type": event_type, "source": source, "data": data},
    st.sampled_from(sorted(CATALOGUE)),
    st.dictionaries(
        st.sampled_from(["project_id", "status", "progress", "title", "agent_id", "workflow_id"]), JSON
    ),
    st.text(max_size=120),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=JSON | NEAR_EVENTS)
def test_any_json_gets_202_or_4xx(server: ServerProcess, body: Any) -> None:
    status, _ = asyncio.run(api(server, "POST", EVENTS, SERVICE, body))
    assert status == 202 or 400 <= status < 500, (status, body)


# --- validation from the bytes (read_events) and by parsing (parse_event) agree --------------------

ANY_NUMBER = st.floats() | st.integers() | st.sampled_from([10**30, -(2**63), 2**64])
"""Numbers JSON clients cannot all read: NaN, infinities, integers past 2**53."""
JSON_OR_NOT = st.recursive(
    st.none() | st.booleans() | ANY_NUMBER | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def nearly_valid_events(draw: st.DrawFn) -> dict[str, Any]:
    """A catalogue example, as it is or with one envelope or data field set to any value."""
    event = example(draw(st.sampled_from(sorted(CATALOGUE))))
    where = draw(st.sampled_from(["nowhere", "data", "envelope"]))
    if where == "data":
        field = draw(st.sampled_from([*sorted(event["data"]), "metadata", "result", "unknown"]))
        event["data"][field] = draw(JSON_OR_NOT)
    elif where == "envelope":
        field = draw(st.sampled_from(["id", "timestamp", "positions", "source", "type", "data", "unknown"]))
        event[field] = draw(JSON_OR_NOT)
    return event


def sent_as(events: list[Envelope[Any]] | None) -> list[dict[str, Any]] | None:
    """What the events would be sent as, but for the id and time the gateway gives each."""
    if events is None:
        return None
    return [event.model_dump(mode="json", exclude={"id", "timestamp"}) for event in events]


def judged_by_parsing(raw: bytes, batch: bool) -> list[dict[str, Any]] | None:
    try:
        body = json.loads(raw)
        return sent_as(parse_batch(body) if batch else [parse_event(body)])
    except (EventRejected, ValueError):
        return None


@settings(max_examples=400, deadline=None)
@given(body=nearly_valid_events() | JSON_OR_NOT)
def test_an_event_read_from_its_bytes_is_the_event_parsing_gives(body: Any) -> None:
    """``read_events`` takes exactly the events ``parse_event`` takes, as the same events."""
    raw = json.dumps(body).encode()
    assert sent_as(read_events(ONE_EVENT, raw)) == judged_by_parsing(raw, batch=False)


@settings(max_examples=200, deadline=None)
@given(body=st.lists(nearly_valid_events(), min_size=0, max_size=3) | JSON_OR_NOT)
def test_a_batch_read_from_its_bytes_is_the_batch_parsing_gives(body: Any) -> None:
    raw = json.dumps(body).encode()
    assert sent_as(read_events(EVENT_BATCH, raw)) == judged_by_parsing(raw, batch=True)


def suggestion_with(metadata: str) -> bytes:
    """An ai.suggestion body whose ``data.metadata`` is the JSON text ``metadata``, verbatim."""
    event = example("ai.suggestion")
    event["data"]["metadata"] = "METADATA"
    return json.dumps(event).replace('"METADATA"', metadata).encode()


def pr_created_with(envelope: str) -> bytes:
    """A pr.created body with ``envelope`` in place of its ``"type": ...`` pair."""
    return json.dumps(example("pr.created")).replace('"type": "pr.created"', envelope).encode()


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(suggestion_with('{"x": 1e400}'), id="overflowing number"),
        pytest.param(suggestion_with('{"x": NaN}'), id="NaN"),
        pytest.param(suggestion_with('{"x": [-Infinity]}'), id="-Infinity"),
        pytest.param(suggestion_with('{"x": "\\ud800"}'), id="lone surrogate"),
        pytest.param(suggestion_with('{"x": 1, "x": NaN}'), id="NaN in a repeated key"),
        pytest.param(pr_created_with('"type": "pr.created", "type": "nope"'), id="unknown type repeated"),
        pytest.param(pr_created_with('"type": "nope", "type": "pr.created"'), id="known type repeated"),
        pytest.param(
            pr_created_with('"type": "pr.created", "id": "5d1b1e3c-2b2a-4f0e-9a53-0a4f9e0c8f00"'), id="an id"
        ),
        pytest.param(pr_created_with('"type": "pr.created"') + b" x", id="trailing bytes"),
        pytest.param(b"", id="empty"),
    ],
)
def test_bytes_json_reads_its_own_way_are_judged_as_parsed(raw: bytes) -> None:
    """Non-finite numbers, lone surrogates, repeated keys, trailing bytes: never accepted from
    the bytes unless parsing accepts the same event."""
    assert sent_as(read_events(ONE_EVENT, raw)) in (None, judged_by_parsing(raw, batch=False))


async def test_publish_still_works_after_the_fuzzing(
    server: ServerProcess, clients: Callable[[], Client]
) -> None:
    body = example("workflow.progress")
    body["data"]["project_id"] = None
    watcher = await listener(server, clients, GLOBAL)
    receipt = await publish(server, body)
    assert (await watcher.next("workflow.progress"))["id"] == receipt["id"]


async def test_chunked_body_over_the_limit_is_413(server: ServerProcess) -> None:

    async def chunks() -> Any:
        for _ in range(12):
            yield b" " * 100_000  # whitespace: valid JSON padding, 1.2 MB in all

    headers = {"Authorization": f"Bearer {SERVICE}", "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(server.url + EVENTS, data=chunks(), headers=headers) as response,
    ):
        assert "Content-Length" not in response.request_info.headers
        assert response.status == 413


@pytest.mark.parametrize(
    ("value", "accepted"),
    [(45, True), (45.0, True), (45.5, False), (True, False), ("45", False), (None, False)],
    ids=repr,
)
async def test_json_types_are_taken_literally(in_process: InProcessAPI, value: Any, accepted: bool) -> None:
    """What the published schema says is what is accepted: no true-as-1, no "45"-as-45."""
    event = example("workflow.progress")
    event["data"]["progress"] = value
    status, _ = await in_process("POST", EVENTS, SERVICE, event)
    assert status == (202 if accepted else 422)


@pytest.mark.parametrize("field", ["progress", "metadata"])
async def test_nan_and_infinity_never_reach_clients(in_process: InProcessAPI, field: str) -> None:
    if field == "progress":
        event = example("workflow.progress")
        body = json.dumps(event).replace('"progress": 45', '"progress": NaN')
    else:
        event = example("ai.suggestion")
        body = json.dumps(event).replace('"complexity_score": 12', '"complexity_score": Infinity')
    assert "NaN" in body or "Infinity" in body
    status, _ = await in_process("POST", EVENTS, SERVICE, raw=body.encode())
    assert status in (400, 422)


@pytest.mark.parametrize("path", [EVENTS, BATCH])
def test_openapi_says_what_202_and_503_promise(path: str) -> None:
    """The committed document (kept current by test_codegen's drift check) tells publishers
    that 202 is accepted, not received, and that 503 is to be retried. The 503 itself, with
    Redis down, is tests/test_cluster.py::test_redis_outage_and_recovery and
    tests/test_scale_out.py::test_redis_restart_under_steady_publishing_loses_nothing_accepted."""
    document = json.loads((Path(__file__).resolve().parent.parent / "contracts" / "openapi.json").read_text())
    responses = document["paths"][path]["post"]["responses"]
    accepted, unavailable = responses["202"]["description"], responses["503"]["description"]

    assert "Accepted" in accepted
    assert "published it to all instances" in accepted
    assert "does not mean that any client received it" in accepted
    assert unavailable.startswith("SERVICE_UNAVAILABLE")
    assert "neither stored nor sent" in unavailable
    assert "Retry" in unavailable
    assert responses["503"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")

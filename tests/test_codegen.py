"""Generated contracts: current with the models, deterministic; drift and breaking-change gates."""

from __future__ import annotations

import copy
import html
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from codegen import CodegenError, render
from codegen.__main__ import main as codegen_main
from codegen.breaking import compare
from codegen.jsonschema import build_schemas

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS = ROOT / "contracts"


def run_codegen(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m codegen`` in a process of its own."""
    return subprocess.run([sys.executable, "-m", "codegen", *args], cwd=ROOT, capture_output=True, text=True)


def codegen_in_process(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``codegen``'s ``main`` in this process: (exit status, stdout, stderr). What the command
    decides costs it milliseconds, where a process pays two seconds of imports;
    ``run_codegen`` shows once that the module runs as a command."""
    status = codegen_main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def test_committed_contracts_are_current(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = codegen_in_process(capsys, "--check")
    assert status == 0, out + err


def test_check_prints_a_diff_and_fails_on_drift(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert codegen_in_process(capsys, "--out", str(tmp_path))[0] == 0
    target = tmp_path / "asyncapi.yaml"
    target.write_text(target.read_text().replace("name: project.updated", "name: project.renamed"))
    status, out, err = codegen_in_process(capsys, "--check", "--out", str(tmp_path))
    assert status == 1
    removed = [line for line in out.splitlines() if line.startswith("-") and "project.renamed" in line]
    added = [line for line in out.splitlines() if line.startswith("+") and "name: project.updated" in line]
    assert removed
    assert added
    assert "out of date" in err


def test_rendering_is_deterministic() -> None:
    assert render() == render()


def test_two_models_with_one_name_are_an_error() -> None:
    class RoomAck(BaseModel):
        room: str

    from swe_realtime.events import RoomAck as Real

    with pytest.raises(CodegenError, match="RoomAck"):
        build_schemas([(Real, "serialization"), (RoomAck, "serialization")])


def test_schema_snapshot_of_an_envelope() -> None:
    """Pinned shape of one envelope: a pydantic upgrade that changes it shows up here."""
    schema = json.loads((CONTRACTS / "asyncapi.json").read_text())["components"]["schemas"]["ProjectUpdated"]
    assert schema["required"] == ["type", "id", "timestamp", "source", "data", "positions"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["type"] == {
        "const": "project.updated",
        "default": "project.updated",
        "type": "string",
    }
    assert schema["properties"]["timestamp"]["format"] == "date-time"
    assert schema["properties"]["data"]["$ref"] == "#/components/schemas/ProjectUpdatedData"
    assert "title" not in json.dumps(schema)


# --- breaking-change gate --------------------------------------------------------------------


@pytest.fixture
def current() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((CONTRACTS / "asyncapi.json").read_text())
    return document


def levels(old: dict[str, Any], new: dict[str, Any]) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for change in compare(old, new):
        result.setdefault(change.level, []).append(f"{change.where}: {change.what}")
    return result


def schemas(document: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = document["components"]["schemas"]
    return found


def test_identical_documents_have_no_changes(current: dict[str, Any]) -> None:
    assert compare(current, copy.deepcopy(current)) == []


def test_removed_event_is_breaking(current: dict[str, Any]) -> None:
    new = copy.deepcopy(current)
    del new["components"]["messages"]["PrClosed"]
    for channel in new["channels"].values():
        channel["messages"].pop("PrClosed", None)
    assert levels(current, new)["breaking"] == ["pr.closed: event removed"]


def test_acks_are_compared_by_command(current: dict[str, Any]) -> None:
    """An ack has no wire name: a change is reported for each command that may answer it."""
    new = copy.deepcopy(current)
    del schemas(new)["RoomAck"]["properties"]["room"]
    schemas(new)["RecoverReply"]["oneOf"].pop()  # ErrorAck
    assert levels(current, new)["breaking"] == [
        "subscribe ack RoomAck.room: field removed",
        "unsubscribe ack RoomAck.room: field removed",
        "recover ack ErrorAck: ack removed",
    ]


def test_removed_field_is_breaking(current: dict[str, Any]) -> None:
    new = copy.deepcopy(current)
    del schemas(new)["WorkflowProgressData"]["properties"]["current_step"]
    assert "workflow.progress.data.current_step: field removed" in levels(current, new)["breaking"]


def test_removed_enum_value_is_breaking_and_added_one_a_warning(current: dict[str, Any]) -> None:
    new = copy.deepcopy(current)
    schemas(new)["IssuePriority"]["enum"] = ["low", "medium", "high", "urgent"]
    found = levels(current, new)
    assert "issue.updated.data.priority: enum value 'critical' removed" in found["breaking"]
    assert "issue.updated.data.priority: enum value 'urgent' added" in found["warning"]


def test_added_enum_value_alone_passes_with_a_warning(
    capsys: pytest.CaptureFixture[str], current: dict[str, Any], tmp_path: Path
) -> None:
    old = copy.deepcopy(current)
    schemas(old)["Severity"]["enum"] = ["info", "warning"]
    reference = tmp_path / "old.json"
    reference.write_text(json.dumps(old))
    status, out, _ = codegen_in_process(capsys, "--breaking-against", str(reference))
    assert status == 0, out
    assert "WARNING  ai.suggestion.data.severity: enum value 'critical' added" in out


def test_optional_field_made_required_is_breaking(current: dict[str, Any]) -> None:
    new = copy.deepcopy(current)
    schemas(new)["AgentStatusReport"]["required"].append("metadata")
    assert "agent.status.metadata: optional field made required" in levels(current, new)["breaking"]


def test_new_required_field_in_a_command_is_breaking(current: dict[str, Any]) -> None:
    new = copy.deepcopy(current)
    for name in ("SubscribeCommand", "UnsubscribeCommand"):  # RoomCommand, each under its own name
        command = schemas(new)[name]
        command["properties"]["since"] = {"type": "integer"}
        command["required"].append("since")
    assert levels(current, new)["breaking"] == [
        "subscribe.since: new required field",
        "unsubscribe.since: new required field",
    ]


def test_new_field_in_an_event_passes(
    capsys: pytest.CaptureFixture[str], current: dict[str, Any], tmp_path: Path
) -> None:
    old = copy.deepcopy(current)
    data = schemas(old)["PrClosedData"]
    del data["properties"]["closed_by"]
    data["required"].remove("closed_by")
    reference = tmp_path / "old.json"
    reference.write_text(json.dumps(old))
    status, out, _ = codegen_in_process(capsys, "--breaking-against", str(reference))
    assert status == 0, out
    assert "INFO     pr.closed.data.closed_by: new required field" in out


def test_type_changes(current: dict[str, Any]) -> None:
    new = copy.deepcopy(current)
    schemas(new)["WorkflowProgressData"]["properties"]["progress"] = {"type": "string"}
    schemas(new)["AgentStatusReport"]["properties"]["availability"]["maximum"] = 10
    schemas(new)["ProjectUpdatedData"]["properties"]["project_name"] = {
        "anyOf": [{"type": "string"}, {"type": "null"}]
    }
    found = levels(current, new)
    assert "workflow.progress.data.progress: type changed from ['integer'] to ['string']" in found["breaking"]
    assert "agent.status.availability: maximum tightened from 100 to 10" in found["breaking"]
    assert "project.updated.data.project_name: type widened to ['null', 'string']" in found["warning"]


def test_room_change_is_breaking(current: dict[str, Any]) -> None:
    new = copy.deepcopy(current)
    new["channels"]["user"]["messages"].pop("ProjectDeleted")
    before, after = "['project:{projectId}', 'user:{userId}']", "['project:{projectId}']"
    assert levels(current, new)["breaking"] == [f"project.deleted: rooms changed from {before} to {after}"]


def test_unknown_git_ref_is_reported() -> None:
    """The command itself: its exit status and its message, from a process of its own."""
    result = run_codegen("--breaking-against", "no-such-ref-anywhere")
    assert result.returncode != 0
    assert "cannot read contracts/asyncapi.json at no-such-ref-anywhere" in result.stderr


def descriptions(node: Any) -> Iterator[str]:
    """Every ``description`` (and message ``summary``) in a document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("description", "summary") and isinstance(value, str):
                yield value
            else:
                yield from descriptions(value)
    elif isinstance(node, list):
        for item in node:
            yield from descriptions(item)


@pytest.mark.parametrize("document", ["asyncapi.json", "openapi.json"])
def test_no_placeholder_reads_as_an_html_tag(document: str) -> None:
    """Renderers take descriptions as Markdown, where ``<project_id>`` is a tag and vanishes."""
    texts = list(descriptions(json.loads((CONTRACTS / document).read_text())))
    assert any("{project_id}" in text for text in texts)
    assert [text for text in texts if re.search(r"<[A-Za-z_][\w]*>", text)] == []


def test_docs_page_shows_each_event_as_delivered() -> None:
    """The page's examples are the AsyncAPI ones: whole envelopes, with what the gateway sets."""
    document = json.loads((CONTRACTS / "asyncapi.json").read_text())
    page = (CONTRACTS / "docs" / "index.html").read_text()
    for message in document["components"]["messages"].values():
        for example in message.get("examples", []):
            assert {"id", "timestamp", "positions", "source", "data"} <= set(example["payload"])
            assert html.escape(json.dumps(example["payload"], indent=2)) in page

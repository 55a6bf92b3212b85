"""The generated AsyncAPI and OpenAPI documents in the tools other teams already use, each run
as they would run it (tests/consumers/contracts pins them); any error or warning a tool prints
fails its test, since a consumer's build would show it too."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from swe_realtime.events import ACKS, SERVER_EVENTS
from swe_realtime.events.catalogue import CATALOGUE
from tests.support import ServerProcess, api, make_token

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS = ROOT / "contracts"
TOOLS = Path(__file__).with_name("consumers") / "contracts"
BIN = TOOLS / "node_modules" / ".bin"


def run(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """A tool of tests/consumers/contracts, run there; its output is kept for the assertions."""
    assert shutil.which("node"), "node is required"
    return subprocess.run(
        [str(arg) for arg in args],
        cwd=TOOLS,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.node
def test_asyncapi_cli_validates_without_warnings(tmp_path: Path) -> None:
    """``asyncapi validate``, failing at warnings. The CLI's analytics (a network call and a
    notice) are switched off by their config file, and node-config's notices that the CLI has
    no config directory are not about the document."""
    analytics = tmp_path / "analytics.json"
    analytics.write_text(
        json.dumps({"analyticsEnabled": "false", "infoMessageShown": "true", "userID": "test"})
    )
    env = {
        "ASYNCAPI_METRICS_CONFIG_PATH": str(analytics),
        "NODE_CONFIG_ENV": "development",
        "SUPPRESS_NO_CONFIG_WARNING": "1",
    }
    document = CONTRACTS / "asyncapi.yaml"
    result = run(
        BIN / "asyncapi", "validate", document, "--fail-severity=warn", "--diagnostics-format=json", env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    assert "warning" not in result.stdout.lower(), result.stdout
    start = result.stdout.find("[")
    diagnostics = json.loads(result.stdout[start:]) if start >= 0 else []
    # severity 0 is an error, 1 a warning; 2 (information) is the advice to move to AsyncAPI 3.1.
    assert [d for d in diagnostics if d["severity"] < 2] == []


@pytest.mark.node
def test_modelina_makes_a_model_of_every_message() -> None:
    result = run("node", "modelina.mjs", CONTRACTS / "asyncapi.yaml")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    report = json.loads(result.stdout)
    assert report["logged"] == []
    document = json.loads((CONTRACTS / "asyncapi.json").read_text())
    payloads = {
        message["payload"]["$ref"].rsplit("/", 1)[-1]
        for message in document["components"]["messages"].values()
    }
    assert payloads <= set(report["models"])
    assert {ack.__name__ for ack in ACKS} <= set(report["models"])  # inside the replies' unions too


@pytest.mark.node
def test_every_example_matches_its_schema_in_ajv() -> None:
    result = run("node", "examples.mjs", CONTRACTS / "asyncapi.json", CONTRACTS / "openapi.json")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    report = json.loads(result.stdout)
    assert report["failures"] == []
    assert report["logged"] == []
    messages = [c for c in report["checked"] if c.startswith("asyncapi message")]
    assert len(messages) == len(SERVER_EVENTS)  # every event's message has its example


def documented_publish_bodies() -> list[object]:
    """The minimal bodies a publisher copies: the curl example of docs/emitting-events.md and
    the example of each event in the OpenAPI document."""
    text = (ROOT / "docs" / "emitting-events.md").read_text()
    curl = text.split("-d '", 1)[1].split("'", 1)[0]
    openapi = json.loads((CONTRACTS / "openapi.json").read_text())
    examples = [
        schema["examples"][0] for schema in openapi["components"]["schemas"].values() if "examples" in schema
    ]
    publish = [example for example in examples if set(example) <= {"type", "source", "data"}]
    return [json.loads(curl), *publish]


@pytest.mark.node
def test_openapi_typescript_client_compiles_the_documented_bodies(tmp_path: Path) -> None:
    generated = run(BIN / "openapi-typescript", CONTRACTS / "openapi.yaml", "-o", tmp_path / "openapi.d.ts")
    assert generated.returncode == 0, generated.stderr
    assert generated.stderr == ""  # its warnings (and its validator's) go there
    assert "warn" not in generated.stdout.lower(), generated.stdout
    shutil.copy(TOOLS / "publish_client.ts", tmp_path / "publish_client.ts")
    bodies = documented_publish_bodies()
    assert len(bodies) == len(CATALOGUE) + 1  # every event that can be published, and the docs' one
    (tmp_path / "bodies.ts").write_text(
        'import type { PublishBody } from "./publish_client";\n'
        f"export const bodies: PublishBody[] = {json.dumps(bodies, indent=2)};\n"
    )
    config = {
        "compilerOptions": {
            "strict": True,
            "noEmit": True,
            "target": "es2022",
            "module": "es2022",
            "moduleResolution": "bundler",
            "lib": ["es2022", "dom"],
            "types": [],
        },
        "files": ["publish_client.ts", "bodies.ts"],
    }
    (tmp_path / "tsconfig.json").write_text(json.dumps(config))
    result = run(
        "node", TOOLS / "node_modules" / "typescript" / "bin" / "tsc", "-p", tmp_path / "tsconfig.json"
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_datamodel_codegen_models_publish_an_event(
    tmp_path: Path, server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """datamodel-codegen's pydantic models of the OpenAPI document, as a Python service would
    generate them: an event built from them, and every example the document gives parsed by
    them, are accepted by a real gateway."""
    generated = subprocess.run(
        [
            sys.executable,
            "-m",
            "datamodel_code_generator",
            "--input",
            str(CONTRACTS / "openapi.yaml"),
            "--input-file-type",
            "openapi",
            "--output-model-type",
            "pydantic_v2.BaseModel",
            "--target-python-version",
            "3.11",
            "--formatters",
            "builtin",
            "--output",
            str(tmp_path / "publish_models.py"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert generated.returncode == 0, generated.stderr
    assert generated.stdout + generated.stderr == ""
    spec = importlib.util.spec_from_file_location("publish_models", tmp_path / "publish_models.py")
    assert spec
    assert spec.loader
    models = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, models)  # pydantic resolves the generics there
    spec.loader.exec_module(models)

    progress = models.PublishWorkflowProgress(
        type="workflow.progress",
        data=models.WorkflowProgressInput(
            workflow_id=uuid4(), status=models.WorkflowStatus.running, progress=40, current_step="Testing"
        ),
    )
    documented = [models.PublishEvent.model_validate(body) for body in documented_publish_bodies()]
    token = make_token(roles=["service"])

    async def post() -> list[tuple[int, Any]]:
        one = await api(
            server, "POST", "/api/v1/events", token, progress.model_dump(mode="json", exclude_none=True)
        )
        batch = [event.model_dump(mode="json", exclude_none=True) for event in documented]
        return [one, await api(server, "POST", "/api/v1/events/batch", token, batch)]

    (status, receipt), (batch_status, receipts) = asyncio.run(post())
    assert status == 202, receipt
    assert receipt["type"] == "workflow.progress"
    assert batch_status == 202, receipts
    assert len(receipts["receipts"]) == len(documented)

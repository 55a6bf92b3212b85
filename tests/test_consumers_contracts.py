"""The generated AsyncAPI and OpenAPI documents in the tools other teams already use, each run
as they would run it (tests/consumers/contracts pins them); any error or warning a tool prints
fails its test, since a consumer's build would show it too."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from swe_realtime.events import SERVER_EVENTS

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

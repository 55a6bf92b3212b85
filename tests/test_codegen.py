"""Generated contracts: current with the models, deterministic, and the drift check bites."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from codegen import CodegenError, render
from codegen import jsonschema as jsonschema_step

ROOT = Path(__file__).resolve().parent.parent


def run_codegen(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "codegen", *args], cwd=ROOT, capture_output=True, text=True)


def test_committed_contracts_are_current() -> None:
    result = run_codegen("--check")
    assert result.returncode == 0, result.stderr


def test_check_detects_drift(tmp_path: Path) -> None:
    assert run_codegen("--out", str(tmp_path)).returncode == 0
    target = tmp_path / "catalogue.schema.json"
    target.write_text(target.read_text().replace("connection.established", "connection.made"))
    result = run_codegen("--check", "--out", str(tmp_path))
    assert result.returncode == 1
    assert "catalogue.schema.json" in result.stderr


def test_rendering_is_deterministic() -> None:
    assert render() == render()


def test_event_types_are_constants() -> None:
    schema = json.loads(render()[next(iter(render()))])
    established = schema["$defs"]["ConnectionEstablished"]["properties"]["type"]
    assert established["const"] == "connection.established"


def test_name_collision_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from server.events import RoomAck

    clash = type("RoomAck", (RoomAck,), {})
    monkeypatch.setattr(jsonschema_step, "ACKS", (RoomAck, clash))
    with pytest.raises(CodegenError, match="RoomAck"):
        jsonschema_step.catalogue_models()

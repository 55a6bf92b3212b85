"""The generated contracts hold up outside Python: the official AsyncAPI parser, tsc --strict,
an OpenAPI validator, schemathesis against the live server, and the docs page in Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, assume, given, settings
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.checks import negative_data_rejection

from swe_realtime.events import CLIENT_COMMANDS, SERVER_EVENTS
from tests.support import ServerProcess, make_token

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS = ROOT / "contracts"
NODE = Path(__file__).with_name("node")
TS = NODE / "ts"


def node(*args: str, cwd: Path = NODE) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("node")
    assert executable, "node is required"
    return subprocess.run([executable, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.node
def test_asyncapi_passes_the_official_parser() -> None:
    result = node("validate_asyncapi.mjs", str(CONTRACTS / "asyncapi.yaml"))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["parsed"] is True
    serious = [d for d in report["diagnostics"] if d["severity"] in ("error", "warning")]
    assert serious == []


def test_asyncapi_yaml_and_json_agree() -> None:
    assert yaml.safe_load((CONTRACTS / "asyncapi.yaml").read_text()) == json.loads(
        (CONTRACTS / "asyncapi.json").read_text()
    )


def test_asyncapi_names_every_event_and_command() -> None:
    document = json.loads((CONTRACTS / "asyncapi.json").read_text())
    names = {message["name"] for message in document["components"]["messages"].values()}
    assert {event.event_name() for event in SERVER_EVENTS} <= names
    assert set(CLIENT_COMMANDS) <= names


# --- TypeScript ------------------------------------------------------------------------------


def tsc(project: Path) -> subprocess.CompletedProcess[str]:
    return node(str(NODE / "node_modules" / "typescript" / "bin" / "tsc"), "-p", str(project), cwd=TS)


def test_typescript_package_is_npm_ready() -> None:
    package = json.loads((CONTRACTS / "typescript" / "package.json").read_text())
    assert package["types"] == "index.d.ts"
    assert package["version"] == json.loads((CONTRACTS / "asyncapi.json").read_text())["info"]["version"]


@pytest.mark.node
def test_spec_client_compiles_strictly() -> None:
    result = tsc(TS / "tsconfig.json")
    assert result.returncode == 0, result.stdout + result.stderr


WRONG_CLIENTS = {
    "misspelt_field": 'socket.on("workflow.progress", (event) => console.log(event.data.progres));',
    "wrong_enum_value": 'const status: AgentStatus = "sleeping"; console.log(status);',
    "unknown_event": 'socket.on("project.renamed", (event: unknown) => console.log(event));',
    "unknown_command": 'socket.emit("publish", { type: "pr.created" }, () => undefined);',
    "room_outside_the_grammar": 'socket.emit("subscribe", { room: "team:42" }, () => undefined);',
    "ack_of_another_command": 'socket.emit("ping", {}, (response) => console.log(response.room));',
    "incomplete_agent_status": 'socket.emit("agent.status", { status: "busy" }, () => undefined);',
    "wrong_payload_type": 'socket.on("pr.closed", (event) => { const merged: string = event.data.merged; });',
}
PRELUDE = """import { io, type Socket } from "socket.io-client";
import type { AgentStatus, ClientToServerEvents, ServerToClientEvents } from "@swe-realtime/contracts";
declare const console: { log(...args: unknown[]): void };
const socket: Socket<ServerToClientEvents, ClientToServerEvents> = io("http://localhost:8000/ws");
"""


@pytest.fixture
def wrong_clients() -> Iterator[Path]:
    """A tsc project of one file per wrong client, next to the good one (same node_modules)."""
    cases = TS / "wrong"
    cases.mkdir(exist_ok=True)
    for name, body in WRONG_CLIENTS.items():
        (cases / f"{name}.ts").write_text(PRELUDE + body + "\n")
    config = json.loads((TS / "tsconfig.json").read_text())
    config["compilerOptions"]["paths"] = {
        "@swe-realtime/contracts": [str(CONTRACTS / "typescript" / "index.d.ts")],
        "@swe-realtime/contracts/resume": [str(CONTRACTS / "typescript" / "resume.d.ts")],
        "socket.io-client": [str(NODE / "node_modules" / "socket.io-client")],
    }
    config["files"] = [f"{name}.ts" for name in WRONG_CLIENTS]
    (cases / "tsconfig.json").write_text(json.dumps(config))
    yield cases
    shutil.rmtree(cases)


@pytest.mark.node
def test_wrong_clients_do_not_compile(wrong_clients: Path) -> None:
    result = tsc(wrong_clients / "tsconfig.json")
    assert result.returncode != 0
    failing = {
        Path(line.split("(", 1)[0]).stem for line in result.stdout.splitlines() if ": error TS" in line
    }
    assert failing == set(WRONG_CLIENTS), result.stdout


# --- OpenAPI ---------------------------------------------------------------------------------


def test_openapi_is_valid() -> None:
    validate(json.loads((CONTRACTS / "openapi.json").read_text()))


OPENAPI = schemathesis.openapi.from_path(str(CONTRACTS / "openapi.json"))


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_schemathesis_finds_no_server_error(server: ServerProcess, mode: GenerationMode) -> None:
    token = make_token(roles=["service", "admin"], ttl=3600)

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=OPENAPI.as_strategy(generation_mode=mode))
    def check(case: schemathesis.Case[Any]) -> None:
        response = case.call(base_url=server.url, headers={"Authorization": f"Bearer {token}"})
        # A query parameter whose value is null or an empty list is a violation requests does
        # not send (it drops the parameter): what reached the server may then be a valid
        # request, rightly answered 200. Only requests sent as generated count.
        sent = parse_qs(urlsplit(response.request.url or "").query, keep_blank_values=True)
        assume(set(case.query or {}) <= set(sent))
        assert response.status_code < 500, (case.operation.label, response.text[:300])
        # schemathesis counts only some 4xx as rejections; a 413 for an oversized body is one too.
        excluded = [negative_data_rejection] if response.status_code == 413 else []
        case.validate_response(response, excluded_checks=excluded)
        if mode is GenerationMode.POSITIVE and case.operation.method.upper() == "POST":
            assert response.status_code == 202, response.text[:500]  # schema-valid events are accepted

    check()


# --- the docs site ---------------------------------------------------------------------------


async def test_gateway_serves_the_generated_documents(server: ServerProcess) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        for path, name in [
            ("/docs", "docs/index.html"),
            ("/asyncapi.yaml", "asyncapi.yaml"),
            ("/asyncapi.json", "asyncapi.json"),
            ("/openapi.json", "openapi.json"),
            ("/openapi.yaml", "openapi.yaml"),
        ]:
            async with session.get(server.url + path) as response:
                assert response.status == 200
                assert await response.read() == (CONTRACTS / name).read_bytes()


@pytest.mark.browser
def test_docs_page_lists_the_events_in_chromium(server: ServerProcess, tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    assert chromium, "chromium is required: `just test` installs it (apt package chromium)"
    result = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path}",
            "--dump-dom",
            f"{server.url}/docs",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    for event in SERVER_EVENTS:
        assert f"<code>{event.event_name()}</code>" in dom
    for command in CLIENT_COMMANDS:
        assert f'socket.emit("{command}", payload, ack)' in dom
    assert "<script" not in dom.lower()  # nothing to fetch: works offline


@pytest.fixture
def docs_hook() -> Iterator[Path]:
    """The React hook of docs/typescript.md, as a tsc project next to the spec client."""
    text = (ROOT / "docs" / "typescript.md").read_text()
    hook = next(block for block in text.split("```ts\n")[1:] if "export const useWebSocket" in block)
    folder = TS / "docs-hook"
    folder.mkdir(exist_ok=True)
    (folder / "use_web_socket.ts").write_text(hook.split("```", 1)[0])
    config = json.loads((TS / "tsconfig.json").read_text())
    config["compilerOptions"]["paths"] = {
        "@swe-realtime/contracts": [str(CONTRACTS / "typescript" / "index.d.ts")],
        "@swe-realtime/contracts/resume": [str(CONTRACTS / "typescript" / "resume.d.ts")],
        "socket.io-client": [str(NODE / "node_modules" / "socket.io-client")],
    }
    config["compilerOptions"]["types"] = ["react"]
    config["files"] = ["use_web_socket.ts"]
    (folder / "tsconfig.json").write_text(json.dumps(config))
    yield folder
    shutil.rmtree(folder)


@pytest.mark.node
def test_documented_react_hook_compiles(docs_hook: Path) -> None:
    result = tsc(docs_hook / "tsconfig.json")
    assert result.returncode == 0, result.stdout + result.stderr

"""The TypeScript package in the toolchains frontend teams use, installed from its `npm pack`
tarball as a registry install would put it (files, not a symlink): tsc --strict under each
moduleResolution, Vite's react-ts setup (verbatimModuleSyntax), Node's ESM loader, and the
oldest socket.io-client the peer range allows against a live gateway. Any error or warning a
tool prints fails the test. The tools are pinned in tests/consumers/typescript/package.json."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from swe_realtime.events import SERVER_EVENTS
from tests.support import SERVICE, ServerProcess, make_token, node_script

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "contracts" / "typescript"
CONSUMERS = Path(__file__).with_name("consumers") / "typescript"
INSTALLED = CONSUMERS / "node_modules" / "@swe-realtime" / "contracts"
PACKAGE_FILES = {"README.md", "index.d.ts", "index.js", "package.json", "resume.d.ts", "resume.js"}

pytestmark = pytest.mark.node


def run(*args: str, timeout: float = 120) -> str:
    """Run a command in the consumers project; its output, which must be silent on stderr."""
    result = subprocess.run(args, cwd=CONSUMERS, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == "", result.stderr
    return result.stdout


def tool(script: str, *args: str) -> str:
    """A node tool of the consumers project's node_modules; its output (empty when all is well)."""
    node = shutil.which("node")
    assert node, "node is required"
    return run(node, str(CONSUMERS / "node_modules" / script), *args)


@pytest.fixture(scope="session")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`npm pack` of contracts/typescript, installed into the consumers project from the tarball
    (once a session); npm's report of the tarball. Removed again at the end of the session."""
    npm = shutil.which("npm")
    assert npm, "npm is required"
    folder = tmp_path_factory.mktemp("npm-pack")
    report = json.loads(
        run(npm, "pack", str(PACKAGE), "--pack-destination", str(folder), "--json", "--loglevel=warn")
    )[0]
    tarball = folder / report["filename"]
    run(
        npm,
        "install",
        "--no-save",
        "--prefer-offline",
        "--no-audit",
        "--no-fund",
        "--loglevel=warn",
        str(tarball),
    )
    assert INSTALLED.is_dir()
    assert not INSTALLED.is_symlink()
    yield report
    shutil.rmtree(INSTALLED)


def test_npm_pack_holds_the_package_files_and_nothing_else(packed: dict[str, Any]) -> None:
    assert {file["path"] for file in packed["files"]} == PACKAGE_FILES
    assert {path.name for path in INSTALLED.iterdir()} == PACKAGE_FILES


def test_peer_range_starts_at_the_pinned_oldest_client() -> None:
    """The consumers project pins the oldest socket.io-client the peer range allows (4.6.0, the
    first with emitWithAck, which resume.js calls), so the tests below run the floor."""
    peer = json.loads((PACKAGE / "package.json").read_text())["peerDependencies"]["socket.io-client"]
    pinned = json.loads((CONSUMERS / "package.json").read_text())["dependencies"]["socket.io-client"]
    assert peer == f"^{pinned}" == "^4.6.0"
    readme = (PACKAGE / "README.md").read_text()
    assert f"`{peer}`" in readme


@pytest.mark.parametrize(
    ("resolution", "module"), [("bundler", "esnext"), ("node16", "node16"), ("nodenext", "nodenext")]
)
@pytest.mark.usefixtures("packed")
def test_tsc_strict_compiles_a_client_of_the_root_and_resume(resolution: str, module: str) -> None:
    """tsc/client.ts imports types and values from the root and the resume helper, and sends the
    API document's `socket.emit("subscribe", { room })`; tsc/tsconfig.json (strict,
    verbatimModuleSyntax, no skipLibCheck: the package's .d.ts are checked too) with the
    resolution given on the command line."""
    project = str(CONSUMERS / "tsc")
    assert (
        tool("typescript/bin/tsc", "-p", project, "--module", module, "--moduleResolution", resolution) == ""
    )


@pytest.mark.usefixtures("packed")
def test_readme_examples_compile(tmp_path: Path) -> None:
    """The ```ts blocks of the README as shipped in the tarball, one module each, with the
    settings of tsc/tsconfig.json; node_modules is the consumers project's (a link to it)."""
    readme = (INSTALLED / "README.md").read_text()
    blocks = [block.split("```", 1)[0] for block in readme.split("```ts\n")[1:]]
    assert len(blocks) == 2
    for number, block in enumerate(blocks):
        (tmp_path / f"example_{number}.ts").write_text(block)
    (tmp_path / "node_modules").symlink_to(CONSUMERS / "node_modules")
    config = {
        "extends": str(CONSUMERS / "tsc" / "tsconfig.json"),
        "files": [f"example_{number}.ts" for number in range(len(blocks))],
    }
    (tmp_path / "tsconfig.json").write_text(json.dumps(config))
    assert tool("typescript/bin/tsc", "-p", str(tmp_path)) == ""


@pytest.mark.usefixtures("packed")
def test_vite_react_ts_app_type_checks_and_builds(tmp_path: Path) -> None:
    """The react-ts template's build, `tsc -b && vite build`, warnings shown (--logLevel warn):
    both print nothing, and the root's run-time values are in the bundle."""
    app = CONSUMERS / "vite-app"
    assert tool("typescript/bin/tsc", "-p", str(app)) == ""
    dist = tmp_path / "dist"
    assert (
        tool(
            "vite/bin/vite.js",
            "build",
            str(app),
            "--outDir",
            str(dist),
            "--emptyOutDir",
            "--logLevel",
            "warn",
        )
        == ""
    )
    bundle = "".join(path.read_text() for path in (dist / "assets").glob("*.js"))
    assert "ai.analysis_complete" in bundle


@pytest.mark.usefixtures("packed")
async def test_oldest_client_resumes_through_the_helper_against_the_gateway(server: ServerProcess) -> None:
    """Node's ESM loader resolves the root and /resume; the helper's subscribe (emitWithAck)
    works with socket.io-client 4.6.0, and the position of a received event is kept."""
    project = str(uuid4())
    room = f"project:{project}"
    seen = await node_script(
        "oldest_client.mjs",
        server.url,
        make_token(projects=[project]),
        SERVICE,
        project,
        cwd=CONSUMERS,
        timeout=30,
    )
    assert seen["client"] == "4.6.0"
    assert seen["events"] == len(SERVER_EVENTS)
    assert seen["ack"]["status"] == "success"
    assert seen["ack"]["room"] == room
    assert seen["event"]["data"]["progress"] == 50
    assert seen["positions"][room] == seen["event"]["positions"][room]

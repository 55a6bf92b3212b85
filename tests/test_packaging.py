"""The wheel as another team installs it: one import package, the gateway as an extra, and an
emitter that works with pydantic and redis alone.

The wheel is built from this checkout and installed into fresh virtual environments outside
it (dependencies come from the package index, as for any user); the installed commands run
with a working directory outside the checkout, so nothing of the source tree can leak in.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from uuid import uuid4

import aiohttp
import pytest

from swe_realtime.events.rooms import Room, RoomKind
from tests.support import SECRET, SHARED_REDIS, Client, ServerProcess, listener

ROOT = Path(__file__).resolve().parent.parent
GATEWAY_ONLY = {
    "sanic",
    "python-socketio",
    "python-engineio",
    "uvicorn",
    "pyjwt",
    "prometheus-client",
    "pyyaml",
}

pytestmark = pytest.mark.slow


def run(*command: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"{command}: {result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run("uv", "build", "--wheel", "--quiet", "--out-dir", out, cwd=ROOT)
    (built,) = out.glob("swe_realtime-*.whl")
    return built


def venv(path: Path, *requirements: str) -> Path:
    """A fresh virtual environment holding ``requirements``; its ``bin`` directory."""
    path = path / "venv"
    run("uv", "venv", "--quiet", "--python", sys.executable, path)
    run("uv", "pip", "install", "--quiet", "--python", path / "bin" / "python", *requirements)
    return path / "bin"


@pytest.fixture(scope="module")
def gateway_bin(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return venv(tmp_path_factory.mktemp("gateway"), f"swe-realtime[gateway] @ {wheel.as_uri()}")


@pytest.fixture(scope="module")
def light_bin(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return venv(tmp_path_factory.mktemp("light"), wheel.as_uri())


def installed(bin_dir: Path) -> set[str]:
    listing = run("uv", "pip", "list", "--python", bin_dir / "python", "--format", "freeze")
    return {line.partition("==")[0].lower() for line in listing.splitlines() if line}


def test_wheel_holds_one_import_package_and_the_contracts(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {
        name.partition("/")[0] for name in names if not name.partition("/")[0].endswith(".dist-info")
    }
    assert top_level == {"swe_realtime"}
    for document in ("asyncapi.yaml", "asyncapi.json", "openapi.json", "openapi.yaml", "docs/index.html"):
        assert f"swe_realtime/contracts/{document}" in names
    assert not any(
        name.startswith(("codegen/", "server/", "swe_realtime/contracts/typescript")) for name in names
    )


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A working directory away from the checkout."""
    work = tmp_path / "elsewhere"
    work.mkdir()
    return work


async def test_installed_gateway_serves_docs_and_contracts(
    gateway_bin: Path, tmp_path: Path, outside: Path
) -> None:
    server = ServerProcess(
        tmp_path / "server.log", {"JWT_SECRET": SECRET}, cli=gateway_bin / "swe-realtime", cwd=outside
    )
    try:
        async with aiohttp.ClientSession() as session:
            for path, name in (("/docs", "docs/index.html"), ("/asyncapi.yaml", "asyncapi.yaml")):
                async with session.get(server.url + path) as response:
                    assert response.status == 200, path
                    assert await response.read() == (ROOT / "contracts" / name).read_bytes()
    finally:
        assert server.stop(), server.log()
    top_level = run(
        gateway_bin / "python",
        "-c",
        "from importlib.metadata import distribution\n"
        "files = distribution('swe-realtime').files\n"
        "tops = {f.parts[0] for f in files}\n"
        "print(sorted(top for top in tops if not top.endswith('.dist-info') and top != '..'))",
        cwd=outside,
    )
    assert top_level.strip() == "['swe_realtime']"


def test_light_install_holds_no_gateway(light_bin: Path, outside: Path) -> None:
    assert installed(light_bin) & GATEWAY_ONLY == set()
    refusal = subprocess.run(
        [light_bin / "swe-realtime", "serve"], cwd=outside, capture_output=True, text=True
    )
    assert refusal.returncode == 1
    assert "pip install 'swe-realtime[gateway]'" in refusal.stderr


@pytest.mark.redis
async def test_light_install_emits_through_redis_to_a_gateway(
    light_bin: Path,
    outside: Path,
    start_server: Callable[..., ServerProcess],
    clients: Callable[[], Client],
) -> None:
    channel = f"test-{uuid4().hex[:12]}"
    gateway = start_server({"JWT_SECRET": SECRET, "REDIS_URL": SHARED_REDIS, "REDIS_CHANNEL": channel})
    project = Room(RoomKind.PROJECT, uuid4())
    watcher = await listener(gateway, clients, project)
    # The seed's backend example, in a process with only pydantic and redis.
    script = (
        "import asyncio, uuid\n"
        "from swe_realtime.broadcaster import get_broadcaster\n"
        "async def main():\n"
        "    receipt = await get_broadcaster().broadcast_project_updated(\n"
        f"        project_id=uuid.UUID('{project.id}'), project_name='AI Agent Framework',\n"
        "        repository_url='https://github.com/user/ai-agent-framework', status='active',\n"
        "        updated_by=uuid.uuid4(), changes={'status': 'updated'})\n"
        "    print(receipt.rooms[0])\n"
        "asyncio.run(main())\n"
    )
    env = {**os.environ, "REDIS_URL": SHARED_REDIS, "REDIS_CHANNEL": channel}
    printed = await asyncio.to_thread(run, light_bin / "python", "-c", script, cwd=outside, env=env)
    assert printed.strip() == str(project)
    event = await watcher.next("project.updated")
    assert event["data"]["project_name"] == "AI Agent Framework"
    assert event["positions"][str(project)]["offset"] == 1

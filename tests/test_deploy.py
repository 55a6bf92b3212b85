"""The deployment files, checked with what runs here (no Docker engine): YAML, and nginx
itself proxying real clients to two real gateways with the shipped configuration."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from uuid import uuid4

import pytest
import yaml

from tests.support import (
    SECRET,
    SHARED_REDIS,
    Client,
    ServerProcess,
    eventually_sync,
    free_port,
    member,
    progress_event,
    publish,
    received,
)

ROOT = Path(__file__).resolve().parent.parent


def test_compose_file_describes_redis_two_gateways_and_nginx() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"redis", "gateway1", "gateway2", "nginx"}
    for name in ("gateway1", "gateway2"):
        environment = services[name]["environment"]
        assert environment["REDIS_URL"] == "redis://redis:6379/0"
        assert environment["INSTANCE_ID"] == name
        assert "JWT_SECRET" in environment
    assert services["nginx"]["ports"] == ["8000:8000"]
    assert services["nginx"]["volumes"] == ["./deploy/nginx.conf:/etc/nginx/nginx.conf:ro"]


def test_dockerfile_is_slim_non_root_and_checks_health() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", dockerfile, re.MULTILINE)
    assert re.search(r"^USER gateway$", dockerfile, re.MULTILINE)
    assert "HEALTHCHECK" in dockerfile
    assert "/health" in dockerfile
    assert 'CMD ["swe-realtime", "serve"]' in dockerfile
    assert "--no-dev" in dockerfile


@pytest.fixture
def nginx_in_front(
    tmp_path: Path, start_server: Callable[..., ServerProcess]
) -> Iterator[tuple[str, list[ServerProcess]]]:
    """The shipped nginx.conf, with the compose hostnames pointed at two local gateways."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(nginx).exists(), "nginx is required: `just test` installs it (Debian package nginx)"
    channel = f"test-{uuid4().hex[:12]}"
    gateways = [
        start_server(
            {
                "JWT_SECRET": SECRET,
                "REDIS_URL": SHARED_REDIS,
                "REDIS_CHANNEL": channel,
                "INSTANCE_ID": f"g{i}",
            }
        )
        for i in range(2)
    ]
    port = free_port()
    config = (ROOT / "deploy" / "nginx.conf").read_text()
    config = config.replace("gateway1:8000", f"127.0.0.1:{gateways[0].port}")
    config = config.replace("gateway2:8000", f"127.0.0.1:{gateways[1].port}")
    config = config.replace("listen 8000;", f"listen 127.0.0.1:{port};")
    (tmp_path / "nginx.conf").write_text(config)
    (tmp_path / "logs").mkdir()
    common = [
        "-p",
        str(tmp_path),
        "-c",
        str(tmp_path / "nginx.conf"),
        "-e",
        str(tmp_path / "logs" / "error.log"),
    ]
    globals_ = f"pid {tmp_path}/nginx.pid; daemon off;"
    checked = subprocess.run([nginx, "-t", *common, "-g", globals_], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen([nginx, *common, "-g", globals_])

    def up() -> bool:
        health = subprocess.run(["curl", "-sf", f"http://127.0.0.1:{port}/health"], capture_output=True)
        return health.returncode == 0

    eventually_sync(up, interval=0.1, message="nginx did not come up")
    yield f"http://127.0.0.1:{port}", gateways
    process.terminate()
    process.wait(10)


@pytest.mark.redis
@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_clients_through_nginx(
    nginx_in_front: tuple[str, list[ServerProcess]], clients: Callable[[], Client], transport: str
) -> None:
    url, gateways = nginx_in_front
    project = str(uuid4())

    via_nginx = await member(url, clients, project, transport)
    direct = await member(gateways[1].url, clients, project)
    await publish(gateways[0], progress_event(project, 9))
    assert await received(via_nginx, 1) == [9]
    assert await received(direct, 1) == [9]
    assert await via_nginx.call("ping") == {"status": "pong"}

"""The deployment files, checked with what runs here (no Docker engine): YAML, and nginx
itself proxying real clients to two real gateways with the shipped configuration."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from uuid import uuid4

import aiohttp
import pytest
import socketio
import yaml

from tests.support import (
    ADMIN,
    NGINX_ALIAS,
    Client,
    ServerProcess,
    api,
    compose_gateways,
    gateway_environment,
    make_token,
    member,
    progress_event,
    publish,
    received,
    run_nginx,
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
    gateways = compose_gateways(start_server)
    with run_nginx(tmp_path, gateways) as url:
        yield url, gateways


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


@pytest.mark.redis
@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_pages_of_the_gateways_own_origin_connect_through_nginx_beside_an_allow_list(
    tmp_path: Path, start_server: Callable[..., ServerProcess], transport: str
) -> None:
    """Compose sets CORS_ORIGINS (a frontend on localhost:3000). A page the gateway serves
    itself, reached through the shipped nginx (the console, a same-origin app), is let in too:
    nginx forwards the port it was reached on, and the gateway's own origin is accepted
    whatever the list says. A page of another site is still refused."""
    gateways = compose_gateways(start_server, CORS_ORIGINS="http://localhost:3000")
    with run_nginx(tmp_path, gateways) as url:
        handshake = f"{url}/socket.io/?EIO=4&transport={transport}"
        async with aiohttp.ClientSession() as session:
            for origin, allowed in (
                (url, True),
                ("http://localhost:3000", True),
                ("http://evil.example", False),
            ):
                if transport == "websocket":
                    try:
                        async with session.ws_connect(handshake, origin=origin) as socket:
                            opened = (await socket.receive_str()).startswith("0")
                    except aiohttp.WSServerHandshakeError as refused:
                        opened = refused.status != 403
                else:
                    async with session.get(handshake, headers={"Origin": origin}) as response:
                        opened = response.status == 200
                assert opened is allowed, origin


@pytest.mark.redis
async def test_behind_the_compose_nginx_each_client_has_its_own_address_limit(
    tmp_path: Path, start_server: Callable[..., ServerProcess]
) -> None:
    """Without FORWARDED_ALLOW_IPS every client appeared as nginx: the 61st client of a
    minute was refused, whoever it was. Here the limit is 3 a minute per address."""
    assert all(
        gateway_environment(instance).get("FORWARDED_ALLOW_IPS") == NGINX_ALIAS
        for instance in ("gateway1", "gateway2")
    ), "compose must trust nginx's address, and only it, on every gateway"
    gateways = compose_gateways(start_server, CONNECTS_PER_IP_PER_MINUTE="3")
    opened: list[Client] = []
    try:
        with run_nginx(tmp_path, gateways) as url:
            for source in [f"127.0.1.{n}" for n in range(1, 6)] + ["127.0.1.1"] * 2:
                opened.append(await Client(source=source).connect(url, make_token()))
            opened.append(Client(source="127.0.1.1"))
            with pytest.raises(socketio.exceptions.ConnectionError):
                await opened[-1].connect(url, make_token())
            lines = "".join(gateway.log() for gateway in gateways)
            assert re.search(r"code=RATE_LIMITED .* remote=127\.0\.1\.1\b", lines)
            # The client's address, as nginx names it, and no port uvicorn does not know (was :0).
            shown = set(re.findall(r" connect .*remote=(\S+)", lines))
            assert shown == {f"127.0.1.{n}" for n in range(1, 6)}, shown
            status, body = await api(gateways[0], "GET", "/api/v1/connections", ADMIN)
            assert status == 200
            assert {connection["remote"] for connection in body["connections"]} == shown
    finally:
        for client in opened:
            await client.close()

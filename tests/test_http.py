"""HTTP endpoints: health, readiness, and the stats endpoint's access rules and shape.

Access rules are request/response checks, made in this process (``in_process``); health,
readiness and the stats' figures are read from a real server with real connections.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import uuid4

import aiohttp
import pytest

from tests.support import SECRET, Client, InProcessAPI, ServerProcess, make_token

STATS = "/api/v1/websocket/stats"


async def get(server: ServerProcess, path: str, token: str | None = None, **headers: str) -> tuple[int, Any]:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.url + path, headers=headers) as response,
    ):
        return response.status, await response.json()


async def test_health_and_ready(server: ServerProcess) -> None:
    assert await get(server, "/health") == (200, {"status": "ok"})
    assert await get(server, "/ready") == (200, {"status": "ready"})


@pytest.mark.parametrize(
    ("headers", "code"),
    [  # made as the test runs: a token minted at collection would age with the suite
        (lambda: {}, "AUTH_MISSING"),
        (lambda: {"Authorization": "Basic dXNlcjpwYXNz"}, "AUTH_MISSING"),
        (lambda: {"Authorization": "Bearer "}, "AUTH_MISSING"),
        (lambda: {"Authorization": "Bearer not-a-jwt"}, "AUTH_FAILED"),
        (lambda: {"Authorization": f"Bearer {make_token(roles=['admin'], ttl=-10)}"}, "AUTH_FAILED"),
    ],
)
async def test_stats_needs_a_valid_token(
    in_process: InProcessAPI, headers: Callable[[], dict[str, str]], code: str
) -> None:
    status, body = await in_process("GET", STATS, headers=headers())
    assert status == 401
    assert body["error_code"] == code


@pytest.mark.parametrize("roles", [[], ["agent"]])
async def test_stats_forbidden_to_plain_users(in_process: InProcessAPI, roles: list[str]) -> None:
    status, body = await in_process("GET", STATS, make_token(roles=roles))
    assert status == 403
    assert body["error_code"] == "PERMISSION_DENIED"


@pytest.mark.parametrize("role", ["admin", "service"])
async def test_stats_shape(server: ServerProcess, clients: Callable[[], Client], role: str) -> None:
    project = uuid4()
    users = [uuid4(), uuid4()]
    for user in users:
        client = await clients().connect(server.url, make_token(user, projects=[project]))
        await client.next("connection_established")
        await client.call("subscribe", {"room": f"project:{project}"})

    status, body = await get(server, STATS, make_token(roles=[role]))

    assert status == 200
    assert set(body) == {"connections", "rooms", "instances", "partial"}
    assert body["partial"] is False
    [instance] = body["instances"].values()
    assert instance["connections"] == body["connections"]
    assert body["connections"] >= 2
    assert body["rooms"]["global"] == body["connections"]
    assert body["rooms"][f"project:{project}"] == 2
    for user in users:
        assert body["rooms"][f"user:{user}"] == 1
    # Only named rooms are listed, never the per-connection rooms Socket.IO keeps internally.
    assert all(
        name == "global" or name.split(":")[0] in {"user", "project", "agent"} for name in body["rooms"]
    )


async def test_failed_authentications_are_rate_limited_per_address(
    start_server: Callable[..., ServerProcess],
) -> None:
    """Issue 26: each bad token cost a signature check, without limit. Past the address's
    allowance it is answered 429 before any check; valid tokens take nothing from it, and
    another address keeps its own."""
    gateway = start_server({"JWT_SECRET": SECRET, "AUTH_FAILURES_PER_MINUTE": "3"})
    admin = make_token(roles=["admin"])
    for _ in range(10):
        assert (await get(gateway, STATS, admin))[0] == 200
    for headers in (
        {},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": f"Bearer {make_token(roles=['admin'], ttl=-10)}"},
    ):
        status, body = await get(gateway, STATS, **headers)
        assert status == 401, body
    async with (
        aiohttp.ClientSession() as session,
        session.get(gateway.url + STATS, headers={"Authorization": "Bearer not-a-jwt"}) as response,
    ):
        assert (response.status, (await response.json())["error_code"]) == (429, "RATE_LIMITED")
        assert 1 <= int(response.headers["Retry-After"]) <= 20
    elsewhere = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with (
        aiohttp.ClientSession(connector=elsewhere) as session,
        session.get(gateway.url + STATS, headers={"Authorization": "Bearer not-a-jwt"}) as response,
    ):
        assert response.status == 401


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/api/v1/nowhere", 404, "NOT_FOUND"),
        ("GET", "/api/v1/events", 405, "INVALID_REQUEST"),
        ("DELETE", STATS, 405, "INVALID_REQUEST"),
    ],
)
async def test_errors_sanic_answers_have_the_api_error_body(
    in_process: InProcessAPI, method: str, path: str, status: int, code: str
) -> None:
    """An unknown route or method is answered by Sanic before any route: in the API's shape."""
    answer, body = await in_process(method, path)
    assert (answer, body) == (status, {"error_code": code, "message": body["message"]})
    assert body["message"]

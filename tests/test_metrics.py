"""GET /metrics: each metric moves when its cause happens; JSON logs carry the audit fields."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import uuid4

import aiohttp
import pytest
import socketio
from prometheus_client.parser import text_string_to_metric_families

from tests.support import (
    ADMIN,
    SECRET,
    SERVICE,
    Client,
    RedisProcess,
    ServerProcess,
    api,
    eventually,
    make_token,
    progress_event,
)

ROOT = Path(__file__).resolve().parent.parent
NODE = ROOT / "tests" / "node"
SCRAPE_TOKEN = "scrape-secret-of-at-least-32-bytes"


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(server: ServerProcess, token: str = ADMIN) -> Samples:
    """Every sample of /metrics: (name, sorted labels) -> value."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.url + "/metrics", headers={"Authorization": f"Bearer {token}"}) as response,
    ):
        assert response.status == 200, await response.text()
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        text = await response.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_need_an_admin_token_or_the_metrics_token(
    server: ServerProcess, start_server: Callable[..., ServerProcess]
) -> None:
    assert (await api(server, "GET", "/metrics"))[0] == 401
    assert (await api(server, "GET", "/metrics", SERVICE))[0] == 403
    info = [dict(labels) for name, labels in await scrape(server) if name == "swe_realtime_info"]
    assert info
    assert info[0]["version"]
    gateway = start_server({"JWT_SECRET": SECRET, "METRICS_TOKEN": SCRAPE_TOKEN})
    samples = await scrape(gateway, SCRAPE_TOKEN)
    assert any(name == "swe_realtime_info" for name, _ in samples)
    assert (await api(gateway, "GET", "/metrics", "wrong-secret"))[0] == 401


async def test_each_metric_moves_with_its_cause(server: ServerProcess, clients: Callable[[], Client]) -> None:
    before = await scrape(server)
    project = str(uuid4())
    client = await clients().connect(server.url, make_token(projects=[project]))
    await client.next("connection_established")
    assert (await client.call("subscribe", {"room": f"project:{project}"}))["status"] == "success"
    assert (await client.call("subscribe", {"room": "nope"}))["error_code"] == "INVALID_ROOM"
    body = progress_event(project, 5)
    assert (await api(server, "POST", "/api/v1/events", SERVICE, body))[0] == 202
    await client.next("workflow.progress")
    assert (await api(server, "POST", "/api/v1/events", SERVICE, {**body, "type": "nope"}))[0] == 422
    with pytest.raises(socketio.exceptions.ConnectionError):
        await clients().connect(server.url, "not-a-token")
    after = await scrape(server)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("swe_realtime_connections") >= 1
    assert moved("swe_realtime_connections_opened_total") >= 1
    assert moved("swe_realtime_connections_refused_total", code="AUTH_FAILED") >= 1
    assert moved("swe_realtime_commands_total", command="subscribe", status="success") >= 1
    assert moved("swe_realtime_validation_failures_total", source="command") >= 1
    assert moved("swe_realtime_events_published_total", type="workflow.progress") >= 1
    assert moved("swe_realtime_deliveries_total", type="workflow.progress") >= 1
    assert moved("swe_realtime_events_refused_total", reason="invalid") >= 1
    assert moved("swe_realtime_validation_failures_total", source="publish") >= 1
    assert moved("swe_realtime_publish_to_emit_seconds_count") >= 1
    assert moved("swe_realtime_command_seconds_count", command="subscribe") >= 1
    await client.close()

    def disconnects(samples: Samples) -> float:
        return sum(v for (name, _), v in samples.items() if name == "swe_realtime_disconnects_total")

    async def disconnect_counted() -> bool:
        return disconnects(await scrape(server)) > disconnects(before)

    await eventually(disconnect_counted, 5, interval=0.1, message="the disconnect was not counted")


@pytest.mark.redis
async def test_redis_state_and_reconnects(
    cluster: Callable[..., list[ServerProcess]], private_redis: RedisProcess
) -> None:
    [gateway] = cluster(1, private_redis.url)
    assert value(await scrape(gateway), "swe_realtime_redis_up") == 1

    async def redis_up(expected: float) -> Samples | None:
        samples = await scrape(gateway)
        return samples if value(samples, "swe_realtime_redis_up") == expected else None

    # Deadlines generous for a busy machine: conditions polled, never waited out by a pass.
    private_redis.stop()
    await eventually(lambda: redis_up(0), 30, interval=0.1, message="redis_up stayed 1 with Redis stopped")
    private_redis.start()
    samples = await eventually(lambda: redis_up(1), 30, interval=0.1, message="redis_up stayed 0")
    assert value(samples, "swe_realtime_redis_reconnects_total") >= 1


async def test_json_logs_carry_the_audit_fields(
    start_server: Callable[..., ServerProcess], clients: Callable[[], Client]
) -> None:
    gateway = start_server({"JWT_SECRET": SECRET, "LOG_FORMAT": "json"})
    user = uuid4()
    client = await clients().connect(gateway.url, make_token(user))
    await client.next("connection_established")
    await client.close()

    def audited_connect() -> dict[str, Any] | None:
        records = [json.loads(line) for line in gateway.log().splitlines() if line.strip()]
        return next(
            (r for r in records if r["logger"] == "swe_realtime.audit" and r["message"] == "connect"),
            None,
        )

    connect = await eventually(audited_connect, 5, message="no audit record of the connect")
    assert connect["user"] == str(user)
    assert connect["transport"] == "websocket"
    assert {"time", "level", "connection", "remote"} <= connect.keys()


@pytest.mark.node
def test_vendored_socket_io_client_is_the_npm_package_s() -> None:
    vendored = ROOT / "server" / "inspector" / "vendor" / "socket.io.min.js"
    assert (
        vendored.read_bytes()
        == (NODE / "node_modules" / "socket.io-client" / "dist" / "socket.io.min.js").read_bytes()
    )

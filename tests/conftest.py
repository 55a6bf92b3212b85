"""Fixtures: one shared gateway process per session, checked for errors after every test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from uuid import uuid4

import pytest

from tests.support import LOAD_TEST_LIMITS, SECRET, SHARED_REDIS, Client, RedisProcess, ServerProcess


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(
        tmp_path_factory.mktemp("gateway") / "server.log", {"JWT_SECRET": SECRET, **LOAD_TEST_LIMITS}
    )
    yield server
    assert server.stop(), server.log()


@pytest.fixture
def server(shared_server: ServerProcess) -> Iterator[ServerProcess]:
    """The shared gateway; fails the test if the gateway logged an error while it ran."""
    offset = len(shared_server.log())
    yield shared_server
    assert shared_server.process.poll() is None, "the gateway died"
    assert shared_server.errors_since(offset) == []


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start a private gateway with its own environment; stopped (and checked) at teardown."""
    started: list[ServerProcess] = []

    def start(env: dict[str, str] | None = None, *args: str, https: bool = False) -> ServerProcess:
        process = ServerProcess(tmp_path / f"server-{len(started)}.log", env, *args, https=https)
        started.append(process)
        return process

    yield start
    for process in started:
        errors = process.errors_since(0)
        clean = process.stop()
        assert clean or process.crashed, process.log()
        assert errors == []


@pytest.fixture
async def clients() -> AsyncIterator[Callable[[], Client]]:
    """A factory of recording clients, all disconnected at teardown."""
    made: list[Client] = []

    def make() -> Client:
        client = Client()
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    redis = RedisProcess(tmp_path)
    redis.start()
    yield redis
    redis.stop()


@pytest.fixture
def cluster(start_server: Callable[..., ServerProcess]) -> Callable[..., list[ServerProcess]]:
    """Start N gateways on one Redis channel of their own."""

    def start(count: int, redis_url: str = SHARED_REDIS, channel: str | None = None) -> list[ServerProcess]:
        channel = channel or f"test-{uuid4().hex[:12]}"
        return [
            start_server(
                {
                    "JWT_SECRET": SECRET,
                    "REDIS_URL": redis_url,
                    "REDIS_CHANNEL": channel,
                    "INSTANCE_ID": f"gw{index}",
                }
            )
            for index in range(count)
        ]

    return start

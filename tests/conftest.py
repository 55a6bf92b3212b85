"""Fixtures: one shared gateway process per session, checked for errors after every test."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from uuid import uuid4

import pytest
from sanic import Sanic

from swe_realtime.app import create_app
from swe_realtime.settings import Settings
from tests.support import (
    LOAD_TEST_LIMITS,
    SECRET,
    SHARED_REDIS,
    Client,
    InProcessAPI,
    RedisClusterProcess,
    RedisProcess,
    ServerProcess,
)

with warnings.catch_warnings():
    # sanic-testing 24.6 imports websockets.legacy (deprecated since websockets 14) for its
    # WebSocket test client, which these tests do not use; imported once here, it warns nowhere.
    warnings.filterwarnings("ignore", "websockets.legacy is deprecated", DeprecationWarning)
    importlib.import_module("sanic_testing")

REDIS_FIXTURES = frozenset(
    {"cluster", "private_redis", "redis_cluster", "module_redis_cluster", "replicated_redis_cluster"}
)
PROCESS_FIXTURES = REDIS_FIXTURES | {"server", "shared_server", "start_server", "gateway_url", "packed"}
"""Fixtures that start a process or a server: a test that uses one is not a unit test."""
NOT_UNIT_MARKERS = frozenset({"redis", "node", "browser", "slow"})
NOT_UNIT_MODULES = frozenset(
    {
        # Each of their tests runs a process of its own (the CLI, codegen, uv, node, nginx)
        # or serves a gateway on a socket in the test's own code.
        "test_codegen.py",
        "test_consumers_contracts.py",
        "test_consumers_typescript.py",
        "test_contracts.py",
        "test_deploy.py",
        "test_docs_examples.py",
        "test_embedding.py",
        "test_layers.py",
        "test_packaging.py",
        "test_pubsub.py",
        "test_settings.py",
    }
)
NOT_UNIT_TESTS = frozenset(
    {
        # A gateway served on the test's loop (gateway_in_process), on a real socket.
        "test_refresh_during_a_slow_subscribe",
        "test_refresh_during_a_slow_resume_at_connect",
        "test_closing_a_session_never_waits_for_its_client",
        "test_nothing_follows_the_close_frame_uvicorn_answered",
        "test_a_closed_session_is_let_go_at_once",
        # A process of their own (the CLI under ulimit, an emitter).
        "test_running_short_of_file_descriptors_refuses_sessions_and_says_so",
        "test_write_only_emitter_validates_and_reports_redis_down",
        # Pure, but a second or more each (a hundred thousand connections, hypothesis runs,
        # a ping timeout waited out).
        "test_a_hundred_thousand_connections_are_paged_not_sent_whole",
        "test_token_parser_refuses_cleanly",
        "test_an_event_read_from_its_bytes_is_the_event_parsing_gives",
        "test_a_batch_read_from_its_bytes_is_the_batch_parsing_gives",
        "test_a_paced_replay_without_room_drops_its_client_after_the_ping_timeout",
        "test_a_paced_replay_ends_at_its_next_check_once_its_session_closes",
    }
)
"""Tests of modules that are otherwise unit tests which are not: by function name."""


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """With ``-m unit`` alone (``just check``), the modules of no unit test are not even
    imported: seconds of the loop's CPU went to schemathesis, grimp and the like."""
    if config.option.markexpr == "unit" and collection_path.name in NOT_UNIT_MODULES:
        return True
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that start gateways on Redis are marked redis even where a module forgot to say
    so, for ``-m "not redis"`` to hold on a machine without Redis. A test that starts no
    process, no server and no socket of its own is marked unit (``just check`` runs those)."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if REDIS_FIXTURES & fixtures:
            item.add_marker(pytest.mark.redis)
        if not (
            PROCESS_FIXTURES & fixtures
            or item.path.name in NOT_UNIT_MODULES
            or getattr(item, "originalname", item.name) in NOT_UNIT_TESTS
            or any(item.get_closest_marker(name) for name in NOT_UNIT_MARKERS)
        ):
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(
        tmp_path_factory.mktemp("gateway") / "server.log", {"JWT_SECRET": SECRET, **LOAD_TEST_LIMITS}
    )
    yield server
    assert server.stop(), server.log()


@pytest.fixture
def server(shared_server: ServerProcess) -> Iterator[ServerProcess]:
    """The shared gateway; fails the test if the gateway logged an error while it ran (only
    the lines written during this test count: the log is shared by the whole session)."""
    offset = shared_server.log_size()
    yield shared_server
    assert shared_server.process.poll() is None, "the gateway died"
    assert shared_server.errors_since(offset) == []


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start a private gateway with its own environment; stopped (and checked) at teardown.
    Its log is its own, written during this test only."""
    started: list[ServerProcess] = []

    def start(
        env: dict[str, str] | None = None, *args: str, https: bool = False, wait: bool = True
    ) -> ServerProcess:
        process = ServerProcess(tmp_path / f"server-{len(started)}.log", env, *args, https=https, wait=wait)
        started.append(process)
        return process

    yield start
    for process in started:
        errors = process.errors_since(0)
        clean = process.stop()
        assert clean or process.crashed, process.log()
        assert errors == []


@pytest.fixture(scope="session", autouse=True)
def sanic_test_mode() -> Iterator[None]:
    """Sanic's test mode, for the whole test process: this process builds create_app more than
    once (``in_process``, test_broadcaster), and outside test mode Sanic refuses a second app of
    one name and rewrites its own methods ("touchup") from the rewritten ones, which fails."""
    Sanic.test_mode = True
    yield
    Sanic.test_mode = False


@pytest.fixture
def in_process(monkeypatch: pytest.MonkeyPatch) -> InProcessAPI:
    """``create_app`` in this process, its HTTP routes called without a socket (sanic-testing).
    sanic-testing replaces ``Sanic.__call__`` for good: it is put back at teardown."""
    monkeypatch.setattr(Sanic, "__call__", Sanic.__call__)
    return InProcessAPI(create_app(Settings.from_env({"JWT_SECRET": SECRET})).sanic)


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
def redis_cluster(tmp_path: Path) -> Iterator[RedisClusterProcess]:
    """A private three-master Redis Cluster."""
    cluster = RedisClusterProcess(tmp_path)
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def module_redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterProcess]:
    """A private three-master Redis Cluster shared by the tests of one module: forming one
    takes seconds. Only for tests that leave it whole (a slot moved with its keys is whole;
    a node stopped is not) and keep to key prefixes (REDIS_CHANNEL) of their own."""
    cluster = RedisClusterProcess(tmp_path_factory.mktemp("redis-cluster"))
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def replicated_redis_cluster(tmp_path: Path) -> Iterator[RedisClusterProcess]:
    """A private Redis Cluster of three masters with one replica each (six nodes), for
    failovers: a master stopped, its replica promoted."""
    cluster = RedisClusterProcess(tmp_path, replicas=1)
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    redis = RedisProcess(tmp_path)
    redis.start()
    yield redis
    redis.stop()


@pytest.fixture
def cluster(start_server: Callable[..., ServerProcess]) -> Callable[..., list[ServerProcess]]:
    """Start N gateways on one Redis channel of their own; ``env``: more variables for each.
    They start side by side, and are returned once all are healthy."""

    def start(
        count: int, redis_url: str = SHARED_REDIS, channel: str | None = None, env: Mapping[str, str] = {}
    ) -> list[ServerProcess]:
        channel = channel or f"test-{uuid4().hex[:12]}"
        gateways = [
            start_server(
                {
                    "JWT_SECRET": SECRET,
                    "REDIS_URL": redis_url,
                    "REDIS_CHANNEL": channel,
                    "INSTANCE_ID": f"gw{index}",
                    **env,
                },
                wait=False,
            )
            for index in range(count)
        ]
        for gateway in gateways:
            gateway.wait_healthy()
        return gateways

    return start

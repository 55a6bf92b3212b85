"""Redis misbehaving under two gateways: slow, its pub/sub connections killed, paused, full.

Whatever happens, an event answered 202 reaches every member once and in order, an event
answered 503 reaches nobody, rooms come back subscribed and caught up, and the log says what
happened once, at WARNING, not per event. Gateways run as processes on a private Redis;
clients are python-socketio clients; events are published over HTTP on the first gateway and
received on the second.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any
from uuid import uuid4

import pytest
import redis.asyncio

from tests.support import (
    SERVICE,
    Client,
    RedisProcess,
    ServerProcess,
    api,
    member,
    progress_event,
    publish,
    received,
    wait_ready,
)

pytestmark = [pytest.mark.redis, pytest.mark.slow]

WARNING = re.compile(r" WARNING swe_realtime\.redis: .*")


def numbered(project: str, number: int) -> dict[str, Any]:
    """A workflow.progress event of ``project`` counted by its ``total_steps``."""
    event = progress_event(project, 50)
    event["data"]["total_steps"] = number
    return event


async def attempt(gateway: ServerProcess, project: str, number: int) -> tuple[int, Any]:
    """Publish event ``number``: (status, body), whatever the answer."""
    return await api(gateway, "POST", "/api/v1/events", SERVICE, numbered(project, number))


async def watched(
    gateways: list[ServerProcess], clients: Callable[[], Client]
) -> tuple[ServerProcess, ServerProcess, str, Client]:
    """Two gateways, a project, and a member of it on the second that has received the
    first event published on the first (so Redis's clock is known: appends carry deadlines)."""
    first, second = gateways
    project = str(uuid4())
    watcher = await member(second.url, clients, project)
    await publish(first, numbered(project, 0))
    assert await received(watcher, 1, field="total_steps", settle=0.1) == [0]
    return first, second, project, watcher


def warnings(gateway: ServerProcess) -> list[str]:
    return WARNING.findall(gateway.log())


@contextlib.asynccontextmanager
async def admin_client(url: str) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.mark.parametrize("before", [0, 1], ids=["a room without events yet", "a room with events"])
async def test_killed_pubsub_connections_are_subscribed_again_and_caught_up(
    cluster: Callable[..., list[ServerProcess]],
    clients: Callable[[], Client],
    private_redis: RedisProcess,
    before: int,
) -> None:
    first, second = cluster(2, redis_url=private_redis.url)
    project = str(uuid4())
    watcher = await member(second.url, clients, project)
    for number in range(before):
        await publish(first, numbered(project, number))
    assert await received(watcher, before, field="total_steps", settle=0.1) == list(range(before))

    async with admin_client(private_redis.url) as admin:
        killed = await admin.client_kill_filter(_type="pubsub")
    assert killed >= 2  # at least the second gateway's room link and each admin bus
    published = list(range(before, before + 10))
    for number in published:  # while the subscription is being made again
        await publish(first, numbered(project, number))

    assert await received(watcher, 10, field="total_steps") == published
    await wait_ready(second, 200)
    # Said once, and not as an outage: Redis was there all along.
    broke = [line for line in warnings(second) if "pub/sub connection" in line]
    assert len(broke) == 1, warnings(second)
    assert not any("unreachable" in line for gateway in (first, second) for line in warnings(gateway))


async def test_a_paused_redis_refuses_publishes_and_delivers_none_of_them(
    cluster: Callable[..., list[ServerProcess]], clients: Callable[[], Client], private_redis: RedisProcess
) -> None:
    first, _, project, watcher = await watched(cluster(2, redis_url=private_redis.url), clients)
    async with admin_client(private_redis.url) as admin:
        # Paused well past the appends' deadline (PUBLISH_TIMEOUT, 2 s, counted from when the
        # gateway sends them): an append that a busy machine delays by a second or two still
        # meets Redis paused, and still expires before Redis runs it.
        await admin.client_pause(5000, all=True)
    refused = await asyncio.gather(*(attempt(first, project, number) for number in (1, 2, 3)))
    for status, body in refused:
        assert status == 503, body
        assert body["error_code"] == "SERVICE_UNAVAILABLE"
        assert "0 of 1 sent" in body["message"]

    await wait_ready(first, 200, timeout=30)
    await publish(first, numbered(project, 4))
    # Redis ran the paused appends once it woke: past their deadline, it took none of them.
    assert await received(watcher, 1, field="total_steps", settle=1.0) == [4]
    said = warnings(first)
    assert len([line for line in said if "is unreachable" in line]) == 1, said
    assert len([line for line in said if "reachable again" in line]) == 1, said


async def test_a_full_redis_refuses_publishes_with_the_reason(
    cluster: Callable[..., list[ServerProcess]], clients: Callable[[], Client], private_redis: RedisProcess
) -> None:
    first, _, project, watcher = await watched(cluster(2, redis_url=private_redis.url), clients)

    async with admin_client(private_redis.url) as admin:
        await admin.config_set("maxmemory-policy", "noeviction")
        await admin.config_set("maxmemory", "1")
        try:
            for number in (1, 2):
                status, body = await attempt(first, project, number)
                assert status == 503, body
                assert body["error_code"] == "SERVICE_UNAVAILABLE"
        finally:
            await admin.config_set("maxmemory", "0")
    await publish(first, numbered(project, 3))
    assert await received(watcher, 1, field="total_steps", settle=0.5) == [3]
    said = warnings(first)
    refusing = [line for line in said if "refuses commands" in line]
    assert len(refusing) == 1, said
    assert "maxmemory" in refusing[0]


class SlowProxy:
    """A TCP proxy to Redis that holds every chunk ``delay`` seconds in each direction, in
    order: a Redis far away, or a busy network. It runs on a loop of its own, in a thread:
    the test's loop blocks while it starts and stops gateways, and the proxy must not."""

    def __init__(self, port: int, delay: float) -> None:
        self._port = port
        self._delay = delay
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._carrying: set[asyncio.Future[Any]] = set()
        self.url = ""

    def __enter__(self) -> SlowProxy:
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._accept, "127.0.0.1", 0), self._loop
        )
        self._server = started.result(10)
        self.url = f"redis://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/0"
        return self

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _close(self) -> None:
        """Every connection cut, every task ended: nothing left for the garbage collector."""
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        for task in self._carrying:
            task.cancel()
        await asyncio.gather(*self._carrying, return_exceptions=True)
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self._port)
        self._writers.add(upstream_writer)
        carrying = asyncio.gather(
            self._carry(reader, upstream_writer), self._carry(upstream_reader, writer), return_exceptions=True
        )
        self._carrying.add(carrying)
        await carrying

    async def _carry(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def forward() -> None:
            while True:
                due, data = await queue.get()
                await asyncio.sleep(max(0.0, due - loop.time()))  # the delay this proxy adds
                if not data:
                    sink.close()
                    return
                sink.write(data)
                await sink.drain()

        forwarding = asyncio.create_task(forward())
        try:
            while data := await source.read(65536):
                queue.put_nowait((loop.time() + self._delay, data))
            queue.put_nowait((loop.time() + self._delay, b""))
            await forwarding
        finally:
            forwarding.cancel()
            await asyncio.gather(forwarding, return_exceptions=True)


async def test_a_slow_redis_delivers_everything_in_order_without_an_alarm(
    cluster: Callable[..., list[ServerProcess]], clients: Callable[[], Client], private_redis: RedisProcess
) -> None:
    with SlowProxy(private_redis.port, 0.05) as slow:
        first, second = cluster(2, redis_url=slow.url)
        project = str(uuid4())
        watcher = await member(second.url, clients, project)
        for number in range(20):
            await publish(first, numbered(project, number))
        assert await received(watcher, 20, field="total_steps") == list(range(20))
        await wait_ready(second, 200)
        assert warnings(first) == warnings(second) == []
        for gateway in (first, second):  # while the proxy still carries their goodbyes
            gateway.stop()

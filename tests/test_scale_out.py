"""Scaling out: rooms on channels of their own, sharded over a Redis Cluster, nothing lost.

Gateways run as real processes on a private Redis or a private three-master Redis Cluster;
clients are real python-socketio clients; every event is published over HTTP and counted
at the clients by its ``progress`` number.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from uuid import uuid4

import pytest
import redis.asyncio

from tests.support import (
    LOAD_TEST_LIMITS,
    SECRET,
    SERVICE,
    Client,
    RedisClusterProcess,
    RedisProcess,
    ServerProcess,
    api,
    eventually,
    make_token,
    member,
    numbered,
    publish,
    received,
    shard_channels,
    stats,
    wait_ready,
)

pytestmark = [pytest.mark.redis, pytest.mark.slow]


async def test_events_reach_only_instances_serving_their_rooms(
    cluster: Callable[..., list[ServerProcess]], clients: Callable[[], Client], private_redis: RedisProcess
) -> None:
    channel = f"test-{uuid4().hex[:12]}"
    first, second = cluster(2, redis_url=private_redis.url, channel=channel)
    project = str(uuid4())
    watcher = await member(first.url, clients, project)
    idle = await clients().connect(second.url, make_token())
    await idle.next("connection_established")
    room_channel = f"{{{channel}:project:{project}}}:events"
    assert room_channel in await shard_channels(channel, private_redis.url)
    # The second instance is subscribed to its connection's own rooms, not the project's.
    for progress in range(20):
        await publish(first, numbered(project, progress))
    assert await received(watcher, 20, field="total_steps") == list(range(20))
    assert idle.events["workflow.progress"].qsize() == 0

    # The last member leaves: the sweep unsubscribes the room.
    assert (await watcher.call("unsubscribe", {"room": f"project:{project}"}))["status"] == "success"

    async def unsubscribed() -> bool:
        return room_channel not in await shard_channels(channel, private_redis.url)

    await eventually(unsubscribed, message="the room's channel was not unsubscribed")


async def test_room_churn_leaves_no_subscription_and_no_key_without_expiry(
    start_server: Callable[..., ServerProcess], clients: Callable[[], Client], private_redis: RedisProcess
) -> None:
    channel = f"test-{uuid4().hex[:12]}"
    env = {"REDIS_URL": private_redis.url, "REDIS_CHANNEL": channel}
    gateway = start_server({"JWT_SECRET": SECRET, **LOAD_TEST_LIMITS, **env})
    projects = [str(uuid4()) for _ in range(50)]
    churners = []
    for _ in range(4):
        client = await clients().connect(gateway.url, make_token(projects=projects))
        await client.next("connection_established")
        churners.append(client)
    baseline = await shard_channels(channel, private_redis.url)

    async def churn(client: Client) -> None:
        for project in itertools.islice(itertools.cycle(projects), 250):
            for command in ("subscribe", "unsubscribe"):
                assert (await client.call(command, {"room": f"project:{project}"}))["status"] == "success"

    await asyncio.gather(*(churn(client) for client in churners))

    async def settled() -> bool:
        return await shard_channels(channel, private_redis.url) == baseline

    await eventually(settled, message="subscriptions outlived the rooms' last members")
    store = redis.asyncio.Redis.from_url(private_redis.url)
    try:
        keys = [key async for key in store.scan_iter(match=f"{{{channel}:*")]
        assert keys, "subscribing reads the rooms' positions, which makes their meta keys"
        assert all([await store.pttl(key) > 0 for key in keys])  # every one expires
    finally:
        await store.aclose()


async def test_redis_restart_under_steady_publishing_loses_nothing_accepted(
    cluster: Callable[..., list[ServerProcess]], clients: Callable[[], Client], private_redis: RedisProcess
) -> None:
    first, second = cluster(2, redis_url=private_redis.url)
    project = str(uuid4())
    watchers = [await member(gateway.url, clients, project) for gateway in (first, second)]
    accepted: list[int] = []
    refused = 0
    stop = asyncio.Event()

    async def publish_steadily() -> None:
        nonlocal refused
        for progress in itertools.count():
            if stop.is_set():
                return
            status, _ = await api(first, "POST", "/api/v1/events", SERVICE, numbered(project, progress))
            if status == 202:
                accepted.append(progress)
            else:
                assert status == 503
                refused += 1
            await asyncio.sleep(0.02)  # a steady publisher, not a synchronisation

    publishing = asyncio.create_task(publish_steadily())
    await eventually(lambda: len(accepted) >= 50, message="publishing did not start")
    private_redis.stop()
    await eventually(lambda: refused > 0, message="no publish was refused while Redis was down")
    private_redis.start()
    before_restart = len(accepted)

    def resumed() -> bool:
        """Fifty more accepted (not a fixed count of publishes, which a busy machine spends
        seconds on): deliveries from before, during and after the restart are all checked."""
        if publishing.done():
            publishing.result()  # the publisher failed: its error, not a timeout
        return len(accepted) >= before_restart + 50

    await eventually(resumed, 60, message="publishing did not resume")
    stop.set()
    await publishing
    for gateway in (first, second):
        await wait_ready(gateway, 200)
    assert len(accepted) > 100
    for watcher in watchers:
        assert (
            await received(watcher, len(accepted), field="total_steps") == accepted
        )  # none missing, none doubled


async def test_cluster_delivers_once_recovers_across_instances_and_spreads_rooms(
    cluster: Callable[..., list[ServerProcess]],
    clients: Callable[[], Client],
    redis_cluster: RedisClusterProcess,
) -> None:
    channel = f"test-{uuid4().hex[:12]}"
    gateways = cluster(3, redis_url=redis_cluster.url, channel=channel)
    # Enough rooms that every master holds one (12 missed one master in about 2% of runs).
    projects = [str(uuid4()) for _ in range(30)]
    # One client per gateway, each in all the projects' rooms.
    readers = []
    for gateway in gateways:
        reader = await clients().connect(gateway.url, make_token(projects=projects))
        await reader.next("connection_established")
        for project in projects:
            assert (await reader.call("subscribe", {"room": f"project:{project}"}))["status"] == "success"
        readers.append(reader)
    for progress, project in enumerate(projects * 3):
        await publish(gateways[progress % 3], numbered(project, progress))
    for reader in readers:
        assert sorted(await received(reader, len(projects) * 3, field="total_steps")) == list(
            range(len(projects) * 3)
        )
    # Stats sum the three instances (their heartbeats share one slot).
    summed = await stats(gateways[0])
    assert summed["partial"] is False
    assert len(summed["instances"]) == 3
    # The rooms' streams spread over the three masters.
    assert all(count > 0 for count in redis_cluster.keys_per_node(f"{{{channel}:project:*"))

    # A client that drops out of the first gateway resumes on the third.
    project = projects[0]
    leaver = await member(gateways[0].url, clients, project)
    await publish(gateways[1], numbered(project, 1000))
    last = (await leaver.next("workflow.progress"))["positions"][f"project:{project}"]
    await leaver.close()
    for progress in (1001, 1002, 1003):
        await publish(gateways[1], numbered(project, progress))
    back = await clients().connect(
        gateways[2].url,
        auth={"token": make_token(projects=[project]), "positions": {f"project:{project}": last}},
    )
    welcome = await back.next("connection_established")
    assert welcome["data"]["recovery"][0]["recovered"] is True
    assert await received(back, 3, field="total_steps") == [1001, 1002, 1003]


async def test_cluster_master_killed_refuses_publishes_until_it_is_back(
    cluster: Callable[..., list[ServerProcess]],
    clients: Callable[[], Client],
    redis_cluster: RedisClusterProcess,
) -> None:
    gateways = cluster(2, redis_url=redis_cluster.url)
    project = str(uuid4())
    watcher = await member(gateways[1].url, clients, project)
    numbers = itertools.count()
    accepted: list[int] = []
    statuses: list[int] = []

    async def probe() -> int:
        number = next(numbers)
        status, _ = await api(gateways[0], "POST", "/api/v1/events", SERVICE, numbered(project, number))
        assert status in (202, 503)
        if status == 202:
            accepted.append(number)
        statuses.append(status)
        return status

    assert await probe() == 202
    victim = redis_cluster.nodes[1]
    victim.stop()

    async def refused() -> bool:
        return await probe() == 503

    await eventually(refused, 30, interval=0.5, message="publishing kept succeeding with a master down")
    victim.start()

    async def back() -> bool:
        return await probe() == 202

    # The nodes take a few node timeouts (2 s each) to take the master back, more on a busy
    # machine: a deadline well past that, which a test that passes never waits out.
    await eventually(back, 60, interval=0.5, message="publishing did not come back with the master")
    assert 503 in statuses
    # Once ready again, the watcher's instance has caught up: what was accepted reached the
    # watcher once and in order; what was refused never does.
    await wait_ready(gateways[1], 200, timeout=60)
    assert await received(watcher, len(accepted), field="total_steps") == accepted


async def test_history_off_with_redis_delivers_across_instances(
    cluster: Callable[..., list[ServerProcess]], clients: Callable[[], Client], private_redis: RedisProcess
) -> None:
    first, second = cluster(2, redis_url=private_redis.url, env={"HISTORY_SIZE": "0"})
    project = str(uuid4())
    watcher = await member(second.url, clients, project)
    await publish(first, numbered(project, 7))
    event = await watcher.next("workflow.progress")
    assert event["data"]["total_steps"] == 7
    assert event["positions"] == {}


async def test_a_connect_storm_on_a_fresh_instance_subscribes_every_room(
    cluster: Callable[..., list[ServerProcess]], private_redis: RedisProcess
) -> None:
    first, second = cluster(2, redis_url=private_redis.url, env=LOAD_TEST_LIMITS)
    users = [uuid4() for _ in range(40)]
    storm = [Client() for _ in users]
    try:
        # All at once, while the fresh instance is still making its pub/sub connection.
        await asyncio.gather(
            *(client.connect(second.url, make_token(user)) for client, user in zip(storm, users, strict=True))
        )
        for user in users:
            body = {"type": "project.deleted", "data": {"project_id": str(uuid4()), "deleted_by": str(user)}}
            await publish(first, body)
        for client in storm:
            assert (await client.next("project.deleted"))["data"]["deleted_by"] in {str(u) for u in users}
    finally:
        await asyncio.gather(*(client.close() for client in storm))

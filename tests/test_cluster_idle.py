"""Rooms stay live after idle periods: the regressions of issue #24.

With ``REDIS_URL`` set, rooms went silent after a quiet spell while every publish still
answered 202. An instance whose rooms had all been swept held a pub/sub connection with no
subscription; the next join sent its SSUBSCRIBE from its own task on that connection, redis-py
ran its health check there first (it reads), and the read clashed with the shard's reader task
reading the same connection. The clash was logged as a Redis outage and the subscription was
never sent. No test had idled past the health check interval, so the suite never saw it.

Here a user does what the report did, against real gateway processes and real clients: in
each round a new connection of the same user joins the same project room on one instance,
events are published on the other to the project room, to the user's room and to ``global``,
the connection leaves, and everything idles past every interval the gateways keep (health
check, room sweep, heartbeat, presence grace). The intervals are cut to tenths of a second
through their settings, on one Redis and on a Redis Cluster; one slow test keeps the defaults.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID, uuid4

import pytest

from tests.support import (
    ADMIN,
    PAST_SHORT_INTERVALS,
    REDIS_TROUBLE,
    SHORT_INTERVALS,
    Client,
    RedisClusterProcess,
    RedisProcess,
    ServerProcess,
    api,
    event_ids,
    eventually,
    make_token,
    progress_event,
    project_update,
    publish,
    shard_channels,
    subscribed,
)

pytestmark = pytest.mark.redis
# Each test takes its Redis fixture first, so that it is torn down after the gateways.

ROUNDS = 4
PAST_DEFAULT_INTERVALS = 12.0
"""Seconds: longer than the default health check (5 s; redis-py's own was 10 s), sweep (1 s),
heartbeat life (6 s) and presence grace (6 s)."""


async def test_rooms_stay_live_after_idle_periods_on_one_redis(
    private_redis: RedisProcess, cluster: Callable[..., list[ServerProcess]], clients: Callable[[], Client]
) -> None:
    channel = f"test-{uuid4().hex[:12]}"
    gateways = cluster(2, redis_url=private_redis.url, channel=channel, env=SHORT_INTERVALS)
    await idle_rounds(gateways, clients, channel, [private_redis.url], ROUNDS, PAST_SHORT_INTERVALS)


async def test_rooms_stay_live_after_idle_periods_on_a_redis_cluster(
    redis_cluster: RedisClusterProcess,
    cluster: Callable[..., list[ServerProcess]],
    clients: Callable[[], Client],
) -> None:
    channel = f"test-{uuid4().hex[:12]}"
    gateways = cluster(2, redis_url=redis_cluster.url, channel=channel, env=SHORT_INTERVALS)
    nodes = [node.url for node in redis_cluster.nodes]
    await idle_rounds(gateways, clients, channel, nodes, ROUNDS, PAST_SHORT_INTERVALS)


@pytest.mark.slow
async def test_rooms_stay_live_after_idle_periods_with_the_default_intervals(
    private_redis: RedisProcess, cluster: Callable[..., list[ServerProcess]], clients: Callable[[], Client]
) -> None:
    """What a user of ``just serve`` saw: nothing set but the Redis URL, idle for 12 s once.

    One idle period past every default interval is what the bug needed (the join after it
    met a connection due for its health check); the tests above, with short intervals, idle
    three times, and the soak does so many times over."""
    channel = f"test-{uuid4().hex[:12]}"
    gateways = cluster(2, redis_url=private_redis.url, channel=channel)
    await idle_rounds(gateways, clients, channel, [private_redis.url], 2, PAST_DEFAULT_INTERVALS)


async def idle_rounds(
    gateways: Sequence[ServerProcess],
    clients: Callable[[], Client],
    channel: str,
    redis_urls: Sequence[str],
    rounds: int,
    idle: float,
) -> None:
    """``rounds`` rounds of join, publish, check and leave on the second gateway, publishing
    on the first, with ``idle`` seconds of quiet between them."""
    publisher, joiner = gateways
    user, project = uuid4(), str(uuid4())
    room = f"project:{project}"
    room_channel = f"{{{channel}:{room}}}:events"
    for number in range(1, rounds + 1):
        what = f"round {number} of {rounds}"
        client = await clients().connect(joiner.url, make_token(user, projects=[project]))
        await client.next("connection_established")
        assert subscribed(await client.call("subscribe", {"room": room}), room), what
        await complete_admin_answers(gateways, user, what)

        # One event to the project and the user's room, one to the project, one to global;
        # then the same again as markers: once a room's marker is in, so is everything
        # published to that room before it, duplicates included.
        events = [project_update(project, user), progress_event(project), progress_event(None)]
        markers = [project_update(project, user), progress_event(project), progress_event(None)]
        receipts = [await publish(publisher, body) for body in events + markers]
        await arrived(client, receipts, f"{what}: events published on one instance to a member on the other")
        counts = Counter(event_ids(client.trace))
        assert [counts[receipt["id"]] for receipt in receipts[: len(events)]] == [1] * len(events), what

        async def listened() -> bool:
            return room_channel in await shard_channels(channel, *redis_urls)

        await eventually(listened, message=f"{what}: no subscriber on Redis for {room_channel}")
        for gateway in gateways:
            assert gateway.matching(REDIS_TROUBLE) == [], f"{what}: {gateway.url} took Redis for lost"

        await client.close()

        async def swept() -> bool:
            return not await shard_channels(channel, *redis_urls)

        await eventually(swept, message=f"{what}: the rooms were not unsubscribed after the member left")
        if number < rounds:
            await asyncio.sleep(idle)  # the idle period under test, not a wait for anything


async def arrived(client: Client, receipts: Sequence[dict[str, Any]], what: str) -> None:
    """Until ``client`` has received every event of ``receipts``; else fail naming the missing."""

    def missing() -> list[str]:
        seen = set(event_ids(client.trace))
        return [f"{r['type']} to {' + '.join(r['rooms'])}" for r in receipts if r["id"] not in seen]

    try:
        await eventually(lambda: not missing(), 10)
    except AssertionError:
        lost = missing()
        raise AssertionError(f"{what}: {len(lost)} of {len(receipts)} never arrived: {lost}") from None


async def complete_admin_answers(gateways: Sequence[ServerProcess], user: UUID, what: str) -> None:
    """Each instance, asked for the user's connections, answers for the whole cluster."""
    for gateway in gateways:
        status, body = await api(gateway, "GET", f"/api/v1/connections?user={user}", ADMIN)
        assert (status, body["partial"], body["total"]) == (200, False, 1), f"{what}: {gateway.url}: {body}"

"""The admin API (issue 18): connections listed, filtered and paged; one closed, its client
told ADMIN_DISCONNECT; a room's members, position and last events; the instances' state and
timeline; all over the cluster through Redis; bad input met with 401/403/404/422/429."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from types import SimpleNamespace
from typing import Any
from uuid import UUID, uuid4

import pytest
from redis.asyncio import Redis
from redis.crc import key_slot

from swe_realtime.cluster.admin_bus import RedisBus
from swe_realtime.cluster.connection import connect
from swe_realtime.cluster.stats import Roster
from swe_realtime.ops.operator import ConnectionQuery, Operator, merged
from swe_realtime.ops.timeline import Timeline
from swe_realtime.sessions.auth import Principal
from swe_realtime.sessions.limits import TokenBucket
from swe_realtime.sessions.registry import Connection, Registry
from swe_realtime.settings import RedisSettings
from swe_realtime.telemetry import metrics
from tests.support import (
    ADMIN,
    SECRET,
    SERVICE,
    SHARED_REDIS,
    Client,
    InProcessAPI,
    RedisClusterProcess,
    RedisProcess,
    ServerProcess,
    api,
    eventually,
    make_token,
    member,
    progress_event,
)


async def connected(
    clients: Callable[[], Client], server: ServerProcess, user: UUID, **claims: Any
) -> Client:
    client = await clients().connect(server.url, make_token(user, **claims))
    await client.next("connection_established")
    return client


def sid(client: Client) -> str:
    value = client.sio.get_sid("/ws")
    assert value is not None
    return str(value)


async def test_admin_routes_refuse_bad_input(server: ServerProcess) -> None:
    routes = [
        ("GET", "/api/v1/connections"),
        ("DELETE", "/api/v1/connections/abc"),
        ("GET", f"/api/v1/rooms/project:{uuid4()}"),
        ("GET", "/api/v1/instances"),
    ]
    for method, path in routes:
        status, body = await api(server, method, path)
        assert (status, body["error_code"]) == (401, "AUTH_MISSING"), path
        for token in (SERVICE, make_token(), make_token(roles=["agent"])):
            status, body = await api(server, method, path, token)
            assert (status, body["error_code"]) == (403, "PERMISSION_DENIED"), path
    for path, code in [
        ("/api/v1/rooms/project:not-a-uuid", "INVALID_ROOM"),
        ("/api/v1/rooms/lobby", "INVALID_ROOM"),
        ("/api/v1/connections?room=team:1", "INVALID_ROOM"),
        ("/api/v1/connections?room=", "INVALID_ROOM"),
        ("/api/v1/connections?usr=" + str(uuid4()), "INVALID_REQUEST"),
        ("/api/v1/connections?user=bob", "INVALID_REQUEST"),
        ("/api/v1/connections?limit=0", "INVALID_REQUEST"),
        ("/api/v1/connections?limit=1001", "INVALID_REQUEST"),
        ("/api/v1/connections?limit=ten", "INVALID_REQUEST"),
        (f"/api/v1/rooms/user:{uuid4()}?events=101", "INVALID_REQUEST"),
        ("/api/v1/instances?since=yesterday", "INVALID_REQUEST"),
    ]:
        status, body = await api(server, "GET", path, ADMIN)
        assert (status, body["error_code"]) == (422, code), path
    for unknown in ("abc", "x" * 500, "%3Cscript%3E"):
        status, body = await api(server, "DELETE", f"/api/v1/connections/{unknown}", ADMIN)
        assert (status, body["error_code"]) == (404, "NOT_FOUND"), unknown


@pytest.mark.parametrize(
    "query",
    [
        "/api/v1/connections?limit=%205",  # a space
        "/api/v1/connections?limit=5%20",
        "/api/v1/connections?limit=%D9%A5",  # an Arabic-Indic five
        "/api/v1/connections?limit=1_000",
        "/api/v1/connections?limit=%2B5",  # a sign
        "/api/v1/connections?user=urn:uuid:{user}",
        "/api/v1/connections?user=%7B{user}%7D",  # in braces
        "/api/v1/connections?user={user.hex}",  # no hyphens
        "/api/v1/rooms/user:{user}?events=-0",
        "/api/v1/rooms/user:{user}?events=%2B1",
        "/api/v1/rooms/user:{user}?events=1_0",
        "/api/v1/instances?since=1_000",
        "/api/v1/instances?since=%201",
        "/api/v1/instances?since=%D9%A1",
    ],
)
async def test_admin_parameters_are_read_strictly(in_process: InProcessAPI, query: str) -> None:
    """Issue 26: only the forms the API document names (ASCII digits, a UUID's 8-4-4-4-12 hex
    form), so that what a proxy, a log or a cache key sees is what the gateway reads."""
    user = uuid4()
    status, body = await in_process("GET", query.format(user=user), ADMIN)
    assert (status, body["error_code"]) == (422, "INVALID_REQUEST"), query


async def test_admin_parameters_in_their_plain_forms_are_read(in_process: InProcessAPI) -> None:
    user = uuid4()
    for query in (
        f"/api/v1/connections?limit=05&user={user}",
        f"/api/v1/connections?user={str(user).upper()}",
        f"/api/v1/rooms/user:{user}?events=0",
        "/api/v1/instances?since=1733600000.25",
    ):
        status, body = await in_process("GET", query, ADMIN)
        assert status == 200, (query, body)


async def test_connections_are_listed_by_user_and_room_and_paged(
    server: ServerProcess, clients: Callable[[], Client]
) -> None:
    user, other, project = uuid4(), uuid4(), str(uuid4())
    mine = [await connected(clients, server, user) for _ in range(5)]
    theirs = [await member(server.url, clients, project) for _ in range(2)]
    await connected(clients, server, other)

    status, body = await api(server, "GET", f"/api/v1/connections?user={user}", ADMIN)
    assert status == 200, body
    assert (body["total"], body["next"], body["partial"]) == (5, None, False)
    assert [c["id"] for c in body["connections"]] == sorted(sid(client) for client in mine)
    first = body["connections"][0]
    assert first["user"] == str(user)
    assert first["transport"] == "websocket"
    assert first["remote"].startswith("127.0.0.1:")
    assert first["rooms"] == sorted([f"user:{user}", "global"])
    assert first["unread_packets"] == 0
    assert abs(time.time() - datetime.fromisoformat(first["connected_at"]).timestamp()) < 60

    pages: list[str] = []
    after = ""
    while True:
        status, body = await api(
            server, "GET", f"/api/v1/connections?user={user}&limit=2&after={after}", ADMIN
        )
        assert (status, body["total"]) == (200, 5)
        assert len(body["connections"]) <= 2
        pages += [c["id"] for c in body["connections"]]
        if body["next"] is None:
            break
        after = body["next"]
    assert pages == sorted(sid(client) for client in mine)

    status, body = await api(server, "GET", f"/api/v1/connections?room=project:{project}", ADMIN)
    assert status == 200
    assert sorted(c["id"] for c in body["connections"]) == sorted(sid(client) for client in theirs)


async def test_a_closed_connection_sees_admin_disconnect(
    server: ServerProcess, clients: Callable[[], Client]
) -> None:
    client = await connected(clients, server, uuid4())
    gone = asyncio.Event()
    client.sio.on("disconnect", gone.set, namespace="/ws")
    target = sid(client)
    status, body = await api(server, "DELETE", f"/api/v1/connections/{target}", ADMIN)
    assert (status, body) == (200, {"id": target, "instance": body["instance"]})
    notice = await client.next("connection_error")
    assert notice["data"]["error_code"] == "ADMIN_DISCONNECT"
    assert notice["data"]["connection_id"] == target
    await asyncio.wait_for(gone.wait(), 5)
    status, body = await api(server, "DELETE", f"/api/v1/connections/{target}", ADMIN)
    assert (status, body["error_code"]) == (404, "NOT_FOUND")


async def test_a_room_shows_members_position_and_last_events(
    server: ServerProcess, clients: Callable[[], Client]
) -> None:
    project = str(uuid4())
    listener = await member(server.url, clients, project)
    ids = []
    for progress in (10, 20, 30):
        status, receipt = await api(
            server, "POST", "/api/v1/events", SERVICE, progress_event(project, progress)
        )
        assert status == 202
        ids.append(receipt["id"])
    status, body = await api(server, "GET", f"/api/v1/rooms/project:{project}?events=2", ADMIN)
    assert status == 200, body
    assert body["room"] == f"project:{project}"
    assert body["position"]["offset"] == 3
    assert [event["id"] for event in body["events"]] == ids[1:]
    assert body["events"][-1]["data"]["progress"] == 30
    assert (body["members"], list(body["instances"].values())) == (1, [1])
    assert [c["id"] for c in body["connections"]] == [sid(listener)]


async def test_instances_report_their_state_and_a_moving_timeline(
    start_server: Callable[..., ServerProcess],
) -> None:
    gateway = start_server(
        {"JWT_SECRET": SECRET, "INSTANCE_ID": "gw-timeline", "ADMIN_REQUESTS_PER_SECOND": "100"}
    )
    status, body = await api(gateway, "GET", "/api/v1/instances", ADMIN)
    assert status == 200, body
    (instance,) = body["instances"]
    assert (instance["id"], instance["redis"], body["step"]) == ("gw-timeline", "none", 2.0)
    assert instance["rss_bytes"] > 10_000_000
    assert instance["uptime_seconds"] > 0

    async def samples() -> list[list[float]]:
        status, body = await api(gateway, "GET", "/api/v1/instances?since=0", ADMIN)
        assert status == 200, body
        found: list[list[float]] = body["instances"][0]["samples"]
        return found

    first = (await eventually(samples, timeout=10, interval=0.5))[-1][0]
    project = str(uuid4())
    for _ in range(10):
        assert (await api(gateway, "POST", "/api/v1/events", SERVICE, progress_event(project)))[0] == 202

    async def published() -> list[list[float]]:
        return [sample for sample in await samples() if sample[2] > 0]

    await eventually(published, timeout=10, interval=0.5)
    notes = [sample for sample in await samples() if sample[0] >= first]
    assert all(sample[0] % 2 == 0 for sample in notes)  # at multiples of the step, each once
    assert all(later[0] > earlier[0] for earlier, later in itertools.pairwise(notes))
    counted = sum(later[2] * (later[0] - earlier[0]) for earlier, later in itertools.pairwise(notes))
    assert counted == pytest.approx(10, rel=0.1)  # the rates over their intervals add up to the events


async def test_admin_requests_are_rate_limited(start_server: Callable[..., ServerProcess]) -> None:
    gateway = start_server({"JWT_SECRET": SECRET, "ADMIN_REQUESTS_PER_SECOND": "2"})
    # All at once: one after the other, a busy machine could space them enough for the
    # bucket to refill between them, and none would be refused.
    answers = await asyncio.gather(*(api(gateway, "GET", "/api/v1/connections", ADMIN) for _ in range(8)))
    statuses = [status for status, _ in answers]
    assert statuses.count(200) >= 4  # a burst of twice the rate
    assert set(statuses) == {200, 429}, statuses
    assert {body["error_code"] for status, body in answers if status == 429} == {"RATE_LIMITED"}
    other_admin = make_token(roles=["admin"])
    assert (await api(gateway, "GET", "/api/v1/connections", other_admin))[0] == 200


async def cluster_wide(gateways: list[ServerProcess], clients: Callable[[], Client]) -> None:
    """Through the first gateway: list the connections of both, read a room over both, see
    both instances, and close a connection held by the second."""
    user = uuid4()
    near = await connected(clients, gateways[0], user)
    far = await connected(clients, gateways[1], user)
    status, body = await api(gateways[0], "GET", f"/api/v1/connections?user={user}", ADMIN)
    assert (status, body["partial"]) == (200, False), body
    assert {(c["id"], c["instance"]) for c in body["connections"]} == {(sid(near), "gw0"), (sid(far), "gw1")}
    status, body = await api(gateways[0], "GET", f"/api/v1/rooms/user:{user}", ADMIN)
    assert (body["members"], body["instances"]) == (2, {"gw0": 1, "gw1": 1})
    status, body = await api(gateways[1], "GET", "/api/v1/instances", ADMIN)
    assert [(i["id"], i["redis"]) for i in body["instances"]] == [("gw0", "up"), ("gw1", "up")]
    # each holds one connection, in its user room and global (python-socketio's own rooms aside)
    assert [(i["connections"], i["rooms"]) for i in body["instances"]] == [(1, 2), (1, 2)]
    status, body = await api(gateways[0], "DELETE", f"/api/v1/connections/{sid(far)}", ADMIN)
    assert (status, body["instance"]) == (200, "gw1")
    assert (await far.next("connection_error"))["data"]["error_code"] == "ADMIN_DISCONNECT"


async def test_the_admin_api_spans_instances_on_redis(
    cluster: Callable[..., list[ServerProcess]], clients: Callable[[], Client]
) -> None:
    await cluster_wide(cluster(2), clients)


@pytest.mark.slow
async def test_the_admin_api_spans_instances_on_a_redis_cluster(
    cluster: Callable[..., list[ServerProcess]],
    redis_cluster: RedisClusterProcess,
    clients: Callable[[], Client],
) -> None:
    await cluster_wide(cluster(2, redis_cluster.url), clients)


async def test_without_redis_an_instance_answers_for_itself_marked_partial(
    cluster: Callable[..., list[ServerProcess]], private_redis: RedisProcess, clients: Callable[[], Client]
) -> None:
    gateways = cluster(2, private_redis.url)
    user = uuid4()
    near = await connected(clients, gateways[0], user)
    await connected(clients, gateways[1], user)
    private_redis.stop()
    status, body = await api(gateways[0], "GET", f"/api/v1/connections?user={user}", ADMIN)
    assert status == 200
    assert body["partial"] is True
    assert [c["id"] for c in body["connections"]] == [sid(near)]
    status, body = await api(gateways[0], "DELETE", "/api/v1/connections/elsewhere", ADMIN)
    assert (status, body["error_code"]) == (503, "SERVICE_UNAVAILABLE")


async def test_an_instance_alive_but_silent_makes_the_answer_partial(
    cluster: Callable[..., list[ServerProcess]], clients: Callable[[], Client]
) -> None:
    """Who must answer is who heartbeats: an instance that is alive (its heartbeat is there) but
    does not answer leaves the answer partial, and a close that found nothing is a 503, not a
    404 that may be false."""
    channel = f"test-{uuid4().hex[:12]}"
    (gateway,) = cluster(1, SHARED_REDIS, channel)
    user = uuid4()
    await connected(clients, gateway, user)
    status, body = await api(gateway, "GET", f"/api/v1/connections?user={user}", ADMIN)
    assert (status, body["partial"], body["total"]) == (200, False, 1)
    redis = Redis.from_url(SHARED_REDIS)
    try:
        await Roster(redis, channel).beat("gw-silent", "{}")
        status, body = await api(gateway, "GET", f"/api/v1/connections?user={user}", ADMIN)
        assert (status, body["partial"], body["total"]) == (200, True, 1)
        status, body = await api(gateway, "DELETE", "/api/v1/connections/elsewhere", ADMIN)
        assert (status, body["error_code"]) == (503, "SERVICE_UNAVAILABLE")
    finally:
        await Roster(redis, channel).withdraw("gw-silent")
        await redis.aclose()


async def test_a_stalled_instance_keeps_the_answer_partial_while_its_connections_may_live(
    cluster: Callable[..., list[ServerProcess]], clients: Callable[[], Client]
) -> None:
    """One of three instances frozen (SIGSTOP): once its heartbeat has lapsed (the stats no
    longer count it) the admin API still knows it may hold connections, for a ping interval,
    a ping timeout and a heartbeat after its last beat: the listing is partial, and closing
    one of its connections is a 503, never a 404 that may be false, and the close stands as an
    order the instance carries out when it wakes. (Before, the listing said complete with two
    of three connections, the close said 404, and the connection lived on.)"""
    timings = {"HEARTBEAT_INTERVAL": "0.5", "PING_INTERVAL": "10", "PING_TIMEOUT": "10"}
    gateways = cluster(3, env=timings)
    user = uuid4()
    members = [await connected(clients, gateway, user) for gateway in gateways]
    frozen = sid(members[2])
    gone = asyncio.Event()
    members[2].sio.on("disconnect", gone.set, namespace="/ws")

    async def counted() -> int:
        status, body = await api(gateways[0], "GET", "/api/v1/websocket/stats", ADMIN)
        assert status == 200
        return int(body["connections"])

    assert await eventually(lambda: _holds(counted, lambda n: n >= 3), timeout=20)
    gateways[2].process.send_signal(signal.SIGSTOP)
    try:
        await eventually(
            lambda: _holds(counted, lambda n: n < 3), timeout=20, interval=0.2
        )  # its beat lapsed
        status, body = await api(gateways[0], "GET", f"/api/v1/connections?user={user}", ADMIN)
        assert (status, body["partial"], body["total"]) == (200, True, 2)
        status, body = await api(gateways[0], "DELETE", f"/api/v1/connections/{frozen}", ADMIN)
        assert (status, body["error_code"]) == (503, "SERVICE_UNAVAILABLE")
    finally:
        gateways[2].process.send_signal(signal.SIGCONT)
    # The order stood: the instance carries it out as it wakes, and the connection is gone.
    await asyncio.wait_for(gone.wait(), 20)
    status, body = await api(gateways[1], "GET", f"/api/v1/connections?user={user}", ADMIN)
    assert (status, body["partial"], body["total"]) == (200, False, 2)


async def _holds(count: Callable[[], Awaitable[int]], wanted: Callable[[int], bool]) -> bool:
    return wanted(await count())


async def test_after_a_redis_restart_every_instance_answers_again(
    cluster: Callable[..., list[ServerProcess]], private_redis: RedisProcess, clients: Callable[[], Client]
) -> None:
    gateways = cluster(2, private_redis.url)
    user = uuid4()
    await connected(clients, gateways[0], user)
    await connected(clients, gateways[1], user)
    private_redis.stop()
    private_redis.start()

    async def whole() -> bool:
        status, body = await api(gateways[0], "GET", f"/api/v1/connections?user={user}", ADMIN)
        return status == 200 and not body["partial"] and body["total"] == 2

    assert await eventually(whole, timeout=20, interval=0.5)


class _Sockets:
    """Stands for python-socketio's server with a WebSocket under every connection: 100,000
    real sessions do not fit on this machine (the registry and its index are the real ones)."""

    class manager:
        @staticmethod
        def eio_sid_from_sid(sid: str, namespace: str) -> str:
            return sid

    class eio:
        class sockets:
            @staticmethod
            def get(eio_sid: str) -> Any:
                return SimpleNamespace(
                    upgraded=True, outbox=SimpleNamespace(pending_frames=0, pending_bytes=0)
                )


async def test_a_hundred_thousand_connections_are_paged_not_sent_whole() -> None:
    """The registry of an instance with 100,000 connections answers a page of the limit, and
    the pages of one user's connections (from the registry's index) cover them all once."""
    registry = Registry(per_user=1_000_000)
    user = uuid4()
    for number in range(100_000):
        principal = Principal(user if number % 2 else uuid4(), frozenset(), frozenset(), time.time() + 60)
        await registry.add(f"sid-{number:06d}", Connection(principal, "127.0.0.1:1", TokenBucket(1, 1)))
    operator = Operator("gw", _Sockets(), None, registry, Timeline(lambda: 0), None)
    page = operator.connections(ConnectionQuery(limit=1000))
    assert (len(page["connections"]), page["total"], page["more"]) == (1000, 100_000, True)
    seen, after = 0, ""
    while True:
        page = operator.connections(ConnectionQuery(user=user, after=after, limit=1000))
        ids = [c["id"] for c in page["connections"]]
        assert ids == sorted(ids)
        assert all(i > after for i in ids)
        seen += len(ids)
        if not page["more"]:
            break
        after = ids[-1]
    assert seen == 50_000


async def test_a_listener_whose_connection_went_half_open_subscribes_again(
    private_redis: RedisProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The far instance reaches Redis through a proxy that, at some moment, stops forwarding on
    the connections open then without closing them (a NAT's idle timeout): its pings go
    unanswered, it subscribes again on a new connection, and answers again."""
    frozen: set[asyncio.StreamWriter] = set()
    freeze, release = asyncio.Event(), asyncio.Event()
    opened: list[asyncio.StreamWriter] = []
    streams: list[asyncio.StreamWriter] = []

    async def pipe(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, mine: asyncio.StreamWriter
    ) -> None:
        while data := await reader.read(65536):
            if freeze.is_set() and mine in frozen:
                await release.wait()  # swallowed until the test ends: no FIN, no RST
                return
            writer.write(data)
            await writer.drain()

    async def proxy(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        opened.append(client_writer)
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", private_redis.port)
        streams.extend((client_writer, server_writer))
        with contextlib.suppress(Exception):
            await asyncio.gather(
                pipe(client_reader, server_writer, client_writer),
                pipe(server_reader, client_writer, client_writer),
            )

    relay = await asyncio.start_server(proxy, "127.0.0.1", 0)
    relay_port = relay.sockets[0].getsockname()[1]

    async def answer(kind: str, args: dict[str, Any]) -> dict[str, Any]:
        return {"kind": kind}

    channel = f"test-{uuid4().hex[:12]}"
    asker = RedisBus(RedisSettings(private_redis.url, channel), "gw0", answer, health_check=0.5)
    far = RedisBus(
        RedisSettings(f"redis://127.0.0.1:{relay_port}/0", channel), "gw1", answer, health_check=0.5
    )
    redis = Redis.from_url(private_redis.url)
    await Roster(redis, channel).beat("gw1", "{}")  # it keeps beating (on a connection of its own)
    await asker.start()
    await far.start()

    async def whole() -> bool:
        await Roster(redis, channel).beat("gw1", "{}")
        return not (await asker.ask("instance", {})).partial

    try:
        assert await eventually(whole, interval=0.2)
        frozen.update(opened)
        freeze.set()
        assert not await whole()  # deaf now
        assert await eventually(whole, timeout=20, interval=0.2)
    finally:
        await asker.stop()
        await far.stop()
        await redis.aclose()
        release.set()
        for writer in streams:
            writer.close()
        relay.close()
        await relay.wait_closed()


async def test_the_timeline_notes_each_instant_once_with_rates_over_the_real_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fake wall clock whose sleeps end a little early (the loop's clock runs fast) and once
    seven seconds late (a blocked loop), with 10 events a second all along: every note is at
    its own multiple of the step, and every rate is 10."""
    clock = [1000.5]
    real_sleep = asyncio.sleep
    counter = metrics.EVENTS_PUBLISHED.labels("test.timeline")
    turns = itertools.count()

    def advance(seconds: float) -> None:
        counter.inc(10 * seconds)
        clock[0] += seconds

    async def sleep(seconds: float) -> None:
        advance(max(seconds, 0) * 0.999)  # woken a little early
        if next(turns) == 6:
            advance(7.0)  # the loop was blocked
        await real_sleep(0)

    monkeypatch.setattr("swe_realtime.ops.timeline.time.time", lambda: clock[0])
    monkeypatch.setattr("swe_realtime.ops.timeline.asyncio.sleep", sleep)
    timeline = Timeline(lambda: 0)
    timeline.start()
    while len(timeline.since(0)) < 8:
        await real_sleep(0)
    await timeline.stop()
    samples = timeline.since(0)
    times = [sample[0] for sample in samples]
    assert all(t % 2 == 0 for t in times)
    assert all(later > earlier for earlier, later in itertools.pairwise(times))
    assert max(b - a for a, b in itertools.pairwise(times)) >= 8  # the gap is one interval
    assert [sample[2] for sample in samples[1:]] == pytest.approx([10.0] * (len(samples) - 1), rel=0.01)


async def test_a_closing_connection_leaves_no_open_one_behind_the_cursor() -> None:
    """Two instances' answers merged as the route merges them (``merged``), with one connection of the first
    closing (its Engine.IO session gone, so not described): every open connection is listed,
    once, in order."""
    closing = {"a3"}

    class Sockets(_Sockets):
        class eio:
            class sockets:
                @staticmethod
                def get(eio_sid: str) -> Any:
                    return None if eio_sid in closing else _Sockets.eio.sockets.get(eio_sid)

    operators = []
    for name, sids in (("A", ["a1", "a2", "a3", "a4"]), ("B", ["b5"])):
        registry = Registry(per_user=100)
        for sid in sids:
            principal = Principal(uuid4(), frozenset(), frozenset(), time.time() + 60)
            await registry.add(sid, Connection(principal, "127.0.0.1:1", TokenBucket(1, 1)))
        operators.append(Operator(name, Sockets(), None, registry, Timeline(lambda: 0), None))
    listed, after = [], ""
    while True:
        page = merged(
            [operator.connections(ConnectionQuery(after=after, limit=3)) for operator in operators], 3
        )
        listed += [connection["id"] for connection in page.connections]
        if page.next is None:
            break
        after = page.next
    assert listed == ["a1", "a2", "a4", "b5"]


async def _command(node: Redis, *args: str | int) -> Any:
    return await node.execute_command(*args)  # type: ignore[no-untyped-call]  # unannotated upstream


@pytest.mark.slow
async def test_listeners_follow_the_admin_channel_when_its_slot_moves(
    redis_cluster: RedisClusterProcess,
) -> None:
    """On a Redis Cluster the admin channel's slot moves to another master (resharding, a
    failover): the listeners are told (sunsubscribe), read the slot map afresh, subscribe on
    the new master, and the answers are whole again."""
    channel = f"test-{uuid4().hex[:12]}"
    settings = RedisSettings(redis_cluster.url, channel)

    def answering(name: str) -> Callable[[str, dict[str, Any]], Any]:
        async def answer(kind: str, args: dict[str, Any]) -> dict[str, Any]:
            return {"instance": name}

        return answer

    asker, far = (RedisBus(settings, name, answering(name), health_check=5.0) for name in ("gw0", "gw1"))
    roster_client = connect(redis_cluster.url, default_service=channel)
    roster = Roster(roster_client, channel)

    async def whole() -> bool:
        await roster.beat("gw1", "{}")
        return not (await asker.ask("instance", {})).partial

    nodes = [Redis(port=node.port) for node in redis_cluster.nodes]
    await asker.start()
    await far.start()
    try:
        assert await eventually(whole, interval=0.2)
        slot = key_slot(f"{channel}:admin".encode())
        ids = [(await _command(node, "CLUSTER", "MYID")).decode() for node in nodes]
        (low_high,) = [
            entry for entry in await _command(nodes[0], "CLUSTER", "SLOTS") if entry[0] <= slot <= entry[1]
        ]
        owner = int(low_high[2][1])
        target = next(index for index, node in enumerate(redis_cluster.nodes) if node.port != owner)
        for node in nodes:
            await _command(node, "CLUSTER", "SETSLOT", slot, "NODE", ids[target])
        assert await eventually(whole, timeout=30, interval=0.5)
        shard = await _command(nodes[target], "PUBSUB", "SHARDNUMSUB", f"{channel}:admin")
        assert shard[1] == 2  # both listen on the new master
    finally:
        await asker.stop()
        await far.stop()
        await roster_client.aclose()
        for node in nodes:
            await node.aclose()

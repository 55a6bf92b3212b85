"""The cluster soak (issue #24, item 3): members come and go, rooms empty and fill, the
cluster falls quiet and wakes up, and every accepted event reaches every member once, in order.

Three gateways share a private Redis, their intervals cut to tenths of a second
(SHORT_INTERVALS; Engine.IO pings every half second), so that a minute holds many of each:
health checks of idle connections, sweeps of emptied rooms, heartbeats, presence ticks. Members
(python-socketio clients, each a user of its own) connect to a random instance, join and leave
a few of six project rooms, idle, disconnect and come back elsewhere; now and then the whole
cluster has a lull, longer than every interval, in which every member leaves and nobody
publishes. Publishers on every instance send events to a project room, to a project room and
a member's user room (``project.updated``), or to ``global``.

What is checked, per membership (a stay: from the subscribe ack, or ``connection_established``
for the user room and ``global``, to the member's leaving):

- the offsets received in the room are exactly top+1, top+2, ... (top: the position the
  member was given), none skipped, none twice, in order: except that an event also sent to
  a later room the member is in comes through that room's copy and may come after later
  events of this one (docs/recovery.md);
- every event whose request was sent after the member had its position and whose 202 came
  back before the member started to leave was received (a leaving member waits for those, up
  to SETTLE_SECONDS, so that its own leaving does not cut a late delivery off);
- no connection received an event twice; no gateway logged a Redis WARNING or a lost admin
  channel (Redis is up throughout).

``CLUSTER_SOAK_SECONDS`` sets the length: 20 s in ``just test``, ``just soak --minutes N`` for
longer; ``SOAK_SEED`` replays a run's random choices, not its timing (a failure names its seed).
The short run still holds at least one lull (a busy spell is 10 s at most) and a few visits of
every member, so each background interval runs many times over idle and busy connections and
every check above is made on some hundred stays; what it cannot show is a slow drift (a leak,
a counter that wraps, a rare interleaving), which is what the long run is for.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from uuid import UUID, uuid4

import pytest

from tests.support import (
    LOAD_TEST_LIMITS,
    PAST_SHORT_INTERVALS,
    REDIS_TROUBLE,
    SERVICE,
    SHORT_INTERVALS,
    Client,
    RedisProcess,
    ServerProcess,
    api,
    event_ids,
    eventually,
    make_token,
    progress_event,
    project_update,
)

SOAK_SECONDS = float(os.environ.get("CLUSTER_SOAK_SECONDS") or 20)
SEED = int(os.environ.get("SOAK_SEED") or random.randrange(2**32))
GATEWAYS = 3
MEMBERS = 15
PROJECTS = [str(uuid4()) for _ in range(6)]
ROOMS_PER_MEMBER = 3
"""Project rooms a member is in at most at once: rooms empty often enough to be swept."""
SOAK_ENV = {**SHORT_INTERVALS, **LOAD_TEST_LIMITS, "PING_INTERVAL": "0.5", "PING_TIMEOUT": "5"}
"""Pings every half second keep idle connections busy; a generous timeout drops no slow test
client. The idle gaps below outlast every interval that paces work."""
IDLE = (PAST_SHORT_INTERVALS, PAST_SHORT_INTERVALS + 1)
"""Seconds of a gap: a member idle while connected, a member away, the cluster's lull."""
BUSY = (6.0, 10.0)
"""Seconds between two lulls."""
VISIT = (3.0, 9.0)
"""Seconds a member stays connected, at most (a lull ends a visit early)."""
SETTLE_SECONDS = 10.0
"""Longest a leaving member waits for the events owed to it (they take milliseconds)."""
ANSWER_SECONDS = 15.0
"""Longest wait for a welcome or an ack: two cores run three gateways and the clients."""

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(SOAK_SECONDS + 120)]


@dataclass(frozen=True, slots=True)
class Published:
    """One accepted event: its rooms (in the order they are written), when its request went
    out and when its 202 came back (monotonic seconds)."""

    id: str
    rooms: tuple[str, ...]
    sent_at: float
    answered_at: float


@dataclass(slots=True)
class Stay:
    """One membership of a connection in a room."""

    room: str
    epoch: str
    top: int
    """The room's offset when the member got its position: it is owed what comes after."""
    joined_at: float
    """When the position came (monotonic): events requested later are owed."""
    first: int
    """Where in the connection's trace the stay's events may start (the subscribe went out)."""
    left_at: float = float("inf")
    """When the member started to leave: events answered 202 before are owed."""
    last: int | None = None
    """Where in the trace the stay's events end (None: still in the room)."""


@dataclass(slots=True)
class Connection:
    """One connection of a member (its client traces what it got) and its stays."""

    client: Client
    gateway: str
    user_room: str
    stays: list[Stay] = field(default_factory=list)


@dataclass
class Soak:
    """The shared state of a run: what was published, every connection, the cluster's phase."""

    gateways: Sequence[ServerProcess]
    until: float
    published: dict[str, Published] = field(default_factory=dict)
    connections: list[Connection] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    busy: asyncio.Event = field(default_factory=asyncio.Event)
    lull: asyncio.Event = field(default_factory=asyncio.Event)
    lulls: int = 0

    def running(self) -> bool:
        return time.monotonic() < self.until

    async def pause(self, seconds: float) -> None:
        """The workload's pace or one of its idle gaps (not a wait for anything); a lull ends
        it early, so that every member leaves at once."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.lull.wait(), seconds)

    async def phases(self, rng: random.Random) -> None:
        """Busy spells and lulls, until the end; busy again at the end (nothing waits then)."""
        while self.running():
            self.lull.clear()
            self.busy.set()
            await asyncio.sleep(rng.uniform(*BUSY))  # a busy spell
            if not self.running():
                break
            self.busy.clear()
            self.lull.set()
            self.lulls += 1
            await asyncio.sleep(rng.uniform(*IDLE))  # the cluster's idle period under test
        self.lull.clear()
        self.busy.set()

    async def publisher(self, gateway: ServerProcess, users: Sequence[UUID], rng: random.Random) -> None:
        """Events on ``gateway`` to a project room, to a project and a member's user room, or to
        global, at a few per second, none during a lull."""
        while self.running():
            await self.busy.wait()
            choice = rng.random()
            project = rng.choice(PROJECTS)
            if choice < 0.45:
                body = progress_event(project)
            elif choice < 0.75:
                body = project_update(project, rng.choice(users))
            else:
                body = progress_event(None)
            sent_at = time.monotonic()
            status, receipt = await api(gateway, "POST", "/api/v1/events", SERVICE, body)
            if status == 202:
                event = Published(receipt["id"], tuple(receipt["rooms"]), sent_at, time.monotonic())
                self.published[event.id] = event
            else:
                self.problems.append(f"{gateway.url} answered a publish {status}: {receipt}")
            await self.pause(rng.uniform(0.05, 0.25))  # the publisher's pace

    async def member(self, user: UUID, rng: random.Random) -> None:
        """Visits to random instances, with time away between them."""
        while self.running():
            await self.busy.wait()
            await self.visit(rng.choice(self.gateways), user, rng)
            await self.pause(rng.uniform(*IDLE))  # away

    async def visit(self, gateway: ServerProcess, user: UUID, rng: random.Random) -> None:
        client = await Client().connect(gateway.url, make_token(user, projects=PROJECTS))
        connection = Connection(client, gateway.url, f"user:{user}")
        self.connections.append(connection)
        welcome = await client.next("connection_established", timeout=ANSWER_SECONDS)
        now = time.monotonic()
        for room in (connection.user_room, "global"):
            position = welcome["positions"][room]
            connection.stays.append(Stay(room, position["epoch"], position["offset"], now, 0))
        inside: dict[str, Stay] = {}
        ends = time.monotonic() + rng.uniform(*VISIT)
        while self.running() and not self.lull.is_set() and time.monotonic() < ends:
            step = rng.random()
            if step < 0.35 and len(inside) < ROOMS_PER_MEMBER:
                room = f"project:{rng.choice(PROJECTS)}"
                if room not in inside:
                    inside[room] = await self.join(connection, room)
            elif step < 0.6 and inside:
                stay = inside.pop(rng.choice(sorted(inside)))
                await self.leave(connection, [stay])
                ack = await client.command("unsubscribe", {"room": stay.room}, timeout=ANSWER_SECONDS)
                if ack.get("status") != "success":
                    self.problems.append(f"unsubscribe from {stay.room} failed: {ack}")
                stay.last = acked(client)  # what came before the ack, came while inside
            elif step < 0.7:
                await self.pause(rng.uniform(*IDLE))  # idle while connected
            else:
                await self.pause(rng.uniform(0.1, 0.5))  # the member's pace
        await self.leave(connection, [stay for stay in connection.stays if stay.last is None])
        await client.close()
        for stay in connection.stays:
            if stay.last is None:
                stay.last = len(client.trace)

    async def join(self, connection: Connection, room: str) -> Stay:
        first = len(connection.client.trace)
        ack = await connection.client.command("subscribe", {"room": room}, timeout=ANSWER_SECONDS)
        if ack.get("status") != "success":
            self.problems.append(f"subscribe to {room} failed: {ack}")
        position = ack.get("position") or {"epoch": "", "offset": 0}
        stay = Stay(room, position["epoch"], position["offset"], time.monotonic(), first)
        connection.stays.append(stay)
        return stay

    async def leave(self, connection: Connection, stays: Sequence[Stay]) -> None:
        """Mark ``stays`` as ending now and wait, boundedly, for the events they are owed."""
        now = time.monotonic()
        for stay in stays:
            stay.left_at = now

        def all_owed_in() -> bool:
            seen = set(event_ids(connection.client.trace))
            return all(event.id in seen for stay in stays for event in self.owed(stay))

        with contextlib.suppress(AssertionError):  # what never came is reported at the end
            await eventually(all_owed_in, SETTLE_SECONDS, interval=0.02)

    def owed(self, stay: Stay) -> list[Published]:
        return [
            event
            for event in self.published.values()
            if stay.room in event.rooms
            and stay.joined_at < event.sent_at
            and event.answered_at < stay.left_at
        ]

    def check(self, connection: Connection) -> None:
        """The promises of the module's docstring, for one connection."""
        trace = connection.client.trace
        counts = Counter(event_ids(trace))
        self.problems += [
            f"{event_id} received {count} times" for event_id, count in counts.items() if count > 1
        ]
        lasting = {connection.user_room, "global"}
        for stay in connection.stays:
            where = f"{connection.gateway} {stay.room}"
            window = trace[stay.first : stay.last]
            offsets: list[int] = []
            ordered: list[int] = []
            for entry in window:
                data = entry.data
                position = data.get("positions", {}).get(stay.room) if entry.kind == "event" else None
                if position is None:
                    continue
                if position["epoch"] != stay.epoch:
                    self.problems.append(f"{where}: epoch {position['epoch']} during a stay in {stay.epoch}")
                elif position["offset"] > stay.top:  # at or below: published before the join
                    offsets.append(position["offset"])
                    event = self.published.get(data["id"])
                    if event is None:
                        self.problems.append(f"{where}: got {data.get('type')} {data['id']}, never accepted")
                    elif not lasting & set(event.rooms[event.rooms.index(stay.room) + 1 :]):
                        ordered.append(position["offset"])  # came through this room's copy
            expected = list(range(stay.top + 1, stay.top + 1 + len(offsets)))
            if sorted(offsets) != expected:
                self.problems.append(f"{where}: after offset {stay.top} got {offsets}, not {expected}")
            if ordered != sorted(ordered):
                self.problems.append(f"{where}: out of order {ordered}")
            received = set(event_ids(window))
            lost = [event for event in self.owed(stay) if event.id not in received]
            if lost:
                self.problems.append(
                    f"{where}: {len(lost)} of {len(self.owed(stay))} owed event(s) never arrived,"
                    f" the first {lost[0].id} to {' + '.join(lost[0].rooms)}"
                )


def acked(client: Client) -> int:
    """Where in ``client``'s trace its last ``command`` was acked (one command at a time)."""
    return next(
        index + 1 for index in reversed(range(len(client.trace))) if client.trace[index].kind == "ack"
    )


# Redis is the first fixture, so that it is torn down after the gateways.
async def test_members_coming_and_going_get_every_event_once_in_order(
    private_redis: RedisProcess, cluster: Callable[..., list[ServerProcess]]
) -> None:
    gateways = cluster(GATEWAYS, redis_url=private_redis.url, env=SOAK_ENV)
    rng = random.Random(SEED)
    users = [uuid4() for _ in range(MEMBERS)]
    soak = Soak(gateways, time.monotonic() + SOAK_SECONDS)
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(soak.phases(random.Random(rng.random())))
            for gateway in gateways:
                group.create_task(soak.publisher(gateway, users, random.Random(rng.random())))
            for user in users:
                group.create_task(soak.member(user, random.Random(rng.random())))
    finally:
        for connection in soak.connections:
            await connection.client.close()
    for connection in soak.connections:
        soak.check(connection)
    for gateway in gateways:
        soak.problems += [f"{gateway.url}: {line}" for line in gateway.matching(REDIS_TROUBLE)]
    stays = sum(len(connection.stays) for connection in soak.connections)
    summary = (
        f"seed {SEED}: {len(soak.published)} events, {len(soak.connections)} connections, {stays} stays,"
        f" {soak.lulls} lulls"
    )
    assert soak.lulls >= 1, f"the cluster never fell quiet: {summary}"
    assert stays > MEMBERS * 2, f"the members hardly moved: {summary}"
    assert soak.problems == [], f"{summary}; {len(soak.problems)} problem(s), the first: {soak.problems[:12]}"

"""The cluster's promises while the cluster changes (issue #24, item 7): a master failing over
to its replica, the live reshard of an active room's slot, and events of several rooms while
members join and leave them.

Each test runs three gateways on a private Redis Cluster (its fixture comes first, so that it
is torn down last, after the gateways; the failover's cluster is its own, the reshard and the
several-rooms test share one, each on a channel of its own), real python-socketio clients on
all three, and one publisher that posts events over HTTP one after another, round robin over
the gateways, while the cluster changes; what each client got is then checked against what
the publisher was answered. The promise is docs/recovery.md's: every accepted event reaches
every member of its rooms once, in the room's order, and the positions a member sees count on
from the one it joined at, in one epoch, with no gap and no repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import pytest

from tests.support import (
    SERVICE,
    Client,
    RedisClusterProcess,
    ServerProcess,
    Traced,
    api,
    eventually,
    example,
    make_token,
    numbered,
    room_slot,
    subscribed,
    wait_ready,
)

pytestmark = [pytest.mark.redis, pytest.mark.slow]

DELIVERY_DEADLINE = 20.0
"""How long the last events may take to reach every member once publishing stopped: far
more than they need, for a busy machine."""
SETTLE = 1.0
"""After the last expected event: a window in which an event arriving twice or late shows."""

Position = dict[str, Any]
"""A room's position as the gateway sends it: {epoch, offset}."""


class Publisher:
    """Posts ``make(0)``, ``make(1)``, ... over HTTP one at a time, round robin over the
    gateways, until stopped, and keeps each answer: a 202's receipt, or the event refused
    (503, which a publisher may be answered while Redis cannot take the event). One at a
    time, so that the publishing order is each room's order."""

    def __init__(self, gateways: Sequence[ServerProcess], make: Callable[[int], dict[str, Any]]) -> None:
        self._gateways = gateways
        self._make = make
        self.accepted: dict[int, dict[str, Any]] = {}
        """The receipts of the events answered 202, by number."""
        self.refused: dict[int, dict[str, Any]] = {}
        """The events answered 503, by number."""
        self.sent = -1
        """The number of the event posted last (perhaps still unanswered)."""
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while not self._stopping:
            self.sent += 1
            body = self._make(self.sent)
            status, answer = await api(
                self._gateways[self.sent % len(self._gateways)], "POST", "/api/v1/events", SERVICE, body
            )
            if status == 202:
                self.accepted[self.sent] = answer
            else:
                assert status == 503, f"event {self.sent} was answered {status}: {answer}"
                self.refused[self.sent] = body
            await asyncio.sleep(0.01)  # a steady publisher's pace, not a synchronisation

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Publisher]:
        """Publishing for the duration of the block; the event in flight is answered after it."""
        self._task = asyncio.create_task(self._run())
        try:
            yield self
        finally:
            self._stopping = True
            await self._task

    def accepted_in(self, room: str, after: int = -1) -> list[int]:
        """The numbers above ``after`` of the accepted events that went to ``room``."""
        return [
            number for number, receipt in self.accepted.items() if number > after and room in receipt["rooms"]
        ]

    async def until(self, count: int, room: str, *, after: int = -1, timeout: float = 30) -> None:
        """Until ``count`` events to ``room`` numbered above ``after`` were accepted."""

        def enough() -> bool:
            if self._task is not None and self._task.done():
                self._task.result()  # the publisher failed: this raises its error
            return len(self.accepted_in(room, after)) >= count

        await eventually(enough, timeout, interval=0.1, message=f"{count} events to {room} were not accepted")


async def settled(arrived: Callable[[], bool]) -> None:
    """Until ``arrived()`` says every member has what it is owed (or DELIVERY_DEADLINE passed:
    the checks that follow then say what is missing, member by member), then the SETTLE
    window, in which nothing more may arrive."""
    with contextlib.suppress(AssertionError):
        await eventually(arrived, DELIVERY_DEADLINE, interval=0.2)
    await asyncio.sleep(SETTLE)  # not a wait for something: a window in which nothing more may arrive


async def joined(
    gateway: ServerProcess, clients: Callable[[], Client], projects: Sequence[str]
) -> tuple[Client, dict[str, Position]]:
    """A client of ``gateway`` in the rooms of ``projects``, and the position each subscribe
    ack gave: what the client is owed starts after it."""
    client = await clients().connect(gateway.url, make_token(projects=list(projects)))
    await client.next("connection_established")
    positions = {}
    for project in projects:
        room = f"project:{project}"
        ack = await client.call("subscribe", {"room": room})
        assert subscribed(ack, room), ack
        positions[room] = ack["position"]
    return client, positions


async def projects_on_two_masters(cluster: RedisClusterProcess, channel: str) -> tuple[str, str]:
    """Two new projects whose rooms two different masters serve: the first one's master is
    changed by the test, the second one's room is the witness of a master left alone."""
    first = str(uuid4())
    home = await cluster.slot_master(room_slot(channel, f"project:{first}"))
    while True:
        second = str(uuid4())
        if await cluster.slot_master(room_slot(channel, f"project:{second}")) is not home:
            return first, second


def in_turn(projects: Sequence[str]) -> Callable[[int], dict[str, Any]]:
    """Event ``n``: a workflow.progress numbered ``n``, of each project in turn."""
    return lambda number: numbered(projects[number % len(projects)], number)


def progress_of(client: Client, room: str) -> list[dict[str, Any]]:
    """The workflow.progress events of ``room`` (a project's) that ``client`` got, in order."""
    project = room.removeprefix("project:")
    return [
        traced.data
        for traced in client.trace
        if traced.name == "workflow.progress" and traced.data["data"]["project_id"] == project
    ]


def number(event: dict[str, Any]) -> int:
    """The number a publisher gave the event (``numbered``: its ``total_steps``)."""
    return int(event["data"]["total_steps"])


def progress_problems(
    events: Sequence[dict[str, Any]], room: str, since: Position, accepted: set[int], refused: set[int]
) -> list[str]:
    """What is wrong in the events of ``room`` that a member got (``progress_of``) after
    joining at ``since``: every accepted event once, in publishing order (numbers rise);
    nothing never answered 202 but a refused event (whether every member got it is checked
    across members); offsets counting on from ``since`` by one, in its epoch."""
    numbers = [number(event) for event in events]
    counts = Counter(numbers)
    problems = []
    if missing := sorted(accepted - counts.keys()):
        problems.append(f"never got accepted events {missing}")
    if doubled := sorted(n for n, count in counts.items() if count > 1):
        problems.append(f"got events twice: {doubled}")
    if strangers := sorted(counts.keys() - accepted - refused):
        problems.append(f"got events never published: {strangers}")
    if backwards := [(a, b) for a, b in itertools.pairwise(numbers) if b <= a]:
        problems.append(f"got events out of publishing order (a then b): {backwards}")
    if epochs := sorted({event["positions"][room]["epoch"] for event in events} - {since["epoch"]}):
        problems.append(f"got epochs {epochs} besides the one joined at ({since['epoch']})")
    offsets = [event["positions"][room]["offset"] for event in events]
    owed = list(range(since["offset"] + 1, since["offset"] + 1 + len(offsets)))
    if offsets != owed:
        at = next(index for index, (have, want) in enumerate(zip(offsets, owed, strict=True)) if have != want)
        problems.append(
            f"offsets do not count on by one from {since['offset']}: at event {numbers[at]} got"
            f" {offsets[max(at - 2, 0) : at + 3]} where {owed[max(at - 2, 0) : at + 3]} were owed"
        )
    return problems


async def assert_every_accepted_event_delivered_once_in_order(
    members: Sequence[tuple[Client, dict[str, Position]]], projects: Sequence[str], publisher: Publisher
) -> None:
    """Every member got, per room, every accepted event once and in order (progress_problems),
    and all members of a room got the same events (a refused one to all or to none)."""
    rooms = [f"project:{project}" for project in projects]
    accepted = {room: set(publisher.accepted_in(room)) for room in rooms}
    refused = {
        room: {n for n, body in publisher.refused.items() if f"project:{body['data']['project_id']}" == room}
        for room in rooms
    }

    def all_arrived() -> bool:
        return all(
            accepted[room] <= {number(event) for event in progress_of(client, room)}
            for client, _ in members
            for room in rooms
        )

    await settled(all_arrived)
    problems = []
    for room in rooms:
        seen = {}
        for index, (client, positions) in enumerate(members):
            events = progress_of(client, room)
            found = progress_problems(events, room, positions[room], accepted[room], refused[room])
            problems += [f"member on gw{index}, {room}: {problem}" for problem in found]
            seen[f"gw{index}"] = [number(event) for event in events]
        if len({tuple(numbers) for numbers in seen.values()}) > 1:
            refused_seen = {name: sorted(set(numbers) & refused[room]) for name, numbers in seen.items()}
            problems.append(
                f"{room}: the members got different events; refused ones among them: {refused_seen}"
            )
    assert problems == [], "\n".join(problems)


async def test_a_master_failing_over_to_its_replica_loses_and_doubles_no_accepted_event(
    replicated_redis_cluster: RedisClusterProcess,
    cluster: Callable[..., list[ServerProcess]],
    clients: Callable[[], Client],
) -> None:
    """The master serving an active room (members on all three instances) is killed; its
    replica takes over. Publishes may be refused (503) meanwhile; afterwards publishing works
    again, every instance is ready, and every event accepted before, during and after reached
    every member once, in order. docs/recovery.md names no history loss for a failover (its
    epoch changes only when a room idled past its TTL or Redis restarted), so the epoch must
    stay."""
    channel = f"test-{uuid4().hex[:12]}"
    gateways = cluster(3, redis_url=replicated_redis_cluster.url, channel=channel)
    projects = await projects_on_two_masters(replicated_redis_cluster, channel)
    members = [await joined(gateway, clients, projects) for gateway in gateways]
    failing = f"project:{projects[0]}"
    publisher = Publisher(gateways, in_turn(projects))
    async with publisher.running():
        await publisher.until(20, failing)
        old, new = await replicated_redis_cluster.fail_over(room_slot(channel, failing))
        assert new is not old
        await publisher.until(20, failing, after=publisher.sent)  # publishing into the room works again
    for gateway in gateways:
        await wait_ready(gateway, 200, timeout=30)
    await assert_every_accepted_event_delivered_once_in_order(members, projects, publisher)


async def test_a_live_reshard_of_an_active_room_loses_and_doubles_no_accepted_event(
    module_redis_cluster: RedisClusterProcess,
    cluster: Callable[..., list[ServerProcess]],
    clients: Callable[[], Client],
) -> None:
    """The slot of an active room (members on all three instances) moves, keys and all, to
    another master while events are published into it: no publish is refused (an append that
    meets the slot half-moved is tried again), every event reaches every member once, in
    order, in one epoch, and publishing into the room works on the new master."""
    channel = f"test-{uuid4().hex[:12]}"
    gateways = cluster(3, redis_url=module_redis_cluster.url, channel=channel)
    projects = await projects_on_two_masters(module_redis_cluster, channel)
    members = [await joined(gateway, clients, projects) for gateway in gateways]
    moving = f"project:{projects[0]}"
    slot = room_slot(channel, moving)
    target = await module_redis_cluster.slot_master(room_slot(channel, f"project:{projects[1]}"))
    publisher = Publisher(gateways, in_turn(projects))
    async with publisher.running():
        await publisher.until(20, moving)
        await module_redis_cluster.migrate(slot, target)
        await publisher.until(20, moving, after=publisher.sent)  # publishing into the room works again
    assert await module_redis_cluster.slot_master(slot) is target
    assert publisher.refused == {}
    for gateway in gateways:
        await wait_ready(gateway, 200, timeout=30)
    await assert_every_accepted_event_delivered_once_in_order(members, projects, publisher)


@dataclass(frozen=True, slots=True)
class Member:
    """A connection of the several-rooms test: the rooms it never leaves, and the rooms it
    leaves and joins again while events are published."""

    name: str
    client: Client
    user: str
    always: frozenset[str]
    churned: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Stay:
    """One stay of a connection in a room, as indexes into its ``trace``: from the welcome
    (for the rooms joined at connect) or the subscribe sent, with the room's position its
    welcome or ack gave, to the unsubscribe ack that ended it (None: it stayed to the end).
    Between a subscribe sent and its ack, the room's events up to that position may come or
    not; those after it are owed."""

    room: str
    since: Position
    start: int
    end: int | None


def stays(client: Client) -> list[Stay]:
    """Every stay of ``client`` in a room, read from its trace."""
    opened: dict[str, tuple[int, Position]] = {}
    sent: dict[str, int] = {}
    found = []
    for index, traced in enumerate(client.trace):
        if traced.name == "connection_established":
            opened.update((room, (index, position)) for room, position in traced.data["positions"].items())
        elif traced.name == "subscribe" and traced.kind == "sent":
            sent[traced.data["room"]] = index
        elif traced.name == "subscribe" and traced.kind == "ack":
            opened[traced.data["room"]] = (sent.pop(traced.data["room"]), traced.data["position"])
        elif traced.name == "unsubscribe" and traced.kind == "ack":
            start, since = opened.pop(traced.data["room"])
            found.append(Stay(traced.data["room"], since, start, index))
    return found + [Stay(room, since, start, None) for room, (start, since) in opened.items()]


def to_several_rooms(project: str, agent: str, users: Sequence[str]) -> Callable[[int], dict[str, Any]]:
    """Event ``n``: a project.updated of ``project`` by each of ``users`` in turn (to the
    project's room, then the user's) or, every other one, an agent.status_changed of ``agent``
    (to the agent's room, then global)."""

    def make(number: int) -> dict[str, Any]:
        if number % 2:
            body = example("agent.status_changed")
            body["data"]["agent_id"] = agent
        else:
            body = example("project.updated")
            body["data"].update(project_id=project, updated_by=users[number // 2 % len(users)])
        return body

    return make


def several_rooms_event(traced: Traced) -> bool:
    """Whether ``traced`` is an event of the several-rooms test (not a command, an ack, the welcome)."""
    return traced.kind == "event" and traced.name in {"project.updated", "agent.status_changed"}


async def churn(member: Member, stop: asyncio.Event, rng: random.Random) -> None:
    """Leave or join again one of the member's churned rooms at a time until ``stop``; then
    join again each one it is out of: it ends in all its rooms."""
    out: set[str] = set()
    while not stop.is_set():
        room = rng.choice(member.churned)
        ack = await member.client.command("subscribe" if room in out else "unsubscribe", {"room": room})
        assert (ack["status"], ack["room"]) == ("success", room), ack
        out ^= {room}
        # Pacing: about sixteen commands a second, under the default COMMANDS_PER_SECOND (20).
        await asyncio.sleep(rng.uniform(0.04, 0.08))
    for room in out:
        assert subscribed(await member.client.command("subscribe", {"room": room}), room)


def several_rooms_problems(
    member: Member,
    receipts: dict[str, dict[str, Any]],
    tail: set[str],
    offsets: dict[tuple[str, str], int],
) -> list[str]:
    """What docs/recovery.md promises a member of several of an event's rooms, and the
    member got otherwise (``receipts``: the accepted events' receipts by id; ``tail``: the ids
    published after every member was back in all its rooms).

    - Once: no event twice.
    - Owed: every event to a room the member never left, and every event of the tail.
    - Its positions: in every room of the event that the member never left.
    - Per stay in a room (from the position its join gave): the room's offsets it got count on
      by one, no gap, no repeat, one epoch. The last offset owed is the last the member got
      while in the room; an event may come through the copy of a later room of it after the
      stay ended, so what came after the stay fills it too. The one gap allowed: an event
      that reached the member through an earlier room's copy, without a position in this
      room, while it was joining this one (docs/recovery.md), or just before: a Redis Cluster
      appends an event's copies in rounds, so the earlier room's copy can be out before the
      member asks to join and the joined room's be appended after the join read its
      position; the member has the event, and its later copy is not sent again. ``offsets``
      says where such an event stands in its rooms, from every member's copies.
    - Per stay, room order: in offset order, except for events that also went to a later room
      the member was ever in (those come through the later room's copy, "may come after
      later events of an earlier one")."""
    trace = member.client.trace
    events = [(index, traced.data) for index, traced in enumerate(trace) if several_rooms_event(traced)]
    problems = []
    counts = Counter(event["id"] for _, event in events)
    if doubled := sorted(event_id for event_id, count in counts.items() if count > 1):
        problems.append(f"got events twice: {[describe(event_id, member) for event_id in doubled]}")
    if missing := sorted(owed_to(member, receipts, tail) - counts.keys()):
        problems.append(
            f"never got events it was owed: {[describe(event_id, member) for event_id in missing]}"
        )
    if strangers := sorted(counts.keys() - receipts.keys()):
        problems.append(f"got events never accepted: {strangers}")
    for _, event in events:
        if without := sorted(member.always & set(receipts[event["id"]]["rooms"]) - event["positions"].keys()):
            problems.append(f"got {describe(event['id'], member)} without its position in {without}")
    ever = member.always | set(member.churned)
    for stay in stays(member.client):
        end = len(trace) if stay.end is None else stay.end
        problems += stay_problems(stay, events, end, receipts, ever, offsets)
    return [f"{member.name}: {problem}" for problem in problems]


def stay_problems(
    stay: Stay,
    events: Sequence[tuple[int, dict[str, Any]]],
    end: int,
    receipts: dict[str, dict[str, Any]],
    ever: frozenset[str],
    offsets: dict[tuple[str, str], int],
) -> list[str]:
    """What is wrong in one stay in a room (``events``: the member's, by index in its trace;
    ``end``: where the stay ended; ``ever``: every room the member was in at some time): see
    several_rooms_problems."""
    room, epoch, joined_at = stay.room, stay.since["epoch"], stay.since["offset"]
    inside = [event for index, event in events if stay.start < index < end and room in event["positions"]]
    problems = []
    if epochs := sorted({event["positions"][room]["epoch"] for event in inside} - {epoch}):
        problems.append(f"{room}: got epochs {epochs} in a stay joined in {epoch}")
    top = max((event["positions"][room]["offset"] for event in inside), default=joined_at)
    counted = Counter(
        event["positions"][room]["offset"]
        for index, event in events
        if stay.start < index and event["positions"].get(room, {}).get("epoch") == epoch
    )
    joining = {
        offsets[(event["id"], room)]
        for index, event in events
        if index < end
        and room in receipts[event["id"]]["rooms"]
        and room not in event["positions"]
        and (event["id"], room) in offsets
    }
    owed = range(joined_at + 1, top + 1)
    if gaps := [offset for offset in owed if offset not in counted and offset not in joining]:
        problems.append(f"{room}: offsets {gaps} missing from a stay joined at {joined_at}")
    if repeats := [offset for offset in owed if counted[offset] > 1]:
        problems.append(f"{room}: offsets {repeats} came twice in a stay joined at {joined_at}")
    in_order = [
        event["positions"][room]["offset"]
        for event in inside
        if not ever & set(later_rooms(receipts[event["id"]]["rooms"], room))
    ]
    if backwards := [(a, b) for a, b in itertools.pairwise(in_order) if b <= a]:
        problems.append(f"{room}: offsets out of order (a then b): {backwards}")
    return problems


def owed_to(member: Member, receipts: dict[str, dict[str, Any]], tail: set[str]) -> set[str]:
    """The events ``member`` must get whenever they came: those to a room it never left, and
    those published once it was back in all its rooms (``tail``)."""
    return {
        event_id for event_id, receipt in receipts.items() if member.always & set(receipt["rooms"])
    } | tail


def later_rooms(rooms: Sequence[str], room: str) -> Sequence[str]:
    """The rooms an event went to after ``room`` (``rooms``: its receipt's, in publishing order)."""
    return rooms[rooms.index(room) + 1 :]


def describe(event_id: str, member: Member) -> str:
    """An event as the member got it: the index in its trace and positions of each copy."""
    copies = [
        f"#{index} {traced.data['type']} {traced.data['positions']}"
        for index, traced in enumerate(member.client.trace)
        if several_rooms_event(traced) and traced.data["id"] == event_id
    ]
    return f"{event_id} ({'; '.join(copies) or 'not received'})"


def position_conflicts(members: Sequence[Member]) -> list[str]:
    """Copies of one event that disagree on its position in a room, and one position of a
    room given to two events: across all members, a position names one event."""
    positions: dict[tuple[str, str], Position] = {}
    owners: dict[tuple[str, str, int], str] = {}
    problems = []
    for member in members:
        for traced in filter(several_rooms_event, member.client.trace):
            for room, position in traced.data["positions"].items():
                if positions.setdefault((traced.data["id"], room), position) != position:
                    problems.append(f"{traced.data['id']} has two positions in {room}")
                key = (room, position["epoch"], position["offset"])
                if owners.setdefault(key, traced.data["id"]) != traced.data["id"]:
                    problems.append(f"{room} position {position} names two events")
    return problems


async def test_an_event_of_several_rooms_reaches_each_member_once_while_members_join_and_leave(
    module_redis_cluster: RedisClusterProcess,
    cluster: Callable[..., list[ServerProcess]],
    clients: Callable[[], Client],
) -> None:
    """project.updated goes to the project's room and the updating user's; agent.status_changed
    to the agent's room and global. On each of three instances: a steady member in all four
    of its rooms; two members that stay in the project's and the agent's room and leave and
    join again their user room and global (the later rooms of the events); one that stays in
    its user room and global and leaves and joins again the project's and the agent's room
    (the earlier ones). Each gets every event it is owed once, with its positions in the
    rooms it stays in, and per stay in a room the room's offsets with no gap and no repeat
    (several_rooms_problems)."""
    channel = f"test-{uuid4().hex[:12]}"
    gateways = cluster(3, redis_url=module_redis_cluster.url, channel=channel)
    project, agent = str(uuid4()), str(uuid4())
    project_room, agent_room = f"project:{project}", f"agent:{agent}"
    members: list[Member] = []
    for index, gateway in enumerate(gateways):
        # Twice as many members leave later rooms: a join or leave there meets an event's copies
        # on their way more often.
        for role in ("steady", "later-rooms", "later-rooms", "earlier-rooms"):
            user = str(uuid4())
            client = await clients().connect(gateway.url, make_token(user, projects=[project]))
            await client.next("connection_established")
            for room in (project_room, agent_room):
                assert subscribed(await client.command("subscribe", {"room": room}), room)
            own = f"user:{user}"
            churned = {
                "steady": (),
                "later-rooms": (own, "global"),
                "earlier-rooms": (project_room, agent_room),
            }
            rooms = frozenset({own, "global", project_room, agent_room}) - set(churned[role])
            members.append(
                Member(f"{role} member #{len(members)} on gw{index}", client, user, rooms, churned[role])
            )
    publisher = Publisher(gateways, to_several_rooms(project, agent, [member.user for member in members]))
    stop = asyncio.Event()
    async with publisher.running():
        churning = [
            asyncio.create_task(churn(member, stop, random.Random(seed)))
            for seed, member in enumerate(members)
            if member.churned
        ]
        await publisher.until(150, project_room)
        stop.set()
        await asyncio.gather(*churning)
        tail_from = publisher.sent + 1
        await publisher.until(10, project_room, after=tail_from)
        await publisher.until(10, agent_room, after=tail_from)
    assert publisher.refused == {}, "Redis was up: no publish may be refused"
    receipts = {receipt["id"]: receipt for receipt in publisher.accepted.values()}
    tail = {receipt["id"] for n, receipt in publisher.accepted.items() if n >= tail_from}

    def all_arrived() -> bool:
        return all(
            owed_to(member, receipts, tail)
            <= {traced.data["id"] for traced in filter(several_rooms_event, member.client.trace)}
            for member in members
        )

    await settled(all_arrived)
    problems = position_conflicts(members)
    offsets = {
        (traced.data["id"], room): position["offset"]
        for member in members
        for traced in filter(several_rooms_event, member.client.trace)
        for room, position in traced.data["positions"].items()
    }
    for member in members:
        problems += several_rooms_problems(member, receipts, tail, offsets)
    assert problems == [], "\n".join(problems)

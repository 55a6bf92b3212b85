"""Per-user connection counts and agent presence over the whole cluster, kept in Redis.

With several instances, a user's ``MAX_CONNECTIONS_PER_USER`` and an agent's
``agent.connected`` / ``agent.disconnected`` are about the user and the agent, not about the
instance their connections happen to land on. Here each instance keeps its own counts (it
knows them exactly) and mirrors them into Redis, where every instance's share is summed.

Keys (``P`` is REDIS_CHANNEL, the key prefix of the gateway):

- ``P:presence:connections:{<user id>}`` and ``P:presence:agents:{<agent id>}``: one hash
  per user (per agent), ``instance id -> that instance's connections``. The id in braces is
  the key's hash tag: every script touches one such key, so it runs on Redis Cluster too.
- ``P:presence:index:connections:<instance id>`` and ``P:presence:index:agents:<instance
  id>``: the ids an instance has a share for, so that removing a dead instance's share reads
  one set instead of scanning the keyspace.
- ``P:presence:instances``: the instances that hold a share (a handful of members).
- ``P:presence:sweeping:<instance id>``: who is removing that instance's share (a 30 s lock).
- ``{P:instances}:<instance id>``: the stats heartbeat of server/cluster/stats.py (every
  HEARTBEAT_INTERVAL, 2 s; it lives three of them), reused as the sign of life: nothing here
  writes a second heartbeat.

One script (``_WRITE``) sets an instance's field in a hash and answers the cluster total
before and after, in one step: a connect checks the limit and takes its place atomically
(two instances cannot both take the last place), and "first connection" / "last connection"
is decided on the cluster total, so an agent is announced once wherever it connects. The
instance writes its absolute count, not an increment: any write repairs whatever Redis had
for that id (after an outage, a Redis restart, or a sweep that wrongly took it for dead).
Writes for one id are serialised in the instance (a lock per id), so they reach Redis in order.

A dead instance's share expires. Every ``tick`` (PRESENCE_TICK, 3 s) each instance checks
that its own share is still registered (else writes it back), writes back counts that changed
while Redis was away, and looks at the instances holding a share: one whose heartbeat has
been missing for ``grace`` (PRESENCE_GRACE, 6 s, three heartbeats) is swept (its fields
deleted, ``agent.disconnected`` published for each agent whose total falls to 0, its index
dropped). The grace keeps a Redis blip, after which every heartbeat is missing until the next
beat, from sweeping live instances. So after a SIGKILL, with the defaults: heartbeat gone
within 6 s, first seen missing within 3 s more, swept 6-9 s later: the agents are announced
disconnected 10-18 s after the crash, and the users' places are free again at the same time.
A clean stop withdraws the share itself. A tick costs an instance 2 commands plus one EXISTS
per instance holding a share.

A Redis failure at connect time fails open. The limit protects the gateway from one user
hogging it; presence is informational. Refusing every connect during a Redis blip would turn
a short outage of a side store into an outage of the product, for all users, to enforce a
limit that the per-instance count still enforces in part. So while Redis does not answer, a
connection is admitted against this instance's own count (the limit then holds per instance,
as without Redis), presence is not announced, and the outage is logged once. The counts
changed meanwhile are written back on the first tick that reaches Redis, and the agents whose
cluster total crossed 0 then are announced, late rather than never. Connects do not wait on a
Redis known to be down: after one failure they count locally until a tick succeeds.

What is not guaranteed: a disconnect on one instance and a reconnect on another within the
same few milliseconds are each announced once, but the two events may arrive in either order
(compare their timestamps). An instance that stalls for longer than the grace is swept while
alive: its agents are announced disconnected, then connected again when it writes its share
back. After Redis lost its data (a restart without persistence), every instance writes its
share back and its agents are announced connected again, although nobody heard they had
gone. Two processes must not share an INSTANCE_ID (they would overwrite each other's share):
the second refuses to start (server/cluster/identity.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from uuid import UUID

from swe_realtime import background
from swe_realtime.cluster.connection import AnyRedis, connect
from swe_realtime.cluster.stats import heartbeat_key
from swe_realtime.errors import ConnectionLimit
from swe_realtime.publish.broadcaster import Broadcaster
from swe_realtime.sessions.auth import Principal, Role
from swe_realtime.sessions.presence import Presence, announcement
from swe_realtime.sessions.registry import Connection, Registry
from swe_realtime.settings import DEFAULT_TIMINGS, RedisSettings

OPERATION_TIMEOUT = 1.0
"""Longest a connect or disconnect waits on Redis before counting on this instance alone."""
SWEEP_LOCK_SECONDS = 30
SWEEP_BATCH = 100
"""Ids of a dead instance handled concurrently (one script call each)."""

LOST = "gateway instance lost"
"""The ``reason`` of an ``agent.disconnected`` published for an instance found dead."""
RESTARTED = "gateway instance restarted"
STOPPED = "gateway instance stopped"
WHILE_AWAY = "connection closed while Redis was unreachable"

_log = logging.getLogger("swe_realtime.cluster_presence")

# KEYS[1]: the hash of one user (agent): instance id -> its connections.
# ARGV: the instance, its count before, the count it wants, the limit on increases (0: none).
# Sets the instance's field to the count wanted, or to the count before when an increase
# would take the cluster total past the limit. Returns {taken (1/0), the total as stored
# before, the total now}.
_WRITE = """
local others, stored = 0, 0
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  if fields[i] == ARGV[1] then
    stored = tonumber(fields[i + 1])
  else
    others = others + tonumber(fields[i + 1])
  end
end
local before, wanted, limit = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local taken = 1
if limit > 0 and wanted > before and others + wanted > limit then
  taken, wanted = 0, before
end
if wanted > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], wanted)
else
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return {taken, others + stored, others + wanted}
"""


@dataclass(frozen=True, slots=True)
class Change:
    """What one write did: whether the count was taken, and the cluster total before and
    after as Redis holds it (None when Redis was not reached: this instance decided alone)."""

    taken: bool
    before: int | None = None
    after: int | None = None


@dataclass(slots=True)
class _Lock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class Counts:
    """One kind of count (connections per user, or per agent): this instance's numbers, the
    Redis hashes they are mirrored into, and the ids whose Redis value may be out of date."""

    def __init__(self, shares: ClusterShares, kind: str) -> None:
        self.kind = kind
        self._shares = shares
        self._prefix = f"{shares.channel}:presence"
        self.local: dict[UUID, int] = {}
        """This instance's connections per id. An agent's may dip below 0 for a moment: the
        disconnect handler can run before the connect handler has finished."""
        self.dirty: set[UUID] = set()
        """Ids whose Redis field may not be ``local``: written back on the next tick."""
        self.indexed: set[UUID] = set()
        """Ids this instance has put in its index set in Redis."""
        self._locks: dict[UUID, _Lock] = {}

    def hash_key(self, key: UUID) -> str:
        return f"{self._prefix}:{self.kind}:{{{key}}}"

    def index_key(self, instance: str) -> str:
        return f"{self._prefix}:index:{self.kind}:{instance}"

    def busy(self) -> Iterable[UUID]:
        """Every id this instance may have something for in Redis."""
        return set(self.local) | self.indexed | self.dirty | set(self._locks)

    @asynccontextmanager
    async def lock(self, key: UUID) -> AsyncIterator[None]:
        """Hold while changing ``key``'s count: its writes reach Redis one at a time, in order."""
        entry = self._locks.get(key)
        if entry is None:
            entry = self._locks[key] = _Lock()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._locks[key]

    async def write(self, key: UUID, delta: int, limit: int = 0) -> Change:
        """Change this instance's count of ``key`` by ``delta`` (hold ``lock(key)``).

        With ``limit``, an increase is refused (``taken`` False) when the cluster total would
        pass it; when Redis cannot be asked, when this instance's own count would. Never
        raises for Redis: a failure is logged once per outage and the id written back later.
        """
        before = self.local.get(key, 0)
        wanted = before + delta
        change: Change | None = None
        if self._shares.usable:
            try:
                change = await asyncio.wait_for(self.mirror(key, before, wanted, limit), OPERATION_TIMEOUT)
            except asyncio.CancelledError:
                self.dirty.add(key)
                raise
            except Exception as exc:  # redis, OS and timeout errors alike: count here alone
                self._shares.lost(exc)
        if change is None:
            self.dirty.add(key)
            change = Change(taken=not (limit and delta > 0 and wanted > limit))
        if change.taken:
            if wanted:
                self.local[key] = wanted
            else:
                self.local.pop(key, None)
        return change

    async def mirror(self, key: UUID, before: int, wanted: int, limit: int = 0) -> Change:
        """Write this instance's count of ``key`` into Redis (``wanted``, or ``before`` when
        the limit refuses it), keeping the index a superset of the fields: an id is indexed
        before its field is written and unindexed after the field is gone."""
        shares = self._shares
        redis = shares.redis
        if max(before, wanted) > 0:
            await shares.join()
            if key not in self.indexed:
                await redis.sadd(self.index_key(shares.instance_id), str(key))
                self.indexed.add(key)
        taken, total_before, total_after = await shares.script(
            keys=[self.hash_key(key)], args=[shares.instance_id, max(before, 0), max(wanted, 0), limit]
        )
        stored = wanted if taken else before
        if stored <= 0 and key in self.indexed:
            await redis.srem(self.index_key(shares.instance_id), str(key))
            self.indexed.discard(key)
        self.dirty.discard(key)
        return Change(bool(taken), int(total_before), int(total_after))

    async def total(self, key: UUID) -> int:
        """The cluster total for ``key``; this instance's count when Redis does not answer."""
        if self._shares.usable:
            try:
                fields = await asyncio.wait_for(
                    self._shares.redis.hgetall(self.hash_key(key)),
                    OPERATION_TIMEOUT,
                )
                return sum(int(value) for value in fields.values())
            except Exception as exc:  # as for write: count here alone
                self._shares.lost(exc)
        return max(self.local.get(key, 0), 0)


class ClusterShares:
    """This instance's share of the counts in Redis: written back when lost, withdrawn on stop,
    and the sweep of dead instances' shares. Started and stopped with the stats heartbeat
    (``ClusterStats(companions=...)``), whose key tells live instances from dead ones."""

    def __init__(
        self,
        settings: RedisSettings,
        instance_id: str,
        broadcaster: Broadcaster,
        *,
        tick: float = DEFAULT_TIMINGS.presence_tick,
        grace: float = DEFAULT_TIMINGS.presence_grace,
        health_check: float = DEFAULT_TIMINGS.redis_health_check,
    ) -> None:
        """``tick``: how often this instance checks its share and looks for dead instances;
        ``grace``: how long a heartbeat must be seen missing before its instance's share is
        swept; ``health_check``: REDIS_HEALTH_CHECK_INTERVAL (all in seconds)."""
        self.instance_id = instance_id
        self.channel = settings.channel
        self.redis: AnyRedis = connect(
            settings.url,
            default_service=settings.channel,
            socket_timeout=2,
            health_check_interval=health_check,
        )
        self.script = self.redis.register_script(_WRITE)
        self.connections = Counts(self, "connections")
        self.agents = Counts(self, "agents")
        self._broadcaster = broadcaster
        self._tick = tick
        self._grace = grace
        self._instances = f"{settings.channel}:presence:instances"
        self._down = True
        """Until the first sync, and after a failure until a tick reaches Redis again."""
        self._outage_reported = False
        self._stopped = False
        self._joined = False
        self._stale_self = True
        """A previous process under this instance id may have left a share behind."""
        self._missing: dict[str, float] = {}
        """Instances with a share whose heartbeat was missing, since when (monotonic)."""
        self._task: asyncio.Task[None] | None = None

    @property
    def usable(self) -> bool:
        """Whether connects and disconnects should ask Redis (else they count locally)."""
        return not self._down and not self._stopped

    async def start(self) -> None:
        """Sync with Redis before the first connection (bounded wait), then tick."""
        try:
            await asyncio.wait_for(self._recover(), 5 * OPERATION_TIMEOUT)
        except Exception as exc:  # counted locally until a tick gets through
            self.lost(exc)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Withdraw this instance's share (announcing its agents' last connections), then close."""
        await background.stop([self._task])
        self._stopped = True  # connections closed from now on are counted here alone
        # Whatever is not withdrawn, the other instances sweep once the heartbeat has expired.
        if self._down:  # known to be away: shutting down does not wait on it
            _log.info("Redis is away: this instance's share of the connection counts is left to the sweep")
        else:
            try:
                await asyncio.wait_for(self._withdraw(), 5 * OPERATION_TIMEOUT)
            except Exception as exc:  # as above
                _log.info("could not withdraw this instance's share of the connection counts: %s", exc)
        await self.redis.aclose()

    def lost(self, error: BaseException) -> None:
        """Redis did not answer: count locally until a tick gets through; log once per outage."""
        self._down = True
        if not self._outage_reported:
            self._outage_reported = True
            _log.warning(
                "Redis did not answer (%s: %s): connections are admitted against this instance's"
                " own counts (MAX_CONNECTIONS_PER_USER per instance) and agent presence waits until"
                " it is back",
                type(error).__name__,
                error,
            )

    async def join(self) -> None:
        """Register this instance as holding a share (before its first field is written)."""
        if not self._joined:
            await self.redis.sadd(self._instances, self.instance_id)
            self._joined = True

    async def announce(self, agent: UUID, change: Change, reason: str | None) -> None:
        """Publish ``agent.connected`` / ``agent.disconnected`` when ``change`` took the agent's
        cluster total across 0; a failed publish is logged, never raised to a handler."""
        if change.before is None or change.after is None:
            return
        if change.before <= 0 < change.after:
            event = announcement(agent, connected=True, reason=reason)
        elif change.after <= 0 < change.before:
            event = announcement(agent, connected=False, reason=reason)
        else:
            return
        try:
            await self._broadcaster.publish(event)
        except Exception as exc:  # the count is right; only this announcement is lost
            _log.warning("could not publish %s for agent %s: %s", event.event_type(), agent, exc)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._tick)
            try:
                await self._recover()
                await self._sweep_dead()
            except Exception as exc:  # Redis away: tried again next tick
                self.lost(exc)

    async def _recover(self) -> None:
        """Make Redis hold this instance's share as it is now, then let connects use Redis."""
        if self._stale_self:
            await self._sweep(self.instance_id, RESTARTED)
            self._stale_self = False
        if self._joined and not await self.redis.sismember(self._instances, self.instance_id):
            _log.warning(
                "this instance's share of the connection counts was gone from Redis (swept as"
                " dead, or Redis lost its data); writing it back"
            )
            self._joined = False
            for counts in (self.connections, self.agents):
                counts.indexed.clear()
                counts.dirty.update(counts.local)
        for counts in (self.connections, self.agents):
            for key in list(counts.dirty):
                async with counts.lock(key):
                    count = counts.local.get(key, 0)
                    change = await asyncio.wait_for(counts.mirror(key, count, count), OPERATION_TIMEOUT)
                    if counts is self.agents:
                        await self.announce(key, change, WHILE_AWAY)
        if self._outage_reported:
            _log.warning("Redis answers again: connection counts and agent presence are cluster-wide again")
            self._outage_reported = False
        self._down = False

    async def _sweep_dead(self) -> None:
        """Sweep the instances that hold a share and whose heartbeat is missing for ``grace``."""
        now = time.monotonic()
        listed = {member.decode() async for member in self.redis.sscan_iter(self._instances, count=500)}
        for instance in set(self._missing) - listed:
            del self._missing[instance]
        for instance in sorted(listed - {self.instance_id}):
            if await self.redis.exists(heartbeat_key(self.channel, instance)):
                self._missing.pop(instance, None)
                continue
            since = self._missing.setdefault(instance, now)
            if now - since >= self._grace:
                await self._sweep(instance, LOST)
                self._missing.pop(instance, None)

    async def _sweep(self, instance: str, reason: str) -> None:
        """Remove ``instance``'s share: its fields, its index, its registration. Each field is
        deleted by the script, which answers the totals: only the sweeper that deleted an
        agent's last share announces it, however many sweep at once."""
        if instance == self.instance_id:
            await self._remove_share(instance, reason)
            return
        lock = f"{self.channel}:presence:sweeping:{instance}"
        if not await self.redis.set(lock, self.instance_id, nx=True, ex=SWEEP_LOCK_SECONDS):
            return  # another instance is sweeping it
        try:
            await self._remove_share(instance, reason)
        finally:
            with contextlib.suppress(Exception):  # else it expires: the sweep is tried again then
                await self.redis.delete(lock)

    async def _remove_share(self, instance: str, reason: str) -> None:
        """The sweep itself: registration removed last, so a sweep cut short is redone."""
        swept = announced = 0
        for counts in (self.connections, self.agents):
            index = counts.index_key(instance)
            keys = [UUID(member.decode()) async for member in self.redis.sscan_iter(index, count=500)]
            for start in range(0, len(keys), SWEEP_BATCH):
                batch = keys[start : start + SWEEP_BATCH]
                results = await asyncio.gather(
                    *(self.script(keys=[counts.hash_key(key)], args=[instance, 0, 0, 0]) for key in batch)
                )
                for key, (_, before, after) in zip(batch, results, strict=True):
                    swept += 1
                    if counts is self.agents and int(before) > 0 >= int(after):
                        announced += 1
                        await self.announce(key, Change(True, int(before), int(after)), reason)
            await self.redis.delete(index)
        await self.redis.srem(self._instances, instance)
        if swept:
            _log.info(
                "removed the connection counts of instance %s (%s): %d user/agent share(s),"
                " %d agent(s) announced disconnected",
                instance,
                reason,
                swept,
                announced,
            )

    async def _withdraw(self) -> None:
        """Set every count of this instance to 0 in Redis, each under its id's lock (so a write
        still on its way lands first), announcing agents whose last connection this was."""
        for counts in (self.connections, self.agents):
            for key in counts.busy():
                async with counts.lock(key):
                    change = await counts.mirror(key, max(counts.local.get(key, 0), 0), 0)
                    if counts is self.agents:
                        await self.announce(key, change, STOPPED)
            await self.redis.delete(counts.index_key(self.instance_id))
        await self.redis.srem(self._instances, self.instance_id)


class ClusterRegistry(Registry):
    """The registry, with ``per_user`` counted over every instance (server/sessions/registry.py keeps
    the sid map; the per-user counts live in ``shares.connections``)."""

    def __init__(self, per_user: int, shares: ClusterShares) -> None:
        super().__init__(per_user)
        self._counts = shares.connections
        self._placed: set[str] = set()
        """Sids that hold a place in the counts (a refused one never does)."""

    async def add(self, sid: str, connection: Connection) -> None:
        """Take a place for the connection's user in the cluster count; ConnectionLimit when
        the cluster (or, with Redis away, this instance) has ``per_user`` of them already.

        The sid is visible to ``get`` and ``remove`` while Redis answers: a disconnect that
        arrives meanwhile waits for the answer on the user's lock, then gives the place back.
        """
        user_id = connection.principal.user_id
        self._put(sid, connection)
        try:
            async with self._counts.lock(user_id):
                change = await self._counts.write(user_id, 1, self._per_user)
                if change.taken:
                    self._placed.add(sid)
        except BaseException:
            self._forget(sid, connection)
            raise
        if not change.taken:
            self._forget(sid, connection)
            raise ConnectionLimit("Too many connections for this user")

    async def remove(self, sid: str) -> Connection | None:
        """Forget ``sid`` and give its user's place back; None if it held none."""
        connection = self._pop(sid)
        if connection is None:
            return None
        user_id = connection.principal.user_id
        async with self._counts.lock(user_id):
            if sid not in self._placed:
                return None  # refused while Redis was answering its connect
            self._placed.discard(sid)
            await self._counts.write(user_id, -1)
        return connection

    async def count(self, user_id: UUID) -> int:
        """How many connections ``user_id`` holds over the cluster."""
        return await self._counts.total(user_id)

    def _forget(self, sid: str, connection: Connection) -> None:
        if self._connections.get(sid) is connection:
            self._pop(sid)


class ClusterPresence(Presence):
    """Presence decided on the cluster total: announced by the instance whose write took an
    agent's total from 0 (or to 0), once for the whole cluster. Opens, closes and refreshes
    are those of server/sessions/presence.py; only the counting differs."""

    def __init__(self, broadcaster: Broadcaster, shares: ClusterShares) -> None:
        super().__init__(broadcaster)
        self._shares = shares

    async def _moved(self, principal: Principal, delta: int, reason: str | None) -> None:
        if Role.AGENT not in principal.roles:
            return
        agent_id = principal.user_id
        counts = self._shares.agents
        async with counts.lock(agent_id):  # announced under the lock: in order, per instance
            change = await counts.write(agent_id, delta)
            await self._shares.announce(agent_id, change, reason)

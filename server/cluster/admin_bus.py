"""Asking every instance an admin question, and gathering their answers.

Without Redis there is one instance: :class:`LocalBus` answers alone. With Redis,
:class:`RedisBus` sends the question to every instance on one sharded channel
(``<REDIS_CHANNEL>:admin``, SPUBLISH: one Redis, or the one master of a Redis Cluster that
serves its slot) and each instance pushes its answer onto a list named after the question
(``<REDIS_CHANNEL>:admin:answers:<id>``, expiring), which the asker pops from. Who must
answer is who may hold connections: the instances whose stats heartbeat is in Redis, and those
silent for less than a ping interval, a ping timeout and a heartbeat (a stalled instance's
clients may still be connected to it: server/cluster/stats.py, ``Roster.lately``).
Whatever happens, an answer comes within ANSWER_SECONDS of the question: an instance that
has not answered by then (stalled, its subscription being renewed, gone since its last
heartbeat) is named missing and the answer marked ``partial``, as it is when Redis cannot
be reached at all (then the asker's own part is the whole answer). The asker answers its
own part directly, while the others work on theirs.

This is the request/response pattern of Socket.IO's Redis adapter (``fetchSockets``,
``serverSideEmit`` with acks), with lists instead of a response channel: an answer pushed
before the asker listens is kept, not lost.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import uuid4

from redis.asyncio.cluster import RedisCluster

from swe_realtime import background
from swe_realtime.cluster.connection import AnyRedis, connect
from swe_realtime.cluster.pubsub import Address, PubSubLink, address_of
from swe_realtime.cluster.stats import Roster
from swe_realtime.settings import DEFAULT_TIMINGS, RedisSettings

ANSWER_SECONDS = 2.0
"""Longest wait for the other instances' answers."""
ANSWER_TTL_SECONDS = 30

Answer = dict[str, Any]
Handler = Callable[[str, Answer], Awaitable[Answer]]
"""Answers one question: ``(kind, args) -> this instance's answer``."""

_log = logging.getLogger("swe_realtime.admin")

# KEYS[1]: a question's answer list. ARGV: one answer, the list's time-to-live. One step, so
# that no list is left without its expiry.
_PUSH = """
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
"""


@dataclass(frozen=True, slots=True)
class Answers:
    """Every instance's answer that came in time (the asker's first); ``partial`` when some
    instance did not answer or could not be asked."""

    answers: list[Answer]
    partial: bool


class AdminBus(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def ask(self, kind: str, args: Answer) -> Answers: ...


class LocalBus:
    """One instance: its own answer is the whole answer."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def ask(self, kind: str, args: Answer) -> Answers:
        return Answers([await self._handler(kind, args)], partial=False)


class RedisBus:
    """Questions to every instance over Redis (see the module's docstring). The channel is
    listened to on a pub/sub link of its own (server/cluster/pubsub.py), which pings it when quiet:
    questions are rare, and a connection gone half-open (a NAT's idle timeout, a host gone
    without a word) would otherwise leave this instance deaf for good."""

    def __init__(
        self,
        settings: RedisSettings,
        instance_id: str,
        handler: Handler,
        *,
        health_check: float,
        silent: float = DEFAULT_TIMINGS.silent_instance,
    ) -> None:
        """``silent``: how long an instance that stopped beating is still asked
        (Timings.silent_instance)."""
        self._instance_id = instance_id
        self._handler = handler
        # A command that hangs (a connection gone half-open) fails instead, and its connection
        # is replaced; long enough for the BLPOPs of ``_collect``.
        self._redis: AnyRedis = connect(
            settings.url, default_service=settings.channel, socket_timeout=ANSWER_SECONDS + 1
        )
        self._push = self._redis.register_script(_PUSH)
        self._roster = Roster(self._redis, settings.channel, silent=silent)
        self._channel = f"{settings.channel}:admin"
        self._answers = f"{settings.channel}:admin:answers:"
        self._process = uuid4().hex
        """Who asks, to know its own questions when they come back: not the instance id,
        which two processes might share by mistake (they would then ignore each other)."""
        self._link = PubSubLink(
            self._address, self, interval=health_check, by_slot=isinstance(self._redis, RedisCluster)
        )
        self._answering: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._link.want(self._channel.encode())
        self._link.start()

    async def stop(self) -> None:
        await background.stop(list(self._answering))
        await self._link.stop()
        await self._redis.aclose()

    async def ask(self, kind: str, args: Answer) -> Answers:
        deadline = time.monotonic() + ANSWER_SECONDS
        question: Answer = {"id": uuid4().hex, "from": self._process, "kind": kind, "args": args}
        try:
            async with asyncio.timeout(ANSWER_SECONDS):
                expected = await self._roster.lately() - {self._instance_id}
                await self._redis.spublish(self._channel, json.dumps(question))
        except Exception as exc:  # Redis away: this instance's answer, marked partial
            _log.info("admin question not sent: %s", exc or "timed out")
            return Answers([await self._handler(kind, args)], partial=True)
        own = await self._handler(kind, args)
        answers = await self._collect(self._answers + question["id"], expected, deadline)
        return Answers([own, *answers.values()], partial=not expected <= answers.keys())

    async def _collect(self, key: str, expected: set[str], deadline: float) -> dict[str, Answer]:
        """The answers pushed onto ``key`` by instance, until every one of ``expected`` has
        answered or the deadline has passed."""
        answers: dict[str, Answer] = {}
        while not expected <= answers.keys() and (left := deadline - time.monotonic()) > 0:
            try:
                async with asyncio.timeout(left + 0.25):  # Redis's own timeout, or a hung Redis
                    popped = await self._redis.blpop([key], timeout=left)
            except Exception as exc:  # out of time, or Redis away meanwhile: what came is the answer
                _log.info("admin answers not all read: %s", exc or "timed out")
                break
            if popped is None:
                break
            envelope = json.loads(popped[1])
            answers[str(envelope["instance"])] = envelope["answer"]
        return answers

    # -- what the link reports ----------------------------------------------------------------

    async def message(self, channel: bytes, data: bytes) -> None:
        try:
            question = json.loads(data)
            if question["from"] == self._process:
                return
            kind, args, key = (
                str(question["kind"]),
                dict(question["args"]),
                self._answers + str(question["id"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            _log.warning("ignored an unreadable admin question: %.120s", exc)
            return
        task = asyncio.get_running_loop().create_task(self._answer(kind, args, key))
        self._answering.add(task)
        task.add_done_callback(self._answering.discard)

    async def subscribed(self, channel: bytes) -> None:
        return None

    async def dropped(self, channels: list[bytes], why: str) -> None:
        """The channel's slot moved: subscribe again where it is served now."""
        _log.info("admin channel moved, subscribing again: %s", why)
        self._link.want(self._channel.encode())
        self._link.reconnect("the admin channel's slot moved")

    async def up(self) -> None:
        return None

    async def down(self, error: BaseException, *, was_up: bool) -> None:
        _log.info("admin channel lost, subscribing again: %s: %s", type(error).__name__, error)

    async def _address(self) -> Address:
        """The node serving the channel's slot now (a Redis Cluster: the map is read afresh,
        the slot may have moved), or the one Redis."""
        if not isinstance(self._redis, RedisCluster):
            return await address_of(self._redis)
        if self._redis.nodes_manager.slots_cache:
            await self._redis.nodes_manager.initialize()
        else:
            await self._redis.initialize()
        node = self._redis.get_node_from_key(self._channel)
        if node is None:
            raise ConnectionError(f"no Redis Cluster node serves {self._channel}")
        return await address_of(self._redis, str(node.name))

    async def _answer(self, kind: str, args: Answer, key: str) -> None:
        try:
            answer = await self._handler(kind, args)
            envelope = json.dumps({"instance": self._instance_id, "answer": answer})
            await self._push(keys=[key], args=[envelope, ANSWER_TTL_SECONDS])
        except Exception:  # one bad question (or Redis away) costs its answer, nothing more
            _log.exception("could not answer admin question %.80s", kind)

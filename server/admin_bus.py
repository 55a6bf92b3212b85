"""Asking every instance an admin question, and gathering their answers.

Without Redis there is one instance: :class:`LocalBus` answers alone. With Redis,
:class:`RedisBus` sends the question to every instance on one sharded channel
(``<REDIS_CHANNEL>:admin``, SPUBLISH: one Redis, or the one master of a Redis Cluster that
serves its slot) and each instance pushes its answer onto a list named after the question
(``<REDIS_CHANNEL>:admin:answers:<id>``, expiring), which the asker pops from. Who must
answer is who is alive: the instances whose stats heartbeat is in Redis (server/cluster.py).
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
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import uuid4

from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster

from swe_realtime import tasks
from swe_realtime.cluster import Roster
from swe_realtime.redis_connection import AnyRedis, connect, node_client
from swe_realtime.settings import RedisSettings

ANSWER_SECONDS = 2.0
"""Longest wait for the other instances' answers."""
ANSWER_TTL_SECONDS = 30
PING_SECONDS = 5.0
"""The listener pings its idle subscription this often, and renews it when two pings go
unanswered."""
MAX_BACKOFF = 5.0

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
    """Questions to every instance over Redis (see the module's docstring)."""

    def __init__(self, settings: RedisSettings, instance_id: str, handler: Handler) -> None:
        self._instance_id = instance_id
        self._handler = handler
        # A command that hangs (a connection gone half-open) fails instead, and its connection
        # is replaced; long enough for the BLPOPs of ``_collect``.
        self._redis: AnyRedis = connect(
            settings.url, default_service=settings.channel, socket_timeout=ANSWER_SECONDS + 1
        )
        self._push = self._redis.register_script(_PUSH)
        self._roster = Roster(self._redis, settings.channel)
        self._channel = f"{settings.channel}:admin"
        self._answers = f"{settings.channel}:admin:answers:"
        self._process = uuid4().hex
        """Who asks, to know its own questions when they come back: not the instance id,
        which two processes might share by mistake (they would then ignore each other)."""
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._answering: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._reader = asyncio.get_running_loop().create_task(self._listen_forever())

    async def stop(self) -> None:
        await tasks.stop([self._reader, *self._answering])
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]  # unannotated upstream
        await self._redis.aclose()

    async def ask(self, kind: str, args: Answer) -> Answers:
        deadline = time.monotonic() + ANSWER_SECONDS
        question: Answer = {"id": uuid4().hex, "from": self._process, "kind": kind, "args": args}
        try:
            async with asyncio.timeout(ANSWER_SECONDS):
                expected = await self._roster.live() - {self._instance_id}
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

    async def _listen_forever(self) -> None:
        backoff = 0.5
        while True:
            try:
                async for _ in self._listen():
                    backoff = 0.5  # subscribed: the next loss starts the backoff afresh
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the subscription is gone whatever the error: renew it
                _log.info("admin channel lost, subscribing again: %s", exc)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def _listen(self) -> AsyncIterator[None]:
        """Subscribe and answer the questions that come; yields once subscribed."""
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]  # unannotated upstream
        self._pubsub = node_client(self._redis, await self._node_address()).pubsub()
        await self._pubsub.ssubscribe(self._channel)
        heard = pinged = time.monotonic()
        while True:
            message = await self._pubsub.get_message(timeout=PING_SECONDS)
            now = time.monotonic()
            if message is not None:
                heard = now
            elif now - heard > 2 * PING_SECONDS:
                # Questions are rare: a connection that went half-open (a NAT's idle timeout,
                # a host gone without a word) would otherwise leave this instance deaf for good.
                raise ConnectionError(f"no answer to a ping on the admin channel for {now - heard:.0f} s")
            if now - pinged >= PING_SECONDS:
                await self._pubsub.ping()
                pinged = now
            if message is None:
                continue
            if message["type"] == "ssubscribe":
                yield
            elif message["type"] == "sunsubscribe":
                raise ConnectionError("Redis dropped the admin channel's subscription: its slot moved")
            elif message["type"] == "smessage":
                self._heard(message["data"])

    def _heard(self, data: bytes) -> None:
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

    async def _node_address(self) -> str:
        """The node serving the channel's slot now (a Redis Cluster: the map is read afresh,
        the slot may have moved), or the one Redis."""
        if not isinstance(self._redis, RedisCluster):
            return "redis"
        if self._redis.nodes_manager.slots_cache:
            await self._redis.nodes_manager.initialize()
        else:
            await self._redis.initialize()
        node = self._redis.get_node_from_key(self._channel)
        if node is None:
            raise ConnectionError(f"no Redis Cluster node serves {self._channel}")
        return str(node.name)

    async def _answer(self, kind: str, args: Answer, key: str) -> None:
        try:
            answer = await self._handler(kind, args)
            envelope = json.dumps({"instance": self._instance_id, "answer": answer})
            await self._push(keys=[key], args=[envelope, ANSWER_TTL_SECONDS])
        except Exception:  # one bad question (or Redis away) costs its answer, nothing more
            _log.exception("could not answer admin question %.80s", kind)

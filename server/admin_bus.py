"""Asking every instance an admin question, and gathering their answers.

Without Redis there is one instance: :class:`LocalBus` answers alone. With Redis,
:class:`RedisBus` sends the question to every instance on one sharded channel
(``<REDIS_CHANNEL>:admin``, SPUBLISH: one Redis, or the one master of a Redis Cluster that
serves its slot) and each instance pushes its answer onto a list named after the question
(``<REDIS_CHANNEL>:admin:answers:<id>``, expiring), which the asker pops from. The count
SPUBLISH returns is how many instances heard the question, so the asker knows how many
answers to wait for; one that does not answer within ANSWER_SECONDS (stalled, or gone after
hearing) is given up on and the answer is marked ``partial``, as it is when Redis cannot be
reached at all (then the asker's own part is the whole answer). The asker answers its own
part directly, not through Redis.

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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import uuid4

from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster

from swe_realtime import tasks
from swe_realtime.redis_connection import AnyRedis, connect, node_client
from swe_realtime.settings import RedisSettings

ANSWER_SECONDS = 2.0
"""Longest wait for the other instances' answers."""
ANSWER_TTL_SECONDS = 30
MAX_BACKOFF = 5.0

Answer = dict[str, Any]
Handler = Callable[[str, Answer], Awaitable[Answer]]
"""Answers one question: ``(kind, args) -> this instance's answer``."""

_log = logging.getLogger("swe_realtime.admin")


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
        self._redis: AnyRedis = connect(settings.url, default_service=settings.channel)
        self._channel = f"{settings.channel}:admin"
        self._answers = f"{settings.channel}:admin:answers:"
        self._pubsub: PubSub | None = None
        self._listening = False
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
        own = await self._handler(kind, args)
        question: Answer = {"id": uuid4().hex, "from": self._instance_id, "kind": kind, "args": args}
        try:
            heard = int(
                await asyncio.wait_for(
                    self._redis.spublish(self._channel, json.dumps(question)), ANSWER_SECONDS
                )
            )
        except Exception as exc:  # Redis away: this instance's answer, marked partial
            _log.info("admin question not sent: %s", exc)
            return Answers([own], partial=True)
        expected = heard - (1 if self._listening else 0)
        answers = await self._collect(self._answers + question["id"], expected)
        return Answers([own, *answers], partial=len(answers) < expected)

    async def _collect(self, key: str, expected: int) -> list[Answer]:
        answers: list[Answer] = []
        deadline = time.monotonic() + ANSWER_SECONDS
        while len(answers) < expected and (left := deadline - time.monotonic()) > 0:
            try:
                popped = await asyncio.wait_for(self._redis.blpop([key], timeout=max(left, 0.01)), left + 0.5)
            except Exception as exc:  # Redis away meanwhile: what came is the answer
                _log.info("admin answers not read: %s", exc)
                break
            if popped is None:
                break
            answers.append(json.loads(popped[1]))
        return answers

    async def _listen_forever(self) -> None:
        backoff = 0.5
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the subscription is gone whatever the error: renew it
                self._listening = False
                _log.info("admin channel lost, resubscribing: %s", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            else:
                backoff = 0.5

    async def _listen(self) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]  # unannotated upstream
        self._pubsub = node_client(self._redis, await self._node_address()).pubsub()
        await self._pubsub.ssubscribe(self._channel)
        while True:
            message = await self._pubsub.get_message(timeout=None)
            if message is None:
                continue
            if message["type"] == "ssubscribe":
                self._listening = True
            elif message["type"] == "sunsubscribe":
                raise ConnectionError("Redis dropped the admin channel's subscription: its slot moved")
            elif message["type"] == "smessage":
                question = json.loads(message["data"])
                if question.get("from") != self._instance_id:
                    task = asyncio.get_running_loop().create_task(self._answer(question))
                    self._answering.add(task)
                    task.add_done_callback(self._answering.discard)

    async def _node_address(self) -> str:
        """The node serving the channel's slot (a Redis Cluster), or the one Redis."""
        if not isinstance(self._redis, RedisCluster):
            return "redis"
        await self._redis.initialize()
        node = self._redis.get_node_from_key(self._channel)
        if node is None:
            raise ConnectionError(f"no Redis Cluster node serves {self._channel}")
        return str(node.name)

    async def _answer(self, question: Answer) -> None:
        try:
            answer = await self._handler(str(question["kind"]), question["args"])
            key = self._answers + str(question["id"])
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.rpush(key, json.dumps(answer))
                pipe.expire(key, ANSWER_TTL_SECONDS)
                await pipe.execute()
        except Exception:  # one bad question (or Redis away) costs its answer, nothing more
            _log.exception("could not answer admin question %.80s", question.get("kind"))

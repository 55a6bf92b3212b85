"""The library internals the gateway patches (swe_realtime/_compat/) are those it was read against.

Each _compat module lists, in UPSTREAM, the upstream objects it overrides or relies on with a
digest of their source per version read. When the installed source differs, the patch must
be re-read: the test names the file to re-check and the digest to add once that is done.
The channel message our publishers write by hand is compared with what python-socketio
itself publishes, on a real Redis.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import pkgutil
from importlib.metadata import version
from typing import Any
from uuid import uuid4

import pytest
import socketio
from redis.asyncio import Redis

import swe_realtime._compat as compat
from swe_realtime._compat import Upstream, source_digest
from swe_realtime._compat.socketio_pubsub import SOURCE_HOST, emit_message
from swe_realtime.settings import HistorySettings
from swe_realtime.streams import RoomStreams
from tests.support import SHARED_REDIS

MODULES = [
    importlib.import_module(f"{compat.__name__}.{info.name}")
    for info in pkgutil.iter_modules(compat.__path__)
]
CHECKED = [(module.__name__, entry) for module in MODULES for entry in getattr(module, "UPSTREAM", ())]


def test_every_patch_module_names_what_it_depends_on() -> None:
    named = {module.__name__.rpartition(".")[2] for module in MODULES if getattr(module, "UPSTREAM", ())}
    assert named == {"engineio", "socketio", "fanout", "socketio_redis", "socketio_pubsub", "uvicorn"}


@pytest.mark.parametrize(("module", "entry"), CHECKED, ids=[f"{m}:{e.target}" for m, e in CHECKED])
def test_patched_upstream_source_is_the_one_read(module: str, entry: Upstream) -> None:
    installed, digest = version(entry.distribution), source_digest(entry.target)
    path = module.replace(".", "/") + ".py"
    name = entry.target.partition(":")[2]
    assert digest in entry.digests.values(), (
        f"re-check {path}: {entry.distribution}'s {name} changed (installed {installed}, digest "
        f"{digest}; read against {', '.join(entry.digests)}). Once the patch is right for it, add "
        f'"{installed}": "{digest}" to its UPSTREAM entry.'
    )


async def _published(channel: str, publish: Any) -> dict[str, Any]:
    """The one message ``publish()`` puts on ``channel`` of the shared Redis."""
    redis = Redis.from_url(SHARED_REDIS)
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(channel)
    try:
        await publish()
        async with asyncio.timeout(5):
            while (message := await pubsub.get_message(timeout=1)) is None:
                pass
        result: dict[str, Any] = json.loads(message["data"])
        return result
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
        await redis.aclose()


async def test_hand_built_channel_message_is_python_socketios() -> None:
    channel, payload, rooms = (
        f"test-{uuid4().hex[:12]}",
        {"type": "x", "data": {"n": 1}},
        ["project:a", "global"],
    )
    manager = socketio.AsyncRedisManager(SHARED_REDIS, channel=channel, write_only=True)

    async def no_local_delivery(message: dict[str, Any]) -> None:
        """A write-only manager has no server to deliver to; its emit still publishes."""

    manager._handle_emit = no_local_delivery
    try:
        theirs = await _published(channel, lambda: manager.emit("x", payload, namespace="/ws", room=rooms))
    finally:
        client: Redis = manager.redis
        await client.aclose()
    ours = emit_message("x", payload, rooms=rooms, namespace="/ws")
    assert theirs.pop("host_id") == manager.host_id
    assert ours.pop("host_id") == SOURCE_HOST
    assert ours == theirs


async def test_stream_publish_sends_python_socketios_message_with_positions() -> None:
    channel, rooms = f"test-{uuid4().hex[:12]}", ["project:a", "global"]
    streams = RoomStreams(channel, HistorySettings(size=10, ttl=60))
    redis = Redis.from_url(SHARED_REDIS)
    try:
        message = await _published(
            channel, lambda: streams.publish(redis, "x", {"type": "x", "data": {}}, rooms, "/ws")
        )
        await streams.forget(redis, set(rooms))
    finally:
        await redis.aclose()
    positions = message["data"][0].pop("positions")
    assert message == emit_message("x", {"type": "x", "data": {}}, rooms=rooms, namespace="/ws")
    assert [positions[room]["offset"] for room in rooms] == [1, 1]

"""Smaller per-connection objects, for the memory a held WebSocket costs.

A tracemalloc census of 2,000 idle connections (RESULTS.md in bench/) put most of the ~40 KB
each one costs in library objects, not in the gateway's own state. Three of them are larger
than what they do for a connection:

1. Two ``asyncio.Queue`` per connection (python-engineio's send queue and uvicorn's receive
   queue), about 3.2 KB each: three deques and the join/close machinery. Each has exactly
   one consumer (the session's writer task; the ASGI app's ``receive``), so
   :class:`SingleConsumerQueue` holds one deque and at most one waiting future.
2. python-engineio reads its send queue through ``asyncio.wait_for(queue.get(), ...)``; a
   coroutine there is wrapped in a task that lives as long as the connection idles (about
   1.6 KB). :meth:`SingleConsumerQueue.get` returns a future, which ``wait_for`` awaits as
   it is. An empty queue holds no deque at all.
3. python-engineio's ``translate_request`` defines a class per request (about 2.5 KB with
   its instance) for reading an HTTP body, and the environ holding it lives as long as the
   WebSocket. A WebSocket has no body: :func:`translate_request` puts a shared empty reader
   in its place.
4. uvicorn keeps the handshake's request and response objects after the handshake, headers
   and all; :class:`SlimWebSocketProtocol` lets them go once the WebSocket is accepted, and
   pauses writes on a :class:`Flag` rather than an ``asyncio.Event``.

Together: 39 KB to 27 KB of RSS per idle connection (2,000 connections, node clients).

This module holds the two small replacements; the patches that put them in place are in
_compat/engineio.py (1, 2, 3) and _compat/uvicorn.py (4). tests/test_memory.py keeps the
saving from vanishing unseen.

The send queue (:class:`SendQueue`) also keeps the count of what a client has not read, in
characters as well as packets, for the slow-consumer bound (_compat/socketio.py): it counts
what it holds, and hands its reader (python-engineio's writer task, or a long-poll) at most
:data:`BATCH_CHARS` at a time, so what a stalled client leaves unread stays in the queue,
counted, instead of in the writer's batch.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Generic, Protocol, TypeVar

T = TypeVar("T")

BATCH_CHARS = 64 * 1024
"""The most a reader of a :class:`SendQueue` takes at once (a larger packet goes alone)."""


class SingleConsumerQueue(Generic[T]):
    """The part of ``asyncio.Queue`` python-engineio and uvicorn use, for one consumer.

    An item put while the consumer waits is handed straight to its future. A consumer
    cancelled after that hand-over loses the item; both consumers here are cancelled only
    when their connection ends, when the item is moot.
    """

    __slots__ = ("_drained", "_getter", "_items", "_unfinished")

    def __init__(self) -> None:
        # None while empty: a deque costs ~760 bytes, and most queues are empty.
        self._items: deque[T] | None = None
        self._getter: asyncio.Future[T] | None = None
        self._unfinished = 0
        self._drained: asyncio.Future[None] | None = None

    def qsize(self) -> int:
        return len(self._items) if self._items else 0

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: T) -> None:
        self._unfinished += 1
        getter, self._getter = self._getter, None
        if getter is not None and not getter.done():
            getter.set_result(item)
        elif self._items is None:
            self._items = deque((item,))
        else:
            self._items.append(item)

    async def put(self, item: T) -> None:
        self.put_nowait(item)

    def get(self) -> asyncio.Future[T]:
        """A future of the next item: awaitable like the coroutine of ``asyncio.Queue``."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        if self._items:
            future.set_result(self._take())
        else:
            self._getter = future
        return future

    def get_nowait(self) -> T:
        if not self._items:
            raise asyncio.QueueEmpty
        return self._take()

    def _take(self) -> T:
        assert self._items is not None
        item = self._items.popleft()
        if not self._items:
            self._items = None
        return item

    def task_done(self) -> None:
        self._unfinished -= 1
        if self._unfinished <= 0 and self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    async def join(self) -> None:
        if self._unfinished > 0:
            if self._drained is None or self._drained.done():
                self._drained = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._drained)


class Encodable(Protocol):
    """An Engine.IO packet: ``encode()`` caches its text, so sizing it here costs the writer
    nothing."""

    def encode(self) -> Any: ...


class SendQueue(SingleConsumerQueue[Encodable | None]):
    """A session's send queue that knows how much it holds unread (``chars``) and ends each
    batch of ``get_nowait`` at :data:`BATCH_CHARS` (python-engineio's ``poll`` takes a
    ``get`` then ``get_nowait`` until QueueEmpty). ``None`` is the end-of-stream marker."""

    __slots__ = ("_batch", "_room", "_room_chars", "_room_items", "chars")

    def __init__(self) -> None:
        super().__init__()
        self.chars = 0
        """Characters of the encoded packets queued."""
        self._batch = 0
        self._room: asyncio.Future[None] | None = None
        self._room_chars = 0
        self._room_items = 0

    def put_nowait(self, item: Encodable | None) -> None:
        handed_over = self._getter is not None and not self._getter.done()
        super().put_nowait(item)
        if item is None:
            return
        if handed_over:  # straight to the waiting reader: the first of its batch
            self._batch += len(item.encode())
        else:
            self.chars += len(item.encode())

    def get(self) -> asyncio.Future[Encodable | None]:
        self._batch = 0
        return super().get()

    def get_nowait(self) -> Encodable | None:
        if self._batch >= BATCH_CHARS:
            raise asyncio.QueueEmpty  # this batch is full; the next ``get`` starts another
        return super().get_nowait()

    def _take(self) -> Encodable | None:
        item = super()._take()
        if item is not None:
            size = len(item.encode())
            self.chars -= size
            self._batch += size
        room = self._room
        if room is not None and self.chars <= self._room_chars and self.qsize() <= self._room_items:
            self._room = None
            if not room.done():
                room.set_result(None)
        return item

    def room(self, chars: int, items: int) -> asyncio.Future[None] | None:
        """None while at most ``chars`` characters and ``items`` packets are queued; else a
        future done once they are (shared by every waiter: await it shielded)."""
        if self.chars <= chars and self.qsize() <= items:
            return None
        self._room_chars, self._room_items = chars, items
        if self._room is None or self._room.done():
            self._room = asyncio.get_running_loop().create_future()
        return self._room


class Flag:
    """The part of ``asyncio.Event`` uvicorn's flow control uses (``writable``), holding no
    deque of waiters until someone waits (an idle ``asyncio.Event`` holds ~850 bytes)."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if not self._set:
            waiter = asyncio.get_running_loop().create_future()
            if self._waiters is None:
                self._waiters = []
            self._waiters.append(waiter)
            await waiter
        return True

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
   and all (and websockets' parser keeps the request too, in its generator's frame), and the
   ASGI scope keeps the raw header list; :class:`SlimWebSocketProtocol` empties the
   request's headers, lets the objects go and empties the scope's list once the WebSocket
   is accepted (the application read them into its environ before), and pauses writes on
   a :class:`Flag` rather than an ``asyncio.Event``.

Together: 39 KB to 27 KB of RSS per idle connection (2,000 connections, node clients).

This module holds the two small replacements; the patches that put them in place are in
protocol/engineio.py (1, 2, 3) and protocol/uvicorn.py (4). tests/test_memory.py keeps the
saving from vanishing unseen.

The send queue (:class:`SendQueue`) also keeps the count of what a client has not read, in
characters as well as packets, for the slow-consumer bound (protocol/socketio.py). Over a
WebSocket it holds what was sent before the session's frame writer took over (protocol/frames.py);
over long-polling, what the next poll takes.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Generic, Protocol, TypeVar

T = TypeVar("T")


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
    """A session's send queue that knows how much it holds unread (``pending_bytes``, in
    characters of the encoded packets). ``None`` is the end-of-stream marker. One of the two
    kinds of a session's outbox (the other: frames.FrameWriter)."""

    __slots__ = ("_room", "_room_chars", "_room_items", "pending_bytes")

    def __init__(self) -> None:
        super().__init__()
        self.pending_bytes = 0
        self._room: asyncio.Future[None] | None = None
        self._room_chars = 0
        self._room_items = 0

    @property
    def pending_frames(self) -> int:
        return self.qsize()

    def put_nowait(self, item: Encodable | None) -> None:
        if item is not None and (self._getter is None or self._getter.done()):
            self.pending_bytes += len(item.encode())  # not if handed straight to a waiting reader
        super().put_nowait(item)

    def _take(self) -> Encodable | None:
        item = super()._take()
        if item is not None:
            self.pending_bytes -= len(item.encode())
        room = self._room
        if room is not None and self._fits(self._room_chars, self._room_items):
            self._room = None
            if not room.done():
                room.set_result(None)
        return item

    def room(self, max_bytes: int, max_frames: int) -> asyncio.Future[None] | None:
        """None while at most ``max_bytes`` characters and ``max_frames`` packets are queued;
        else a future done once they are (shared by every waiter: await it shielded)."""
        if self._fits(max_bytes, max_frames):
            return None
        self._room_chars, self._room_items = max_bytes, max_frames
        if self._room is None or self._room.done():
            self._room = asyncio.get_running_loop().create_future()
        return self._room

    def _fits(self, max_bytes: int, max_frames: int) -> bool:
        return self.pending_bytes <= max_bytes and self.qsize() <= max_frames


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

"""One Redis pub/sub connection, owned by one task: the only one that writes to it.

redis-py's ``PubSub`` lets any task send a (un)subscribe while another waits for messages on
the same connection. When the connection holds no subscription, redis-py checks its health
before such a command by sending a PING *and reading the answer*, from the task that asked:
two readers on one connection, "read() called while another coroutine is already waiting",
taken for an outage while the subscription was never sent (issue 24: rooms silent for good
after ten idle seconds, every publish answered 202). So the gateway keeps its own small
pub/sub connection instead:

- the socket is read by an ``asyncio.Protocol`` (hiredis parses), which never writes and
  never awaits: it matches each confirmation to the command it answers (Redis answers in
  order), and queues what the listener must hear;
- one task, the link's owner, does everything else: it connects, authenticates, sends the
  (un)subscribes that others asked for (:meth:`PubSubLink.want`, :meth:`PubSubLink.unwant`
  only note the wish and wake it), pings the connection when it has been quiet, and hands
  the queued messages and confirmations to the listener, one at a time, in the order they
  came;
- a connection is declared lost only by a failed read or write: it closed or reset, it could
  not be opened, or a PING went unanswered for a whole interval. A slow or idle Redis is
  neither; a subscription is never silently dropped: what Redis refuses or drops (its slot
  moved) is handed back to the listener to place elsewhere.

At most one command per channel is in flight, so a channel's state is always plain: wanted or
not, confirmed on this connection or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, cast

import hiredis
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.crc import key_slot

from swe_realtime import background

CONNECT_TIMEOUT = 2.0
MAX_BACKOFF = 5.0
QUEUED_HIGH = 10_000
"""Messages waiting for the owner at which the socket stops being read (Redis then holds
them, within its own output-buffer limit for pub/sub clients)."""
QUEUED_LOW = QUEUED_HIGH // 2
"""...and at which it is read again."""


class Refused(Exception):
    """Redis answered the connection with an error (a wrong password, a command it does not
    allow): not an outage, a setting to fix."""


_log = logging.getLogger("swe_realtime.redis")


@dataclass(frozen=True, slots=True)
class Address:
    """Where a pub/sub connection goes and how it logs in: what redis-py's own connection
    to that node would use (host and port or a socket path, TLS, credentials)."""

    name: str
    host: str = ""
    port: int = 0
    path: str | None = None
    tls: ssl.SSLContext | None = None
    username: str | None = None
    password: str | None = None


async def address_of(redis: Redis | RedisCluster, node: str | None = None) -> Address:
    """The address of ``node`` (``host:port``) of a Redis Cluster, or of the one Redis
    ``redis`` talks to (a sentinel's current master: asked now)."""
    if isinstance(redis, RedisCluster):
        assert node is not None
        cluster_node = redis.get_node(node_name=node)
        if cluster_node is None:
            raise ConnectionError(f"no Redis Cluster node {node}")
        return _address(node, cluster_node.connection_class, cluster_node.connection_kwargs)
    pool = redis.connection_pool
    kwargs = dict(pool.connection_kwargs)
    if isinstance(pool, SentinelConnectionPool):
        kwargs["host"], kwargs["port"] = await pool.get_master_address()  # type: ignore[no-untyped-call]
    name = kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}"
    return _address(str(name), pool.connection_class, kwargs)


def _address(name: str, connection_class: type[Any], kwargs: dict[str, Any]) -> Address:
    tls = None
    if issubclass(connection_class, SSLConnection):
        # The context redis-py would build from the same settings (CA, client cert, checks).
        tls = connection_class(**kwargs).ssl_context.get()
    unix = issubclass(connection_class, UnixDomainSocketConnection)
    return Address(
        name=name,
        host=str(kwargs.get("host", "")),
        port=int(kwargs.get("port") or 0),
        path=str(kwargs["path"]) if unix else None,
        tls=tls,
        username=kwargs.get("username"),
        password=kwargs.get("password"),
    )


class Listener(Protocol):
    """What a link reports, one call at a time, in the order it happened."""

    async def message(self, channel: bytes, data: bytes) -> None:
        """A message on a subscribed channel."""

    async def subscribed(self, channel: bytes) -> None:
        """Redis confirmed the channel's subscription on a (new) connection: from now on its
        messages come; what came before is not here."""

    async def dropped(self, channels: list[bytes], why: str) -> None:
        """Redis refused or ended these channels' subscriptions (their slot is served
        elsewhere). The link no longer wants them."""

    async def up(self) -> None:
        """Connected and answering; the wanted channels are being subscribed."""

    async def down(self, error: BaseException, *, was_up: bool) -> None:
        """The connection failed (every subscription is void); the link reconnects.
        ``was_up``: it had been answering (it broke), rather than never opened."""


def command(*args: bytes | str | int) -> bytes:
    """One command in RESP."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        raw = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(parts)


class _Reader(asyncio.Protocol):
    """The link's socket, read: replies parsed, matched, queued. Never writes."""

    def __init__(self, link: PubSubLink) -> None:
        self._link = link
        self._parser = hiredis.Reader()
        self.transport: asyncio.Transport | None = None
        self.lost: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
        self._paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio's classes

    def data_received(self, data: bytes) -> None:
        self._parser.feed(data)
        link = self._link
        link.heard = asyncio.get_running_loop().time()
        try:
            while (reply := self._parser.gets()) is not False:
                link.on_reply(reply)
        except Exception as exc:  # a reply out of protocol: this connection cannot be trusted
            self.connection_lost(exc)
            if self.transport is not None:
                self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.end(exc or ConnectionError("Redis closed the pub/sub connection"))

    def end(self, why: BaseException) -> None:
        """The connection is over, for ``why`` (the first reason given stands)."""
        if not self.lost.done():
            self.lost.set_result(why)
        self._link.wake()

    def pause(self) -> None:
        if self.transport is not None and not self._paused:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.transport is not None and self._paused:
            self._paused = False
            self.transport.resume_reading()


class PubSubLink:
    """Sharded pub/sub on one Redis node (see the module's docstring).

    ``resolve`` says where to connect, asked at every (re)connection (a Redis Cluster's slot
    may have moved, a sentinel's master changed). ``interval``: a connection quiet this long
    is pinged, and one whose ping is not answered within another is dropped. ``by_slot``:
    a Redis Cluster refuses a sharded (un)subscribe across slots (CROSSSLOT), so channels
    are sent grouped by slot.
    """

    def __init__(
        self,
        resolve: Callable[[], Awaitable[Address]],
        listener: Listener,
        *,
        interval: float,
        by_slot: bool,
    ) -> None:
        self._resolve = resolve
        self._listener = listener
        self._interval = interval
        self._by_slot = by_slot
        self.wanted: set[bytes] = set()
        self._confirmed: set[bytes] = set()
        """Subscribed on the current connection, as Redis confirmed."""
        self._in_flight: set[bytes] = set()
        self._to_subscribe: set[bytes] = set()
        self._to_unsubscribe: set[bytes] = set()
        self._sent: deque[tuple[bytes, set[bytes]]] = deque()
        """Commands sent and not yet answered, oldest first: (kind, channels still to confirm)."""
        self._events: deque[tuple[Any, ...]] = deque()
        """What the listener is still to hear."""
        self._wake = asyncio.Event()
        self._reader: _Reader | None = None
        self.heard = 0.0
        """When the connection last carried anything from Redis (loop time)."""
        self._pinged: float | None = None
        self.up = False
        """Connected, and its first PING answered."""
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._own())

    async def stop(self) -> None:
        await background.stop([self._task])
        self._close()

    def want(self, channel: bytes) -> None:
        """Subscribe ``channel`` (the listener hears ``subscribed`` once it is)."""
        if channel in self.wanted:
            return
        self.wanted.add(channel)
        self._to_unsubscribe.discard(channel)
        if channel in self._confirmed and channel not in self._in_flight:
            self._events.append(("subscribed", channel))  # still subscribed: an unsubscribe was not sent yet
        else:
            self._to_subscribe.add(channel)
        self.wake()

    def unwant(self, channels: Iterable[bytes]) -> None:
        for channel in channels:
            self.wanted.discard(channel)
            self._to_subscribe.discard(channel)
            if channel in self._confirmed:
                self._to_unsubscribe.add(channel)
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    def reconnect(self, why: str) -> None:
        """Drop the connection and make a new one (it resolves the address again)."""
        if self._reader is not None:
            self._reader.end(ConnectionError(f"renewed: {why}"))
            if self._reader.transport is not None:
                self._reader.transport.abort()

    # -- the socket's side (called by _Reader, never awaits) --------------------------------

    def on_reply(self, reply: Any) -> None:
        if isinstance(reply, list) and reply and isinstance(reply[0], bytes):
            kind = reply[0].lower()
            if kind == b"smessage":
                self._events.append(("message", reply[1], reply[2]))
                if len(self._events) >= QUEUED_HIGH and self._reader is not None:
                    self._reader.pause()  # the owner is behind: Redis holds the rest
                self.wake()
                return
            if kind in (b"ssubscribe", b"sunsubscribe"):
                self._confirm(kind, reply[1])
                return
            if kind == b"pong":
                self._answered(b"ping")
                return
        if reply == b"PONG" or reply == b"OK":
            self._answered(b"ping" if reply == b"PONG" else b"auth")
            return
        if isinstance(reply, hiredis.ReplyError):
            self._refused(str(reply))
            return
        raise ConnectionError(f"unexpected reply on a pub/sub connection: {reply!r:.80}")

    def _answered(self, kind: bytes) -> None:
        if not self._sent or self._sent[0][0] != kind:
            raise ConnectionError(f"an answer to {kind.decode()} that was not asked")
        self._sent.popleft()
        if kind == b"ping":
            self._pinged = None
            if not self.up:
                self.up = True
                self._events.append(("up",))
                self.wake()

    def _confirm(self, kind: bytes, channel: bytes) -> None:
        head = self._sent[0] if self._sent else None
        if head is None or head[0] != kind or channel not in head[1]:
            if kind == b"sunsubscribe":  # not asked: Redis moved the channel's slot elsewhere
                self._confirmed.discard(channel)
                if channel in self.wanted:
                    self.wanted.discard(channel)
                    self._events.append(("dropped", [channel], "its slot moved to another node"))
                    self.wake()
                return
            raise ConnectionError(f"a {kind.decode()} of {channel!r:.80} that was not asked")
        head[1].discard(channel)
        if not head[1]:
            self._sent.popleft()
        self._in_flight.discard(channel)
        if kind == b"ssubscribe":
            self._confirmed.add(channel)
            if channel in self.wanted:
                self._events.append(("subscribed", channel))
            else:
                self._to_unsubscribe.add(channel)
        else:
            self._confirmed.discard(channel)
            if channel in self.wanted:
                self._to_subscribe.add(channel)
        self.wake()

    def _refused(self, error: str) -> None:
        if not self._sent:
            raise Refused(f"Redis: {error}")
        kind, channels = self._sent.popleft()
        if kind in (b"auth", b"ping"):
            raise Refused(f"Redis refused {kind.decode().upper()}: {error}")
        self._in_flight -= channels
        if kind == b"ssubscribe":
            refused = [channel for channel in channels if channel in self.wanted]
            self.wanted -= channels
            if refused:
                self._events.append(("dropped", refused, error))
        self.wake()

    # -- the owner -------------------------------------------------------------------------

    async def _own(self) -> None:
        backoff = 0.1
        while True:
            try:
                await self._connect()
                await self._serve()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a failed read or write: the connection is gone
                was_up = self.up
                self._close()
                await self._tell_listener()
                await self._listener.down(exc, was_up=was_up)
                if was_up:
                    backoff = 0.1
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    async def _connect(self) -> None:
        address = await self._resolve()
        loop = asyncio.get_running_loop()
        reader = _Reader(self)
        if address.path is not None:
            opening = loop.create_unix_connection(lambda: reader, address.path)
        else:
            opening = loop.create_connection(
                lambda: reader,
                address.host,
                address.port,
                ssl=address.tls,
                server_hostname=address.host if address.tls else None,
            )
        await asyncio.wait_for(opening, CONNECT_TIMEOUT)
        self._reader = reader
        self.heard = loop.time()
        if address.password is not None:
            login = [address.username, address.password] if address.username else [address.password]
            self._write(command("AUTH", *login), b"auth", set())
        self._ping()
        self._to_subscribe = set(self.wanted)
        self._to_unsubscribe.clear()

    async def _serve(self) -> None:
        """Until the connection fails: send what is asked, ping when quiet, tell the listener."""
        loop = asyncio.get_running_loop()
        reader = self._reader
        assert reader is not None
        while True:
            # Cleared before the work, not after: a wish made while the listener is told
            # (its calls await) wakes the next wait instead of waiting for the next ping.
            self._wake.clear()
            if reader.lost.done():
                raise reader.lost.result()
            if self.up:
                self._send_wishes()
            await self._tell_listener()
            now = loop.time()
            if self._pinged is not None and now - self._pinged > self._interval:
                raise ConnectionError(f"Redis did not answer a PING for {now - self._pinged:.1f} s")
            if self._pinged is None and now - self.heard >= self._interval:
                self._ping()
            if self._events:
                continue
            due = (self._pinged if self._pinged is not None else self.heard) + self._interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, due - loop.time()) + 0.001)

    async def _tell_listener(self) -> None:
        events = self._events
        listener = self._listener
        while events:
            if len(events) == QUEUED_LOW and self._reader is not None:
                self._reader.resume()
            event = events.popleft()
            kind = event[0]
            if kind == "message":
                await listener.message(event[1], event[2])
            elif kind == "subscribed":
                if event[1] in self.wanted:
                    await listener.subscribed(event[1])
            elif kind == "dropped":
                await listener.dropped(event[1], event[2])
            elif kind == "up":
                await listener.up()

    def _send_wishes(self) -> None:
        for kind, wishes in ((b"SUNSUBSCRIBE", self._to_unsubscribe), (b"SSUBSCRIBE", self._to_subscribe)):
            ready = [channel for channel in wishes if channel not in self._in_flight]
            if not ready:
                continue
            wishes.difference_update(ready)
            for group in self._groups(ready):
                self._in_flight.update(group)
                self._write(command(kind, *group), kind.lower(), set(group))

    def _groups(self, channels: list[bytes]) -> list[list[bytes]]:
        if not self._by_slot:
            return [channels]
        groups: dict[int, list[bytes]] = {}
        for channel in channels:
            groups.setdefault(key_slot(channel), []).append(channel)
        return list(groups.values())

    def _ping(self) -> None:
        self._pinged = asyncio.get_running_loop().time()
        self._write(command("PING"), b"ping", set())

    def _write(self, data: bytes, kind: bytes, channels: set[bytes]) -> None:
        """Send a command whose answers (one per channel, or one) are matched by ``kind``."""
        assert self._reader is not None
        assert self._reader.transport is not None
        self._sent.append((kind, channels))
        self._reader.transport.write(data)

    def _close(self) -> None:
        """Forget the connection and everything that was in flight on it."""
        if self._reader is not None and self._reader.transport is not None:
            self._reader.transport.abort()
        self._reader = None
        self.up = False
        self._pinged = None
        self._sent.clear()
        self._in_flight.clear()
        self._confirmed.clear()
        # Messages that came are true, and what Redis dropped is not wanted here any more
        # (it is to be placed elsewhere); confirmations and "up" were of this connection.
        self._events = deque(event for event in self._events if event[0] in ("message", "dropped"))

"""The owned pub/sub connection (server/cluster/pubsub.py) and the joins on it (server/cluster/channels.py).

Most of what the link must survive cannot be asked of a real Redis on cue: a subscription
never confirmed while pings are answered, a MOVED answer, a subscription dropped unasked, a
connection that stops answering. So these run against :class:`FakeRedis`, a few lines of
RESP that answer as Redis would, or not, as the test says. The real Redis paths (idle, killed
connections, pauses, a cluster's slots) are tested against real servers elsewhere
(test_redis_faults.py, test_scale_out.py, test_cluster_idle.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import hiredis
import pytest
import redis.asyncio

from swe_realtime.cluster.channels import RoomChannels
from swe_realtime.cluster.health import RedisHealth
from swe_realtime.cluster.pubsub import Address, PubSubLink, command
from swe_realtime.cluster.streams import RoomStreams
from swe_realtime.errors import SubscriptionUnavailable
from swe_realtime.publish.message import RoomMessage
from swe_realtime.settings import HistorySettings
from tests.support import eventually


@dataclass
class FakeRedis:
    """A server speaking enough RESP2 for sharded pub/sub: AUTH, PING, SSUBSCRIBE and
    SUNSUBSCRIBE answered as Redis answers them, unless the test says otherwise."""

    confirm: bool = True
    """Answer SSUBSCRIBE (False: take it and say nothing, as a stuck server would)."""
    moved: bool = False
    """Answer SSUBSCRIBE with a MOVED error, as a master that no longer serves the slot."""
    pong: bool = True
    """Answer PING (False: a connection gone half-open)."""
    commands: list[list[bytes]] = field(default_factory=list)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        parser = hiredis.Reader()
        subscribed: set[bytes] = set()
        while data := await reader.read(65536):
            parser.feed(data)
            while (request := parser.gets()) is not False:
                self.commands.append(request)
                name = request[0].upper()
                if name == b"PING" and self.pong:
                    writer.write(b"*2\r\n$4\r\npong\r\n$0\r\n\r\n" if subscribed else b"+PONG\r\n")
                elif name == b"AUTH":
                    writer.write(b"+OK\r\n")
                elif name == b"SSUBSCRIBE" and self.moved:
                    writer.write(b"-MOVED 1234 127.0.0.1:1\r\n")
                elif name == b"SSUBSCRIBE" and self.confirm:
                    for channel in request[1:]:
                        subscribed.add(channel)
                        writer.write(self.reply(b"ssubscribe", channel, len(subscribed)))
                elif name == b"SUNSUBSCRIBE":
                    for channel in request[1:]:
                        subscribed.discard(channel)
                        writer.write(self.reply(b"sunsubscribe", channel, len(subscribed)))

    @staticmethod
    def reply(kind: bytes, channel: bytes, count: int) -> bytes:
        return (
            b"*3\r\n"
            + b"".join(b"$%d\r\n%s\r\n" % (len(part), part) for part in (kind, channel))
            + b":%d\r\n" % count
        )

    def push(self, *parts: bytes) -> None:
        """Send every connection a push (a message, an unasked unsubscribe)."""
        for writer in self.writers:
            writer.write(b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts))


@contextlib.asynccontextmanager
async def fake_redis(*, confirm: bool = True, moved: bool = False) -> AsyncIterator[FakeRedis]:
    fake = FakeRedis(confirm=confirm, moved=moved)
    fake.server = await asyncio.start_server(fake.serve, "127.0.0.1", 0)
    try:
        yield fake
    finally:
        for writer in fake.writers:
            writer.close()
        fake.server.close()


@dataclass
class Heard:
    """A link's listener that writes down what it is told (taking ``slow`` seconds over each
    message, as a catch-up read or a long-polling send may)."""

    events: list[tuple[str, object]] = field(default_factory=list)
    slow: float = 0.0

    async def message(self, channel: bytes, data: bytes) -> None:
        self.events.append(("message", data))
        await asyncio.sleep(self.slow)  # the listener's own work, on purpose

    async def subscribed(self, channel: bytes) -> None:
        self.events.append(("subscribed", channel))

    async def dropped(self, channels: list[bytes], why: str) -> None:
        self.events.append(("dropped", why))

    async def up(self) -> None:
        self.events.append(("up", None))

    async def down(self, error: BaseException, *, was_up: bool) -> None:
        self.events.append(("down", str(error)))

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]


@contextlib.asynccontextmanager
async def link_to(fake: FakeRedis, interval: float = 5.0) -> AsyncIterator[tuple[PubSubLink, Heard]]:
    heard = Heard()

    async def address() -> Address:
        return Address("fake", "127.0.0.1", fake.port, password="secret")

    link = PubSubLink(address, heard, interval=interval, by_slot=False)
    link.start()
    try:
        yield link, heard
    finally:
        await link.stop()


def test_commands_are_written_in_resp() -> None:
    assert command("SSUBSCRIBE", b"a", 1) == b"*3\r\n$10\r\nSSUBSCRIBE\r\n$1\r\na\r\n$1\r\n1\r\n"


async def test_a_subscription_is_confirmed_and_its_messages_come_in_order() -> None:
    async with fake_redis() as fake, link_to(fake) as (link, heard):
        link.want(b"room")
        await eventually(lambda: ("subscribed", b"room") in heard.events)
        for number in range(5):
            fake.push(b"smessage", b"room", b"%d" % number)
        await eventually(lambda: heard.kinds().count("message") == 5)
        assert [data for kind, data in heard.events if kind == "message"] == [b"0", b"1", b"2", b"3", b"4"]
        assert fake.commands[0] == [b"AUTH", b"secret"]


async def test_a_channel_wanted_again_while_leaving_ends_subscribed_one_command_at_a_time() -> None:
    async with fake_redis() as fake, link_to(fake) as (link, heard):
        link.want(b"room")
        await eventually(lambda: ("subscribed", b"room") in heard.events)
        link.unwant([b"room"])
        await eventually(lambda: [b"SUNSUBSCRIBE", b"room"] in fake.commands)
        link.want(b"room")  # while the unsubscribe is on its way: subscribed again after it
        await eventually(lambda: heard.events.count(("subscribed", b"room")) == 2)
        sent = [request for request in fake.commands if request[0] not in (b"PING", b"AUTH")]
        assert sent == [[b"SSUBSCRIBE", b"room"], [b"SUNSUBSCRIBE", b"room"], [b"SSUBSCRIBE", b"room"]]


async def test_a_channel_left_and_wanted_in_one_turn_stays_subscribed() -> None:
    async with fake_redis() as fake, link_to(fake) as (link, heard):
        link.want(b"room")
        await eventually(lambda: ("subscribed", b"room") in heard.events)
        link.unwant([b"room"])
        link.want(b"room")  # before the unsubscribe went: none goes, and it is still subscribed
        await eventually(lambda: heard.events.count(("subscribed", b"room")) == 2)
        link.want(b"other")  # a command after: the link has had its turn
        await eventually(lambda: ("subscribed", b"other") in heard.events)
        assert [b"SUNSUBSCRIBE", b"room"] not in fake.commands


async def test_a_wish_made_while_the_listener_works_goes_out_at_once() -> None:
    """A subscription asked for while the owner awaits its listener is sent when the
    listener returns, not at the next ping (the interval here is far longer than the test)."""
    async with fake_redis() as fake, link_to(fake, interval=60.0) as (link, heard):
        heard.slow = 0.3
        link.want(b"room")
        await eventually(lambda: ("subscribed", b"room") in heard.events)
        fake.push(b"smessage", b"room", b"busy")
        await eventually(lambda: ("message", b"busy") in heard.events)
        link.want(b"other")  # while the listener is still at work on the message
        await eventually(lambda: ("subscribed", b"other") in heard.events, timeout=2)


async def test_an_idle_link_subscribes_again_without_an_outage() -> None:
    """The bug of issue 24: a link left without subscriptions, idle past its health check,
    took the next subscription for a failed read. Here it pings, and subscribes."""
    async with fake_redis() as fake, link_to(fake, interval=0.2) as (link, heard):
        link.want(b"room")
        await eventually(lambda: ("subscribed", b"room") in heard.events)
        link.unwant([b"room"])
        await asyncio.sleep(0.7)  # idle past the health-check interval, on purpose
        link.want(b"other")
        await eventually(lambda: ("subscribed", b"other") in heard.events)
        assert "down" not in heard.kinds()
        assert [b"PING"] in fake.commands[3:]  # the quiet connection was checked


async def test_a_refused_subscription_is_handed_back() -> None:
    async with fake_redis(moved=True) as fake, link_to(fake) as (link, heard):
        link.want(b"room")
        await eventually(lambda: "dropped" in heard.kinds())
        assert dict(heard.events)["dropped"] == "MOVED 1234 127.0.0.1:1"
        assert b"room" not in link.wanted


async def test_a_subscription_dropped_unasked_is_handed_back() -> None:
    async with fake_redis() as fake, link_to(fake) as (link, heard):
        link.want(b"room")
        await eventually(lambda: ("subscribed", b"room") in heard.events)
        fake.push(b"sunsubscribe", b"room", b"0")  # Redis: the slot moved elsewhere
        await eventually(lambda: "dropped" in heard.kinds())
        assert b"room" not in link.wanted


async def test_a_connection_that_stops_answering_is_dropped_and_made_again() -> None:
    async with fake_redis() as fake, link_to(fake, interval=0.2) as (link, heard):
        link.want(b"room")
        await eventually(lambda: ("subscribed", b"room") in heard.events)
        fake.pong = False
        await eventually(lambda: "down" in heard.kinds(), timeout=5)
        assert "did not answer a PING" in str(dict(heard.events)["down"])
        fake.pong = True
        await eventually(lambda: heard.events.count(("subscribed", b"room")) == 2, timeout=5)
        assert len(fake.writers) == 2


@pytest.mark.parametrize("history", [HistorySettings(), HistorySettings(size=0)])
async def test_a_join_whose_subscription_is_not_confirmed_fails_clearly(history: HistorySettings) -> None:
    async with fake_redis(confirm=False) as fake:
        url = f"redis://127.0.0.1:{fake.port}/0"
        client = redis.asyncio.Redis.from_url(url)
        health = RedisHealth(url)

        async def deliver(message: RoomMessage) -> None:
            raise AssertionError("nothing was published")

        channels = RoomChannels(
            RoomStreams(client, "test", history, url=url),
            deliver,
            health,
            sweep=1.0,
            health_check=5.0,
            subscribe_timeout=0.3,
        )
        try:
            with pytest.raises(SubscriptionUnavailable, match="did not confirm the subscription of global"):
                await channels.want("global")
            assert not health._outage_reported  # Redis answered all along: no outage
        finally:
            await channels.stop()
            await client.aclose()

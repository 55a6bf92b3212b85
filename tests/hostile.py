"""The hostile clients of the second hardening round (issue 15), for the soak test.

Each attack is a coroutine that repeats one abuse against a gateway until its deadline,
from local addresses of its own (any of 127.0.0.0/8 reaches the gateway), a new one per
session: the per-address limits do not stop it, as they would not stop a botnet, and a
legitimate client from another address is not refused on its account. They speak raw
Engine.IO and Socket.IO (aiohttp, asyncio streams) where a well-behaved client library
would refuse to misbehave. None of them
asserts anything: the soak judges the gateway by what it logs, holds and still serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit
from uuid import UUID, uuid4

import aiohttp
import jwt

from tests.support import SECRET, SERVICE, make_token, progress_event

Attack = Callable[["Target"], Awaitable[None]]
ADDRESSES = 500


@dataclass
class Target:
    """Where an attack goes, until when, and from which addresses: ``network`` (the second
    byte of 127.x.y.z) holds ADDRESSES of them, used in turn, one per session, so that the
    attack reaches past the per-address limits as a botnet would."""

    url: str
    network: int
    deadline: float
    user: UUID = field(default_factory=uuid4)
    """The one subject the attack holds a valid token of (a stolen or its own account): an
    attacker cannot mint tokens, so it does not get a new user per connection."""
    _turn: Iterator[int] = field(default_factory=lambda: itertools.cycle(range(ADDRESSES)))

    @property
    def source(self) -> str:
        """The next address to attack from."""
        turn = next(self._turn)
        return f"127.{self.network}.{turn // 250}.{turn % 250 + 1}"

    @property
    def running(self) -> bool:
        return time.monotonic() < self.deadline

    def session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(local_addr=(self.source, 0), force_close=True),
            timeout=aiohttp.ClientTimeout(total=10),
        )

    def engine(self, transport: str, sid: str | None = None) -> str:
        query = f"EIO=4&transport={transport}" + (f"&sid={sid}" if sid else "")
        return f"{self.url}/socket.io/?{query}"


def forged_token(**claims: Any) -> str:
    """A validly signed token with claims no issuer should write."""
    body = {"sub": str(uuid4()), "exp": int(time.time()) + 3600, **claims}
    return jwt.encode(body, SECRET, algorithm="HS256")


@contextlib.asynccontextmanager
async def websocket(
    target: Target, http: aiohttp.ClientSession
) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    async with http.ws_connect(target.engine("websocket"), max_msg_size=0) as ws:
        yield ws


async def joined(ws: aiohttp.ClientWebSocketResponse, token: str) -> dict[str, Any]:
    """CONNECT to /ws with ``token``; the connection_established event's data."""
    await ws.receive(timeout=5)  # the Engine.IO open packet
    await ws.send_str("40/ws," + json.dumps({"token": token}))
    while True:
        message = await ws.receive(timeout=5)
        if message.type != aiohttp.WSMsgType.TEXT:
            raise ConnectionError("closed before the welcome")
        if message.data.startswith('42/ws,["connection_established"'):
            welcome: dict[str, Any] = json.loads(message.data[len("42/ws,") :])[1]
            return welcome


async def request(http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> None:
    async with http.request(method, url, **kwargs) as response:
        await response.read()


async def quietly(attempt: Awaitable[Any]) -> None:
    """Run one hostile attempt; the gateway refusing or closing on it is the point."""
    with contextlib.suppress(Exception):
        await attempt


# --- the attacks -------------------------------------------------------------------------


async def silent_sessions(target: Target) -> None:
    """Engine.IO sessions that never join a namespace, answering pings to look alive."""

    async def hold() -> None:
        async with target.session() as http, websocket(target, http) as ws:
            async for message in ws:
                if message.data == "2":
                    await ws.send_str("3")

    async def poll() -> None:
        async with target.session() as http, http.get(target.engine("polling")) as response:
            await response.read()

    while target.running:
        await asyncio.gather(*(quietly(hold()) for _ in range(20)), *(quietly(poll()) for _ in range(20)))
        await asyncio.sleep(0.5)


async def default_namespace(target: Target) -> None:
    """CONNECTs to ``/`` and to made-up namespaces, no token."""
    while target.running:
        async with target.session() as http:
            for packet in ("40", "40/admin,", "40/" + "x" * 500 + ","):
                await quietly(_send_and_linger(target, http, [packet]))
        await asyncio.sleep(0.2)


async def _send_and_linger(target: Target, http: aiohttp.ClientSession, frames: list[str]) -> None:
    async with websocket(target, http) as ws:
        await ws.receive(timeout=5)
        for frame in frames:
            await ws.send_str(frame)
        with contextlib.suppress(TimeoutError):
            while (await ws.receive(timeout=1)).type == aiohttp.WSMsgType.TEXT:
                pass


async def bad_frames(target: Target) -> None:
    """Engine.IO types 7 and 8, a 1,000-deep JSON array, binary, over both transports."""
    deep = "42/ws," + "[" * 1000 + "]" * 1000
    frames = ["7", "8", "7x", deep, "451-/ws,[]", "4" + "[" * 5000]
    while target.running:
        async with target.session() as http:
            for frame in frames:
                await quietly(
                    _send_and_linger(
                        target, http, ["40/ws," + json.dumps({"token": make_token(target.user)}), frame]
                    )
                )
                await quietly(_post_to_new_session(target, http, frame))
        await asyncio.sleep(0.2)


async def _post_to_new_session(target: Target, http: aiohttp.ClientSession, body: str) -> None:
    async with http.get(target.engine("polling")) as response:
        sid = json.loads((await response.text())[1:])["sid"]
    async with http.post(target.engine("polling", sid), data=body.encode()) as response:
        await response.read()


async def raw_posts(target: Target) -> None:
    """Polling POSTs that lie about their length: 1 MB announced, 200 KB sent, then gone;
    and POSTs that hang up before any body."""
    parts = urlsplit(target.url)
    while target.running:
        async with target.session() as http:
            with contextlib.suppress(Exception):
                async with http.get(target.engine("polling")) as response:
                    sid = json.loads((await response.text())[1:])["sid"]
                for length, sent in ((1_000_001, 200_000), (100, 0)):
                    _, writer = await asyncio.open_connection(
                        parts.hostname, parts.port, local_addr=(target.source, 0)
                    )
                    head = (
                        f"POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\n"
                        f"Host: {parts.netloc}\r\nContent-Length: {length}\r\n"
                        "Content-Type: text/plain\r\n\r\n"
                    )
                    writer.write(head.encode() + b"4" * sent)
                    await writer.drain()
                    writer.close()
        await asyncio.sleep(0.1)


async def forged_log_lines(target: Target) -> None:
    """Newlines and escape sequences in the ``sid`` parameter python-engineio quotes."""
    forged = quote("x\n2030-01-01 00:00:00,000 INFO FAKE.injected: forged\r\x1b[2J")
    while target.running:
        async with target.session() as http:
            for transport in ("polling", "websocket"):
                await quietly(request(http, "GET", target.engine(transport, forged)))
        await asyncio.sleep(0.2)


async def role_flips(target: Target) -> None:
    """An agent refreshing into a user token, and back."""
    agent = target.user
    while target.running:
        async with target.session() as http, websocket(target, http) as ws:
            with contextlib.suppress(Exception):
                await joined(ws, make_token(agent, roles=["agent"]))
                for roles in ([], ["agent"], []):
                    await ws.send_str(
                        '42/ws,1["refresh_token",'
                        + json.dumps({"token": make_token(agent, roles=roles)})
                        + "]"
                    )
                    await ws.receive(timeout=5)
        await asyncio.sleep(0.3)


async def replay_hogs(target: Target) -> None:
    """Connections that ask for the whole history of ``global`` and never read it."""
    while target.running:
        async with target.session() as http:
            hogs = [_replay_hog(target, http, target.user) for _ in range(10)]
            await asyncio.gather(*(quietly(hog) for hog in hogs))
        await asyncio.sleep(0.5)


async def _replay_hog(target: Target, http: aiohttp.ClientSession, user: Any) -> None:
    async with websocket(target, http) as ws:
        welcome = await joined(ws, make_token(user))
        epoch = welcome["positions"]["global"]["epoch"]
        recover = {"room": "global", "position": {"epoch": epoch, "offset": 0}}
        await ws.send_str('42/ws,1["recover",' + json.dumps(recover) + "]")
        # Never read, for 8 s or until the attack ends: the gateway must bound what waits for us.
        await asyncio.sleep(min(8.0, target.deadline - time.monotonic()))


async def ack_floods(target: Target) -> None:
    """Acked pings sent as fast as possible, the answers never read."""
    while target.running:
        async with target.session() as http, websocket(target, http) as ws:
            with contextlib.suppress(Exception):
                await joined(ws, make_token(target.user))
                for number in range(20_000):
                    await ws.send_str(f'42/ws,{number}["ping"]')
                    if not target.running or ws.closed:
                        break
        await asyncio.sleep(0.5)


async def bad_tokens(target: Target) -> None:
    """Tokens with ``exp`` 10**400, 1e300 and "9999999999", on CONNECT, refresh and HTTP."""
    tokens = [forged_token(exp=10**400), forged_token(exp=1e300), forged_token(exp="9999999999")]
    while target.running:
        async with target.session() as http:
            for token in tokens:
                await quietly(_send_and_linger(target, http, ["40/ws," + json.dumps({"token": token})]))
                await quietly(
                    request(
                        http,
                        "POST",
                        f"{target.url}/api/v1/events",
                        json=progress_event(None),
                        headers={"Authorization": f"Bearer {token}"},
                    )
                )
            with contextlib.suppress(Exception):
                async with websocket(target, http) as ws:
                    await joined(ws, make_token(target.user))
                    for token in tokens:
                        await ws.send_str('42/ws,1["refresh_token",' + json.dumps({"token": token}) + "]")
                        await ws.receive(timeout=5)
        await asyncio.sleep(0.3)


async def huge_integers(target: Target) -> None:
    """Events whose integers JavaScript cannot hold."""
    while target.running:
        async with target.session() as http:
            for value in (10**400, 2**53, -(2**63)):
                body = progress_event(None)
                body["data"]["total_steps"] = value
                await quietly(
                    request(
                        http,
                        "POST",
                        f"{target.url}/api/v1/events",
                        data=json.dumps(body),
                        headers={"Authorization": f"Bearer {SERVICE}", "Content-Type": "application/json"},
                    )
                )
        await asyncio.sleep(0.2)


async def room_churn(target: Target) -> None:
    """A user entering and leaving room after quiet room: agent rooms, which any user may
    watch, each of an agent id never seen before."""
    while target.running:
        async with target.session() as http, websocket(target, http) as ws:
            with contextlib.suppress(Exception):
                await joined(ws, make_token(target.user))
                for number in range(1, 1000):
                    if not target.running:
                        break
                    room = f"agent:{uuid4()}"
                    for command in ("subscribe", "unsubscribe"):
                        await ws.send_str(f'42/ws,{number}["{command}",{{"room":"{room}"}}]')
                        await ws.receive(timeout=5)


async def relentlessly(attack: Attack, target: Target) -> None:
    """Run ``attack`` until its deadline, starting it again whenever it stops on an error of
    its own (a refused connection, a timeout): an attacker does not give up."""
    while target.running:
        with contextlib.suppress(Exception):
            await attack(target)
        await asyncio.sleep(0.1)


ATTACKS: dict[str, Attack] = {
    "silent_sessions": silent_sessions,
    "default_namespace": default_namespace,
    "bad_frames": bad_frames,
    "raw_posts": raw_posts,
    "forged_log_lines": forged_log_lines,
    "role_flips": role_flips,
    "replay_hogs": replay_hogs,
    "ack_floods": ack_floods,
    "bad_tokens": bad_tokens,
    "huge_integers": huge_integers,
    "room_churn": room_churn,
}
"""Every hostile client of issue 15 that needs no special gateway (the refresh/subscribe race
needs a slow access policy and has its own test)."""

"""The one helpers module of the tests: a real gateway process on a free port, real clients,
token crafting, publishing over HTTP, collecting what a client receives, and ``eventually``.

Test modules import from here (and fixtures come from conftest.py); no test module imports
from another. tests/emit.py and tests/crowd.py are not helpers: they are scripts that tests
run as processes of their own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import io
import itertools
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload
from uuid import UUID, uuid4

import aiohttp
import jwt
import redis.asyncio
import redis.exceptions
import socketio
import yaml
from redis.crc import key_slot

from swe_realtime.app import GatewayApp, create_app
from swe_realtime.events.catalogue import CATALOGUE
from swe_realtime.events.rooms import Room, RoomKind
from swe_realtime.serve import gateway_server
from swe_realtime.sessions.access import AccessPolicy
from swe_realtime.settings import Settings

if TYPE_CHECKING:
    from sanic import Sanic

SECRET = "test-secret-that-is-long-enough-for-hs256!"
LOAD_TEST_LIMITS = {
    "CONNECTS_PER_IP_PER_MINUTE": "1000000",
    "MAX_CONNECTIONS_PER_USER": "1000",
    "COMMANDS_PER_SECOND": "1000000",
    "ADMIN_REQUESTS_PER_SECOND": "1000000",
    "AUTH_FAILURES_PER_MINUTE": "1000000",
}
"""Every test client comes from 127.0.0.1, many as one user: the shared server must allow it."""
SHORT_INTERVALS = {
    "REDIS_HEALTH_CHECK_INTERVAL": "0.5",
    "ROOM_SWEEP_INTERVAL": "0.3",
    "HEARTBEAT_INTERVAL": "0.5",
    "PRESENCE_TICK": "0.5",
    "PRESENCE_GRACE": "1.5",
}
"""The gateway's background intervals cut to tenths of a second, for tests that idle past them.
Not shorter: a pub/sub PING unanswered for a health check interval counts as a dead
connection (a logged Redis warning, which these tests take for a bug), and a Redis process
kept off a busy CPU for a few tenths of a second must not look like one."""
PAST_SHORT_INTERVALS = 2.0
"""Seconds: longer than each of SHORT_INTERVALS, and than a heartbeat's life (three beats)."""
REDIS_TROUBLE = r"WARNING swe_realtime\.redis: |admin channel lost"
"""What a gateway logs when it takes Redis (or its admin channel) for lost."""
CLI = Path(sys.executable).with_name("swe-realtime")
SHARED_REDIS = "redis://127.0.0.1:6379/0"
"""The machine's Redis: tests use channels (and so keys) of their own on it, never flush it."""
LISTENING = re.compile(r"Uvicorn running on https?://\S+:(\d+) ")
"""uvicorn's start-up line, which names the port it bound when it was given port 0."""
ERROR_MARKERS = (" ERROR ", " CRITICAL ", "Traceback (most recent call last)")

T = TypeVar("T")


@overload
async def eventually(
    condition: Callable[[], Awaitable[T | None]],
    timeout: float = ...,
    *,
    interval: float = ...,
    message: str | None = ...,
) -> T: ...


@overload
async def eventually(
    condition: Callable[[], T | None],
    timeout: float = ...,
    *,
    interval: float = ...,
    message: str | None = ...,
) -> T: ...


async def eventually(
    condition: Callable[[], Any], timeout: float = 10.0, *, interval: float = 0.05, message: str | None = None
) -> Any:
    """Poll ``condition`` (a plain or an async callable) until it returns something truthy, and
    return that; fail with ``message`` (or the last value seen) after ``timeout`` seconds.

    This is how a test waits for something to happen: on what it can observe, never a sleep.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(message or f"not true within {timeout} s; last value: {result!r}")
        await asyncio.sleep(interval)  # the poll interval, not a wait for anything in particular


def eventually_sync(
    condition: Callable[[], T | None],
    timeout: float = 10.0,
    *,
    interval: float = 0.05,
    message: str | None = None,
) -> T:
    """``eventually`` for code that is not async (process start-up in plain fixtures)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(message or f"not true within {timeout} s; last value: {result!r}")
        time.sleep(interval)  # the poll interval, not a wait for anything in particular


async def api(
    server: ServerProcess,
    method: str,
    path: str,
    token: str | None = None,
    body: Any = None,
    *,
    raw: bytes | None = None,
    tls: ssl.SSLContext | None = None,
) -> tuple[int, Any]:
    """One HTTP request to the gateway: (status, parsed JSON body or None); ``tls``: the
    context that trusts an https server's certificate."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    data = io.BytesIO(raw) if raw is not None else None
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method,
            server.url + path,
            headers=headers,
            json=body if raw is None else None,
            data=data,
            ssl=tls if tls is not None else True,
        ) as response,
    ):
        text = await response.text()
        try:
            return response.status, json.loads(text)
        except ValueError:
            return response.status, None


async def stats(server: ServerProcess) -> dict[str, Any]:
    status, body = await api(server, "GET", "/api/v1/websocket/stats", ADMIN)
    assert status == 200, body
    result: dict[str, Any] = body
    return result


async def wait_ready(server: ServerProcess, expected: int, timeout: float = 15) -> None:
    """Until ``/ready`` answers ``expected`` (200 ready, 503 not: e.g. Redis is away)."""

    async def answers() -> bool:
        return (await api(server, "GET", "/ready"))[0] == expected

    await eventually(answers, timeout, interval=0.2, message=f"/ready never answered {expected}")


async def redis_subscribers(url: str, channel: str) -> int:
    """How many connections are subscribed to ``channel`` on the Redis at ``url``."""
    client = redis.asyncio.Redis.from_url(url)
    try:
        [(_, count)] = await client.pubsub_numsub(channel)
        return int(count)
    finally:
        await client.aclose()


async def shard_channels(prefix: str, *urls: str) -> set[str]:
    """The room channels of ``prefix`` that have a subscriber on the Redis at any of ``urls``
    (every master of a Redis Cluster: each answers for its own slots only)."""
    found: set[str] = set()
    for url in urls:
        client = redis.asyncio.Redis.from_url(url)
        try:
            channels = await client.pubsub_shardchannels(f"{{{prefix}:*")
        finally:
            await client.aclose()
        found |= {channel.decode() if isinstance(channel, bytes) else channel for channel in channels}
    return found


class InProcessAPI:
    """The gateway's HTTP routes called in this process through sanic-testing's ASGI client:
    for request/response checks that need no socket (validation, error bodies, access rules).

    It reaches the Sanic app itself, behind the ASGI middleware of ``create_app``: what that
    middleware does (the 413 of BodyLimit, Socket.IO) is tested against a real server.
    """

    def __init__(self, sanic: Sanic[Any, Any]) -> None:
        self._client: Any = sanic.asgi_client  # sanic-testing ships no type information

    async def __call__(
        self,
        method: str,
        path: str,
        token: str | None = None,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """Like ``api``: (status, parsed JSON body or None); ``headers`` are sent as they are."""
        headers = dict(headers or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if raw is not None:
            headers["Content-Type"] = "application/json"
        _, response = await self._client.request(
            method, path, headers=headers, json=body if raw is None else None, content=raw
        )
        return response.status, response.json


_UNVERIFIED = ssl._create_unverified_context()  # only to poll /health of a test's own server


async def node_script(script: str, *args: str, cwd: Path, timeout: float = 60) -> Any:
    """Run a node script of ``cwd`` with ``args``; it must exit 0 with nothing on stderr.
    Returns the JSON it printed."""
    process = await asyncio.create_subprocess_exec(
        shutil.which("node") or "node",
        script,
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode == 0, stderr.decode()
    assert stderr == b"", stderr.decode()
    return json.loads(stdout)


@asynccontextmanager
async def gateway_in_process(
    env: Mapping[str, str], policy: AccessPolicy | None = None
) -> AsyncIterator[tuple[GatewayApp, str]]:
    """A gateway served on this test's loop, and its URL: for tests that run their own code
    among the server's (a policy that waits on the test, a session acted on between two of
    the server's loop passes)."""
    config = dataclasses.replace(Settings.from_env(env), port=0)  # the kernel's choice: no race
    app = create_app(config, policy=policy)
    server = gateway_server(app, config, log_level="warning")
    serving = asyncio.create_task(server.serve())
    try:
        await asyncio.wait_for(server.wait_listening(), 10)
        [listening] = server.servers
        yield app, f"http://127.0.0.1:{listening.sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        await serving


TEST_PORTS = range(10000, 20000)
"""Where ports a test must name itself come from (``free_port``): below the kernel's
ephemeral range (32768 and up on Linux), which ``bind(0)`` and outgoing connections draw
from, so a port let go and bound again (a Redis restarted) is not taken meanwhile by some
connection; and low enough for a Redis Cluster node's bus, 10,000 above, to stay below it too.
Each xdist worker draws from a block of its own, so two workers never hand out one port."""
_WORKER_BLOCKS = 20
_handed_out: Iterator[int] | None = None


def _worker_block() -> range:
    """This worker's share of TEST_PORTS (``gw3``: the fourth block; no xdist: the first)."""
    number = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    size = len(TEST_PORTS) // _WORKER_BLOCKS
    start = TEST_PORTS.start + (int(number) % _WORKER_BLOCKS if number.isdigit() else 0) * size
    return range(start, start + size)


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(*, bus: bool = False) -> int:
    """A port of this worker's block that nothing holds now (``bus``: and ``port + 10000``, a
    Redis Cluster node's bus, neither), for what must be told its port before it binds (a
    Redis, nginx, a documented example) or binds it again after a restart. A gateway binds
    port 0 instead and says which port it got (``ServerProcess``).

    Ports go round the block from a random place, each handed out once per round: two tests
    of one worker never get the same one, and two sessions side by side (a second checkout)
    start apart, besides the check that nothing holds the port."""
    global _handed_out
    block = _worker_block()
    if _handed_out is None:
        start = random.randrange(len(block))
        _handed_out = itertools.cycle([*block[start:], *block[:start]])
    for port in itertools.islice(_handed_out, len(block)):  # one round at most
        if _bindable(port) and (not bus or _bindable(port + 10000)):
            return port
    raise AssertionError(f"no free port in {block}")


class ServerProcess:
    """``swe-realtime serve`` in a subprocess, its output captured in a file."""

    def __init__(
        self,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        *args: str,
        https: bool = False,
        cli: Path = CLI,
        cwd: Path | None = None,
        wait: bool = True,
    ) -> None:
        """``cli``: another installation's ``swe-realtime``, run in ``cwd``. It binds port 0
        (the kernel picks a free one: no race with other tests or xdist workers) unless
        ``args`` name a ``--port`` (the last one counts), and ``port`` is read from its log.
        ``wait``: False to return at once and call ``wait_healthy`` later (``port`` and
        ``url`` are known then), so that several gateways start side by side (each takes
        seconds on a busy machine, most of it importing)."""
        self._scheme = "https" if https else "http"
        self.log_path = log_path
        self.crashed = False
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("JWT_", "CORS_", "MAX_"))}
        full_env.update(env if env is not None else {"JWT_SECRET": SECRET})
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [str(cli), "serve", "--port", "0", *args],
            env=full_env,
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        if wait:
            self.wait_healthy()

    def _fail_if_exited(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"gateway exited with {self.process.returncode}:\n{self.log()}")

    def _wait_listening(self, timeout: float) -> int:
        """The port uvicorn says it bound (with ``--workers``, the parent's socket)."""

        def bound() -> int | None:
            self._fail_if_exited()
            found = LISTENING.search(self.log())
            return int(found.group(1)) if found else None

        try:
            return eventually_sync(bound, timeout)
        except AssertionError:
            raise RuntimeError(f"gateway did not say where it listens:\n{self.log()}") from None

    def wait_healthy(self, timeout: float = 90.0) -> None:
        """Until it says where it listens and ``/health`` answers 200. The deadline only
        bounds a gateway that never comes up: one that does is seen at once, however busy the
        machine (two workers, each importing everything, took over 20 s beside CPU-burning
        processes)."""

        def healthy() -> bool:
            self._fail_if_exited()
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1, context=_UNVERIFIED) as response:
                    return bool(response.status == 200)
            except OSError:
                return False

        try:
            self.port = self._wait_listening(timeout)
            self.url = f"{self._scheme}://127.0.0.1:{self.port}"
            eventually_sync(healthy, timeout)
        except BaseException as exc:
            self.stop()  # a gateway that never came up leaves no process and no open log behind
            if isinstance(exc, AssertionError):
                raise RuntimeError(f"gateway did not become healthy:\n{self.log()}") from None
            raise

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_size(self) -> int:
        """Where the log ends now: pass it to ``log_since`` for what a test alone caused."""
        return self.log_path.stat().st_size

    def log_since(self, offset: int) -> str:
        """What was logged after ``offset`` (a ``log_size()``): this test's lines only."""
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def matching(self, pattern: str, offset: int = 0) -> list[str]:
        """The lines logged after ``offset`` (a ``log_size()``) that match ``pattern``."""
        return [line for line in self.log_since(offset).splitlines() if re.search(pattern, line)]

    def errors_since(self, offset: int) -> list[str]:
        """Lines logged at ERROR or worse (or tracebacks) after ``offset`` (a ``log_size()``)."""
        return [line for line in self.log_since(offset).splitlines() if any(m in line for m in ERROR_MARKERS)]

    async def logged(self, pattern: str, offset: int, timeout: float = 5.0) -> str:
        """The first log line after ``offset`` that matches ``pattern``, once it is written."""

        def match() -> str | None:
            found = re.search(pattern, self.log_since(offset))
            return found.group(0) if found else None

        return await eventually(match, timeout, message=f"no log line matching {pattern!r}")

    def kill(self) -> None:
        """SIGKILL, as a crash would: no clean shutdown is expected afterwards."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.crashed = True

    def stop(self) -> bool:
        """SIGTERM, then True if the gateway shut down cleanly (uvicorn re-raises the signal)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return (
            self.process.returncode in (0, -signal.SIGTERM) and "Application shutdown complete" in self.log()
        )


def subscribed(ack: Any, room: str) -> bool:
    """Whether ``ack`` is a successful subscribe to ``room``, with the room's position."""
    position = ack.get("position") or {}
    return (
        ack.get("status") == "success"
        and ack.get("room") == room
        and isinstance(position.get("epoch"), str)
        and isinstance(position.get("offset"), int)
    )


def make_token(
    sub: UUID | str | None = None,
    *,
    projects: list[Any] | None = None,
    roles: list[str] | None = None,
    ttl: float = 3600,
    secret: Any = SECRET,
    algorithm: str = "HS256",
    without: tuple[str, ...] = (),
    **claims: Any,
) -> str:
    """A token with sensible defaults; any claim can be overridden, or left out by ``without``."""
    body: dict[str, Any] = {
        "sub": str(sub or uuid4()),
        "exp": int(time.time() + ttl),
        "projects": [str(p) for p in (projects or [])],
        "roles": roles or [],
    }
    body.update(claims)
    body = {key: value for key, value in body.items() if key not in without}
    return jwt.encode(body, secret, algorithm=algorithm)


SERVICE = make_token(roles=["service"], ttl=24 * 3600)
"""A backend service's token: it may publish events and read the stats."""
ADMIN = make_token(roles=["admin"], ttl=24 * 3600)


@dataclasses.dataclass(frozen=True, slots=True)
class Traced:
    """One entry of a Client's ``trace``: an event received, or a command sent by ``command``
    (``data``: its payload), or its ack."""

    name: str
    """The event's name, or the command's."""
    data: Any
    kind: Literal["event", "sent", "ack"] = "event"


class Client:
    """A python-socketio AsyncClient on ``/ws`` that records every event it receives."""

    def __init__(self, *, source: str | None = None) -> None:
        """``source``: the local address to connect from (any of 127.0.0.0/8 works here), to
        stand for a client of its own address."""
        http = (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(source, 0))) if source else None
        )
        self.sio = socketio.AsyncClient(reconnection=False, http_session=http)
        self.events: dict[str, asyncio.Queue[Any]] = defaultdict(asyncio.Queue)
        self.trace: list[Traced] = []
        """Every event received, and every ``command`` sent and acked, in the order they happened."""
        self.connect_error: Any = None
        self.sio.on("*", self._record, namespace="/ws")
        self.sio.on("connect_error", self._refused, namespace="/ws")

    async def _record(self, event: str, *args: Any) -> None:
        data = args[0] if len(args) == 1 else args
        self.events[event].put_nowait(data)
        self.trace.append(Traced(event, data))

    async def _refused(self, data: Any) -> None:
        self.connect_error = data

    async def connect(
        self,
        base_url: str,
        token: str | None = None,
        *,
        via: str = "auth",
        transport: str = "websocket",
        auth: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Client:
        url = f"{base_url}?token={token}" if via == "query" and token is not None else base_url
        if via == "auth" and token is not None:
            auth = {"token": token}
        await self.sio.connect(
            url, namespaces=["/ws"], transports=[transport], auth=auth, headers=headers or {}, wait_timeout=10
        )
        return self

    async def next(self, event: str, timeout: float = 5.0) -> Any:
        return await asyncio.wait_for(self.events[event].get(), timeout)

    async def call(self, event: str, *args: Any, timeout: float = 5.0) -> Any:
        return await self.sio.call(
            event, args[0] if len(args) == 1 else args, namespace="/ws", timeout=timeout
        )

    async def command(self, event: str, payload: Any, timeout: float = 5.0) -> Any:
        """``call``, noted in ``trace``: where it was sent and where its ack arrived among the
        events. What arrived between the two may be of the command's doing or not; what came
        before the ack was sent before the server answered (one socket keeps the order)."""
        answered: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def acked(ack: Any) -> None:  # run as the ack packet is read, before any later packet
            self.trace.append(Traced(event, ack, "ack"))
            answered.set_result(ack)

        self.trace.append(Traced(event, payload, "sent"))
        await self.sio.emit(event, payload, namespace="/ws", callback=acked)
        return await asyncio.wait_for(answered, timeout)

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()
        http = self.sio.eio.http  # left open when the server ended or refused the connection
        if http is not None and not http.closed:
            await http.close()


# --- events: building, publishing, receiving ----------------------------------------------

UUID_TEXT = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def fresh(value: Any, ids: dict[str, str] | None = None) -> Any:
    """The example with every UUID replaced by a new one (the same old id -> the same new id)."""
    ids = {} if ids is None else ids
    if isinstance(value, dict):
        return {key: fresh(item, ids) for key, item in value.items()}
    if isinstance(value, list):
        return [fresh(item, ids) for item in value]
    if isinstance(value, str) and UUID_TEXT.match(value):
        return ids.setdefault(value, str(uuid4()))
    return value


def example(event_type: str) -> dict[str, Any]:
    """The catalogue's example of ``event_type``, with fresh ids."""
    body: dict[str, Any] = fresh(CATALOGUE[event_type].event.example())
    return body


def project_update(project: str, by: UUID | str) -> dict[str, Any]:
    """A project.updated event: it goes to two rooms, ``project:<project>`` and ``user:<by>``."""
    body = example("project.updated")
    body["data"] |= {"project_id": project, "updated_by": str(by)}
    return body


def progress_event(project: str | None, progress: int = 10) -> dict[str, Any]:
    """A workflow.progress event for ``project`` (None: global), of a new workflow."""
    body: dict[str, Any] = CATALOGUE["workflow.progress"].event.example()
    body["data"] = {**body["data"], "workflow_id": str(uuid4()), "project_id": project, "progress": progress}
    return body


def numbered(project: str, number: int) -> dict[str, Any]:
    """A workflow.progress event of ``project`` counted by its ``total_steps``."""
    event = progress_event(project, 50)
    event["data"]["total_steps"] = number
    return event


async def publish(server: ServerProcess, body: Any) -> dict[str, Any]:
    """POST one event as a service; it must be accepted. Returns the receipt."""
    status, receipt = await api(server, "POST", "/api/v1/events", SERVICE, body)
    assert status == 202, receipt
    result: dict[str, Any] = receipt
    return result


async def publish_marker(server: ServerProcess, not_type: str) -> str:
    """Publish a global event of another type; once a client has it, earlier events arrived too."""
    marker_type = "ai.analysis_complete" if not_type != "ai.analysis_complete" else "workflow.progress"
    body = example(marker_type)
    body["data"]["project_id"] = None
    await publish(server, body)
    return marker_type


async def listener(server: ServerProcess, clients: Callable[[], Client], room: Room) -> Client:
    """A client that is in ``room`` (and its own user room and global), and nowhere else."""
    if room.kind is RoomKind.USER:
        client = await clients().connect(server.url, make_token(room.id))
        await client.next("connection_established")
        return client
    projects = [room.id] if room.kind is RoomKind.PROJECT else []
    client = await clients().connect(server.url, make_token(projects=projects))
    await client.next("connection_established")
    assert (await client.call("subscribe", {"room": str(room)}))["status"] == "success"
    return client


async def member(
    base_url: str, clients: Callable[[], Client], project: str, transport: str = "websocket"
) -> Client:
    """A client of gateway ``base_url`` (or a proxy in front of it) in ``project``'s room."""
    client = await clients().connect(base_url, make_token(projects=[project]), transport=transport)
    await client.next("connection_established")
    assert (await client.call("subscribe", {"room": f"project:{project}"}))["status"] == "success"
    return client


async def drained(client: Client, marker_type: str, event_type: str) -> int:
    """Wait for the marker, then count the ``event_type`` events the client holds."""
    await client.next(marker_type)
    return client.events[event_type].qsize()


async def received(client: Client, count: int, settle: float = 0.5, field: str = "progress") -> list[int]:
    """The ``field`` values (as numbers) of the workflow.progress events the client got:
    ``count`` of them, then nothing more within ``settle`` seconds.

    Where the events come through other instances, no marker event can prove that nothing
    more is on its way (another path may be slower), so this waits out a window instead.
    """
    got = [int((await client.next("workflow.progress", timeout=10))["data"][field]) for _ in range(count)]
    await asyncio.sleep(settle)  # not a wait for something: a window in which nothing may arrive
    assert client.events["workflow.progress"].qsize() == 0, "an event arrived twice"
    return got


def event_ids(trace: Sequence[Traced]) -> list[str]:
    """The ids of the events in ``trace`` (part of a Client's), in the order they arrived."""
    return [entry.data["id"] for entry in trace if entry.kind == "event" and "id" in entry.data]


class RedisProcess:
    """A private redis-server, so that a test may stop and restart it (``options``: more
    redis-server arguments, such as cluster mode)."""

    def __init__(self, tmp: Path, *options: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._tmp = tmp
        self._options = options
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def cli(self, *args: str) -> str:
        """What ``redis-cli`` prints for ``args`` against this server (nothing when it is down)."""
        return subprocess.run(
            ["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True
        ).stdout

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._tmp),
                *self._options,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        eventually_sync(lambda: self.cli("ping") == "PONG\n", message="redis-server did not start")

    def stop(self) -> None:
        """SIGTERM: a shutdown (Redis 7 first lets lagging replicas catch up, for up to 10 s)."""
        if self.process is not None and self.running:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(10)

    def kill(self) -> None:
        """SIGKILL, as a crash would: nothing flushed, no replica waited for."""
        if self.process is not None and self.running:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)


def room_slot(channel: str, room: str) -> int:
    """The Redis Cluster hash slot of ``room``'s keys and channel on ``channel`` (REDIS_CHANNEL):
    they share the ``{<channel>:<room>}`` hash tag (server/cluster/streams.py), so one master serves
    all of a room."""
    return key_slot(f"{{{channel}:{room}}}:events".encode())


async def node_command(port: int, *args: str | int | bytes) -> Any:
    """One command to the Redis node at ``port``, on a connection of its own: a test that
    reshapes a Redis Cluster talks to each node as it is, without a client's slot map."""
    node = redis.asyncio.Redis(port=port)
    try:
        return await node.execute_command(*args)  # type: ignore[no-untyped-call]  # unannotated upstream
    finally:
        await node.aclose()


class RedisClusterProcess:
    """A private Redis Cluster of ``size`` masters with ``replicas`` replicas each, each node a
    RedisProcess; and what a test does to a cluster under load: find the master of a slot,
    fail a master over to its replica, move a slot with its keys to another master."""

    def __init__(self, tmp: Path, size: int = 3, *, replicas: int = 0) -> None:
        self.size = size
        self.replicas = replicas
        self.nodes = []
        for index in range(size * (1 + replicas)):
            folder = tmp / f"node{index}"
            folder.mkdir()
            options: tuple[str, ...] = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
            # A node down is noticed, and back up is believed, within seconds, not 15 s each.
            options += ("--cluster-node-timeout", "2000")
            # A replica syncs at once, not after the 5 s Redis waits for more replicas to join.
            options += ("--repl-diskless-sync-delay", "0")
            self.nodes.append(RedisProcess(folder, *options, port=free_port(bus=True)))
        self.url = "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        create = subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{n.port}" for n in self.nodes),
                "--cluster-replicas",
                str(self.replicas),
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
        )
        assert create.returncode == 0, create.stdout + create.stderr

        def formed() -> bool:
            """Every node sees the cluster ok, and every replica has synced with its master (a
            replica that never synced cannot be promoted)."""
            synced = sum("master_link_status:up" in node.cli("info", "replication") for node in self.nodes)
            ok = all("cluster_state:ok" in node.cli("cluster", "info") for node in self.nodes)
            return ok and synced == len(self.nodes) - self.size

        eventually_sync(formed, timeout=20, message="the Redis Cluster did not form")

    def keys_per_node(self, pattern: str) -> list[int]:
        """How many keys matching ``pattern`` each running master holds (a replica's copies
        are not counted)."""
        counts = []
        for node in self.nodes:
            if node.running and "role:master" in node.cli("info", "replication"):
                counts.append(len(node.cli("--scan", "--pattern", pattern).split()))
        return counts

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def node(self, port: int) -> RedisProcess:
        return next(node for node in self.nodes if node.port == port)

    async def masters(self) -> list[RedisProcess]:
        """The nodes that serve slots now, as a running node sees it."""
        slots = await node_command(self._running()[0].port, "CLUSTER", "SLOTS")
        return [self.node(port) for port in sorted({int(entry[2][1]) for entry in slots})]

    async def slot_master(self, slot: int) -> RedisProcess:
        """The master that serves ``slot`` now, as a running node sees it."""
        return self.node(await self._owner(self._running()[0], slot))

    async def fail_over(self, slot: int, *, crash: bool = True) -> tuple[RedisProcess, RedisProcess]:
        """Stop the master of ``slot`` (SIGKILL when ``crash``, else SIGTERM) and wait until a
        replica of it serves the slot and every running node sees the cluster ok: the master
        stopped, and the one promoted. With a node timeout of 2 s that takes a few seconds."""
        old = await self.slot_master(slot)
        await asyncio.to_thread(old.kill if crash else old.stop)  # a SIGTERM waits for replicas

        async def promoted() -> RedisProcess | None:
            new = await self._agreed_master(slot)
            return new if new is not old else None

        new = await eventually(promoted, 30, interval=0.2, message=f"no replica took over slot {slot}")
        return old, new

    async def migrate(self, slot: int, target: RedisProcess, *, batch: int = 1, pause: float = 0.3) -> None:
        """Move ``slot`` with its keys from its master to ``target`` (another master), as
        ``redis-cli --cluster reshard`` does: the target IMPORTING, the source MIGRATING, the
        keys MIGRATEd ``batch`` at a time, then the slot given to the target on every master
        (the target first); returns once every running node says so.

        ``pause`` between the steps: a reshard takes its time, and the publishes of a test
        running meanwhile should meet each half-moved state (keys on both sides, ASK and
        TRYAGAIN answers)."""
        source = await self.slot_master(slot)
        assert target is not source, "the slot is on the target already"
        ids = {
            node.port: (await node_command(node.port, "CLUSTER", "MYID")).decode()
            for node in (source, target)
        }
        await node_command(target.port, "CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source.port])
        await node_command(source.port, "CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target.port])
        while keys := await node_command(source.port, "CLUSTER", "GETKEYSINSLOT", slot, batch):
            await asyncio.sleep(pause)  # pacing (see the docstring), not a wait for anything
            await node_command(source.port, "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
        await asyncio.sleep(pause)  # pacing: every key on the target, the slot still the source's
        others = [master for master in await self.masters() if master not in (source, target)]
        for master in (target, source, *others):
            await node_command(master.port, "CLUSTER", "SETSLOT", slot, "NODE", ids[target.port])

        async def moved() -> bool:
            return await self._agreed_master(slot) is target

        await eventually(moved, 30, interval=0.2, message=f"the nodes do not agree that {slot} moved")

    def _running(self) -> list[RedisProcess]:
        return [node for node in self.nodes if node.running]

    async def _owner(self, node: RedisProcess, slot: int) -> int:
        """The port of the master that serves ``slot`` in ``node``'s view."""
        for first, last, master, *_ in await node_command(node.port, "CLUSTER", "SLOTS"):
            if first <= slot <= last:
                return int(master[1])
        raise AssertionError(f"{node.port} knows no master of slot {slot}")

    async def _agreed_master(self, slot: int) -> RedisProcess | None:
        """The running master of ``slot`` if every running node sees the cluster ok and names
        that master; else None (a view still changing, a node not answering)."""
        try:
            owners = set()
            for node in self._running():
                if b"cluster_state:ok" not in await node_command(node.port, "CLUSTER", "INFO"):
                    return None
                owners.add(await self._owner(node, slot))
        except (redis.exceptions.RedisError, OSError):
            return None
        if len(owners) != 1:
            return None
        master = self.node(owners.pop())
        return master if master.running else None


async def metric(server: ServerProcess, name: str, token: str = ADMIN) -> float:
    """One sample of the gateway's ``/metrics`` (``name`` with its labels), 0 when absent."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.url + "/metrics", headers={"Authorization": f"Bearer {token}"}) as response,
    ):
        text = await response.text()
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


LEEWAY = 5
"""The JWT_LEEWAY of the test gateways (the default): a token is honoured this long past its exp."""
ENDS_IN = 3
"""Seconds: an ``ending_token`` is minted expired, but honoured this much longer (within the
leeway), so that a test sees its end without waiting out a lifetime and the leeway. Long
enough for a busy machine to connect with it first."""


def ending_token(sub: UUID | None = None, **claims: Any) -> tuple[str, float]:
    """A token a gateway with the default leeway honours for ENDS_IN seconds more, and when
    it stops (epoch seconds); minted as the test runs, never at collection."""
    token = make_token(sub, ttl=ENDS_IN - LEEWAY, **claims)
    ends: float = jwt.decode(token, options={"verify_signature": False})["exp"] + LEEWAY
    return token, ends


# --- the shipped compose nginx, in front of local gateways ---------------------------------

REPOSITORY = Path(__file__).resolve().parent.parent

NGINX_ALIAS = "127.0.0.2"
"""nginx's compose address, here: the local nginx connects to the gateways from it."""


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPOSITORY / "docker-compose.yml").read_text())
    return loaded


def nginx_compose_address() -> str:
    address: str = compose()["services"]["nginx"]["networks"]["default"]["ipv4_address"]
    return address


def gateway_environment(instance: str) -> dict[str, str]:
    """What compose sets on a gateway that a local one can use too: addresses mapped to here."""
    env = compose()["services"][instance]["environment"]
    trusted = str(env.get("FORWARDED_ALLOW_IPS", ""))
    return {"FORWARDED_ALLOW_IPS": trusted.replace(nginx_compose_address(), NGINX_ALIAS)} if trusted else {}


@contextmanager
def run_nginx(tmp_path: Path, gateways: list[ServerProcess]) -> Iterator[str]:
    """The shipped nginx.conf, with the compose hostnames pointed at two local gateways and
    nginx's address at NGINX_ALIAS; yields its URL."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(nginx).exists(), "nginx is required: `just test` installs it (Debian package nginx)"
    port = free_port()
    config = (REPOSITORY / "deploy" / "nginx.conf").read_text()
    config = config.replace("gateway1:8000", f"127.0.0.1:{gateways[0].port}")
    config = config.replace("gateway2:8000", f"127.0.0.1:{gateways[1].port}")
    config = config.replace("listen 8000;", f"listen 127.0.0.1:{port};")
    config = config.replace("http {", f"http {{\n    proxy_bind {NGINX_ALIAS};", 1)
    (tmp_path / "nginx.conf").write_text(config)
    (tmp_path / "logs").mkdir()
    common = [
        "-p",
        str(tmp_path),
        "-c",
        str(tmp_path / "nginx.conf"),
        "-e",
        str(tmp_path / "logs" / "error.log"),
    ]
    globals_ = f"pid {tmp_path}/nginx.pid; daemon off;"
    checked = subprocess.run([nginx, "-t", *common, "-g", globals_], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen([nginx, *common, "-g", globals_])

    def up() -> bool:
        health = subprocess.run(["curl", "-sf", f"http://127.0.0.1:{port}/health"], capture_output=True)
        return health.returncode == 0

    eventually_sync(up, interval=0.1, message="nginx did not come up")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def compose_gateways(start_server: Callable[..., ServerProcess], **env: str) -> list[ServerProcess]:
    """Two local gateways configured like compose's gateway1 and gateway2, on one Redis channel."""
    channel = f"test-{uuid4().hex[:12]}"
    return [
        start_server(
            {
                "JWT_SECRET": SECRET,
                "REDIS_URL": SHARED_REDIS,
                "REDIS_CHANNEL": channel,
                "INSTANCE_ID": instance,
                **gateway_environment(instance),
                **env,
            }
        )
        for instance in ("gateway1", "gateway2")
    ]

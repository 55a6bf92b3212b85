"""Test support: a real gateway process on a free port, real clients, token crafting."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import aiohttp
import jwt
import socketio

SECRET = "test-secret-that-is-long-enough-for-hs256!"
LOAD_TEST_LIMITS = {
    "CONNECTS_PER_IP_PER_MINUTE": "1000000",
    "MAX_CONNECTIONS_PER_USER": "1000",
    "COMMANDS_PER_SECOND": "1000000",
}
"""Every test client comes from 127.0.0.1, many as one user: the shared server must allow it."""
CLI = Path(sys.executable).with_name("swe-realtime")
SHARED_REDIS = "redis://127.0.0.1:6379/0"
"""The machine's Redis: tests use channels (and so keys) of their own on it, never flush it."""
ERROR_MARKERS = (" ERROR ", " CRITICAL ", "Traceback (most recent call last)")


async def api(
    server: ServerProcess,
    method: str,
    path: str,
    token: str | None = None,
    body: Any = None,
    *,
    raw: bytes | None = None,
) -> tuple[int, Any]:
    """One HTTP request to the gateway: (status, parsed JSON body or None)."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    data = io.BytesIO(raw) if raw is not None else None
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method, server.url + path, headers=headers, json=body if raw is None else None, data=data
        ) as response,
    ):
        text = await response.text()
        try:
            return response.status, json.loads(text)
        except ValueError:
            return response.status, None


async def stats(server: ServerProcess) -> dict[str, Any]:
    status, body = await api(server, "GET", "/api/v1/websocket/stats", make_token(roles=["admin"]))
    assert status == 200, body
    result: dict[str, Any] = body
    return result


_UNVERIFIED = ssl._create_unverified_context()  # only to poll /health of a test's own server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """``swe-realtime serve`` in a subprocess, its output captured in a file."""

    def __init__(
        self, log_path: Path, env: Mapping[str, str] | None = None, *args: str, https: bool = False
    ) -> None:
        self.port = free_port()
        self.url = f"{'https' if https else 'http'}://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.crashed = False
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("JWT_", "CORS_", "MAX_"))}
        full_env.update(env if env is not None else {"JWT_SECRET": SECRET})
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [str(CLI), "serve", "--port", str(self.port), *args],
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._wait_healthy()

    def _wait_healthy(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1, context=_UNVERIFIED) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"gateway did not become healthy:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def errors_since(self, offset: int) -> list[str]:
        """Lines logged at ERROR or worse (or tracebacks) after ``offset`` characters."""
        return [line for line in self.log()[offset:].splitlines() if any(m in line for m in ERROR_MARKERS)]

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


class Client:
    """A python-socketio AsyncClient on ``/ws`` that records every event it receives."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: dict[str, asyncio.Queue[Any]] = defaultdict(asyncio.Queue)
        self.connect_error: Any = None
        self.sio.on("*", self._record, namespace="/ws")
        self.sio.on("connect_error", self._refused, namespace="/ws")

    async def _record(self, event: str, *args: Any) -> None:
        self.events[event].put_nowait(args[0] if len(args) == 1 else args)

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
        await self.sio.connect(url, namespaces=["/ws"], transports=[transport], auth=auth, wait_timeout=10)
        return self

    async def next(self, event: str, timeout: float = 5.0) -> Any:
        return await asyncio.wait_for(self.events[event].get(), timeout)

    async def call(self, event: str, *args: Any, timeout: float = 5.0) -> Any:
        return await self.sio.call(
            event, args[0] if len(args) == 1 else args, namespace="/ws", timeout=timeout
        )

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()
        http = self.sio.eio.http  # left open when the server ended or refused the connection
        if http is not None and not http.closed:
            await http.close()


class RedisProcess:
    """A private redis-server, so that a test may stop and restart it."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._tmp = tmp
        self.process: subprocess.Popen[bytes] | None = None

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
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while (
            subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True).stdout
            != b"PONG\n"
        ):
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(10)

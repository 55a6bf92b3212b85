"""Small, allocation-light rate limiters, per connection and per client address, and the
admission of new Engine.IO sessions."""

from __future__ import annotations

import logging
import os
import resource
import time
from collections import deque
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from swe_realtime.errors import ErrorCode
from swe_realtime.protocol.engineio import Refusal
from swe_realtime.telemetry import audit, metrics

_log = logging.getLogger("swe_realtime.limits")


def client_address(environ: Mapping[str, Any]) -> tuple[str, str]:
    """The client's address (the per-address limits' key) and how to show it: with its port
    as uvicorn resolved them, or the address alone when a trusted proxy named the client
    (uvicorn then knows no port, and says 0)."""
    client = environ.get("asgi.scope", {}).get("client")
    if not client:
        return "unknown", "unknown"
    address = str(client[0])
    return address, f"{address}:{client[1]}" if client[1] else address


class TokenBucket:
    """``rate`` tokens a second, holding at most ``burst``; each command takes one."""

    __slots__ = ("_burst", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._stamp = time.monotonic()

    def take(self) -> bool:
        if self.spent():
            return False
        self._tokens -= 1
        return True

    def spent(self) -> bool:
        """Whether no token is left now (nothing is taken)."""
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        return self._tokens < 1


class SlidingWindow:
    """At most ``limit`` events per ``window`` seconds for each key (a client address)."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self._limit = limit
        self._window = window
        self._events: dict[str, deque[float]] = {}

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        events = self._events.setdefault(key, deque())
        while events and events[0] <= now - self._window:
            events.popleft()
        if len(events) >= self._limit:
            return False
        events.append(now)
        self._prune(now)
        return True

    def _prune(self, now: float) -> None:
        """Forget addresses idle for a whole window, so the map cannot grow without bound."""
        if len(self._events) > 10_000:
            stale = [
                key for key, events in self._events.items() if not events or events[-1] <= now - self._window
            ]
            for key in stale:
                del self._events[key]


class FileDescriptors:
    """Whether the process is close to RLIMIT_NOFILE, checked cheaply on every handshake.

    Counting the open descriptors is done at most once a second while far from the limit:
    in between, each check counts one more descriptor (a handshake opens at most one), and at
    the limit it counts again ten times a second (so a flood of refused handshakes is not one
    count each). Linux 6.2 and later give the count as the size of ``/proc/self/fd``: one
    ``stat`` (2 us), which needs no descriptor of its own. Before, that size is 0 and the
    folder is listed: one directory entry per descriptor, 7 ms at 10,000 connections.
    ``reserve`` descriptors are kept for what must still work when sessions are refused:
    ``/health``, the Redis clients, the refusals' own sockets.
    """

    RESERVE = 64
    RECOUNT_SECONDS = 1.0
    NEAR_RECOUNT_SECONDS = 0.1
    """At the ceiling a flood of handshakes recounts this often, not once per handshake."""
    FOLDER = "/dev/fd"
    PROC_FOLDER = "/proc/self/fd"

    def __init__(self, reserve: int = RESERVE) -> None:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        self.limit = None if soft == resource.RLIM_INFINITY else soft
        self.reserve = reserve
        self._estimate = 0
        self._counted_at = -self.RECOUNT_SECONDS

    @property
    def ceiling(self) -> int | None:
        """Open descriptors past which new sessions are refused; None: no limit."""
        return None if self.limit is None else self.limit - self.reserve

    def short(self) -> bool:
        ceiling = self.ceiling
        if ceiling is None:
            return False
        now = time.monotonic()
        self._estimate += 1
        since = now - self._counted_at
        if since >= self.RECOUNT_SECONDS or (
            self._estimate >= ceiling and since >= self.NEAR_RECOUNT_SECONDS
        ):
            try:
                self._estimate = self._count()
            except OSError:  # listing needs a descriptor of its own: none left is short indeed
                self._estimate = ceiling
            self._counted_at = now
        return self._estimate >= ceiling

    def _count(self) -> int:
        try:
            size = os.stat(self.PROC_FOLDER).st_size
        except OSError:  # no /proc (not Linux)
            size = 0
        return size or len(os.listdir(self.FOLDER))

    @property
    def open(self) -> int:
        """Open descriptors at the last count."""
        return self._estimate


class SessionAdmission:
    """Whether a new Engine.IO session may open, decided at its handshake, before any token.

    Every session costs a socket, memory and a ping timer, whether or not it ever joins
    ``/ws``, so the instance and per-address limits count sessions, with room to spare over
    the ``/ws`` limits: a client past those still gets a session in which its CONNECT is
    answered with the spec's RATE_LIMITED or CONNECTION_LIMIT (which socket.io-client takes
    as final), while a client that keeps opening sessions beyond that gets a plain HTTP
    refusal. An address may open ``SESSIONS_PER_CONNECT`` sessions for each connection
    attempt CONNECTS_PER_IP_PER_MINUTE allows it; the instance holds MAX_CONNECTIONS
    sessions plus a tenth (at least ``MIN_HEADROOM``) of sessions yet to join or be refused.
    Sessions that do not join ``/ws`` are closed after CONNECT_TIMEOUT seconds.
    """

    SESSIONS_PER_CONNECT = 2
    MIN_HEADROOM = 10
    ERROR_EVERY_SECONDS = 60.0
    """File-descriptor shortage is logged at ERROR at most this often, not per handshake."""

    def __init__(self, connects_per_minute: int, max_connections: int, fds: FileDescriptors) -> None:
        self._attempts = SlidingWindow(self.SESSIONS_PER_CONNECT * connects_per_minute)
        self._max_sessions = max_connections + max(self.MIN_HEADROOM, max_connections // 10)
        self._fds = fds
        self._reported_at: float | None = None

    def __call__(self, environ: Mapping[str, Any], sessions: int) -> Refusal | None:
        """The refusal of a handshake from ``environ`` while ``sessions`` are open, or None;
        a refusal is audited and counted."""
        address, _ = client_address(environ)
        refusal = self._refusal(address, sessions)
        if refusal is not None:
            audit.refused(code=refusal.code, reason=refusal.reason, remote=address)
            metrics.CONNECTIONS_REFUSED.labels(refusal.code).inc()
        return refusal

    def _refusal(self, address: str, sessions: int) -> Refusal | None:
        if self._fds.short():
            self._report_shortage()
            return Refusal(
                HTTPStatus.SERVICE_UNAVAILABLE,
                ErrorCode.SERVICE_UNAVAILABLE,
                "Too many open files: new sessions are refused",
            )
        if sessions >= self._max_sessions:
            return Refusal(
                HTTPStatus.SERVICE_UNAVAILABLE,
                ErrorCode.CONNECTION_LIMIT,
                f"{sessions} sessions open: the instance's limit",
            )
        if not self._attempts.allow(address):
            return Refusal(
                HTTPStatus.TOO_MANY_REQUESTS,
                ErrorCode.RATE_LIMITED,
                "Too many sessions from this address; wait a minute",
            )
        return None

    def _report_shortage(self) -> None:
        """An operator must act (raise the limit, add instances): ERROR, once a minute."""
        now = time.monotonic()
        if self._reported_at is not None and now - self._reported_at < self.ERROR_EVERY_SECONDS:
            return
        self._reported_at = now
        _log.error(
            "Refusing new sessions: %d file descriptors open of RLIMIT_NOFILE %s, %d kept in reserve;"
            " raise the limit (ulimit -n, LimitNOFILE) or add instances",
            self._fds.open,
            self._fds.limit,
            self._fds.reserve,
        )


class Buckets:
    """A :class:`TokenBucket` per key: an admin's user id (from verified tokens, so few), or
    the address of a caller whose token failed. Past 10,000 keys the map starts afresh rather
    than grow: a caller spreading failures over that many addresses gets fresh allowances, as
    it would from a per-address limit anyway."""

    def __init__(self, rate: float, burst: float) -> None:
        self._rate = rate
        self._burst = burst
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, key: str) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= 10_000:
                self._buckets.clear()
            bucket = self._buckets[key] = TokenBucket(self._rate, self._burst)
        return bucket.take()

    def spent(self, key: str) -> bool:
        """Whether ``key`` has used up its bucket (a key never seen has not)."""
        bucket = self._buckets.get(key)
        return bucket is not None and bucket.spent()

"""Small, allocation-light rate limiters, per connection and per client address."""

from __future__ import annotations

import time
from collections import deque


class TokenBucket:
    """``rate`` tokens a second, holding at most ``burst``; each command takes one."""

    __slots__ = ("_burst", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


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

"""Whether Redis answers, as every user of it in this process sees it (behind ``/ready``).

An outage is one WARNING when it starts and one line when it ends, with the number of
messages the other instances missed meanwhile, not a line per failed call.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import redis.exceptions

from swe_realtime.cluster.connection import safe_url
from swe_realtime.telemetry import metrics

_log = logging.getLogger("swe_realtime.redis")


class RedisHealth:
    """Whether Redis answers, as seen by every user of it in this process; logs transitions.

    Two kinds of failure. A part (a pub/sub connection, the heartbeat) that fails stays failed
    until that part succeeds again. A single command that fails (a publish, a read) counts for
    ``quiet`` seconds: Redis is reachable again once a success comes with no failure for that
    long. So a Redis Cluster failing over, where commands to the lost master fail while the
    others answer, is one outage in the log, not one per command.
    """

    def __init__(self, url: str, *, quiet: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.url = safe_url(url)
        self.unpublished = 0
        """Events refused because Redis could not take them, over this process's life."""
        self._quiet = quiet
        self._clock = clock
        self._answered = False
        self._failing: set[str] = set()
        self._failed_at = -math.inf
        self._outage_reported = False

    @property
    def reachable(self) -> bool:
        return self._answered and not self._failing and self._clock() - self._failed_at >= self._quiet

    def failed(self, error: BaseException, part: str | None = None) -> None:
        """A command failed (or ``part`` did, until it says it succeeded)."""
        if part is None:
            self._failed_at = self._clock()
        else:
            self._failing.add(part)
        if not self._outage_reported:
            # A connection that fails or times out is Redis away; an error it answers (out of
            # memory, a read-only replica) is Redis refusing.
            away = (OSError, TimeoutError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
            state = "is unreachable" if isinstance(error, away) else "refuses commands"
            _log.warning(
                "Redis at %s %s (%s: %s): events are refused (503) and rooms wait for their"
                " events until it is back; connections stay open",
                self.url,
                state,
                type(error).__name__,
                error,
            )
            self._outage_reported = True

    def succeeded(self, part: str | None = None) -> None:
        """A command succeeded (or ``part`` works again)."""
        self._answered = True
        if part is not None:
            self._failing.discard(part)
        if self._outage_reported and self.reachable:
            metrics.REDIS_RECONNECTS.inc()
            _log.warning(
                "Redis at %s is reachable again; %d event(s) so far were refused while it was away",
                self.url,
                self.unpublished,
            )
            self._outage_reported = False

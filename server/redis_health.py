"""Whether Redis answers, as every user of it in this process sees it (behind ``/ready``).

An outage is one WARNING when it starts and one line when it ends, with the number of
messages the other instances missed meanwhile, not a line per failed call.
"""

from __future__ import annotations

import logging

import redis.exceptions

from swe_realtime import metrics
from swe_realtime.redis_connection import safe_url

_log = logging.getLogger("swe_realtime.redis")


class RedisHealth:
    """Whether Redis answers, as seen by every user of it in this process; logs transitions."""

    def __init__(self, url: str) -> None:
        self.url = safe_url(url)
        self.reachable = False
        self.unpublished = 0
        """Events refused because Redis could not take them, over this process's life."""
        self._outage_reported = False

    def failed(self, error: BaseException) -> None:
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
        self.reachable = False

    def succeeded(self) -> None:
        if self._outage_reported:
            metrics.REDIS_RECONNECTS.inc()
            _log.warning(
                "Redis at %s is reachable again; %d event(s) so far were refused while it was away",
                self.url,
                self.unpublished,
            )
            self._outage_reported = False
        self.reachable = True

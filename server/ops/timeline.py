"""The last 15 minutes of this instance, for the console's charts.

Every step (TIMELINE_STEP, 2 s by default) the instance notes its open connections and how
many events it accepted, handed to connections, refused (events, connections, rate-limited
commands) and connections it dropped itself, per second since the note before, from the same
counters ``/metrics`` serves. Notes are taken at wall-clock multiples of the step, the same
instants on every instance (their clocks kept in time, their steps the same), so the console
adds instances up by equal times without resampling. WINDOW seconds of notes are kept: the
console opens on a quarter of an hour, not an empty chart.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

from swe_realtime import background
from swe_realtime.settings import DEFAULT_TIMINGS
from swe_realtime.telemetry import metrics

WINDOW = 900.0
"""Seconds of notes kept: 15 minutes."""

Sample = tuple[float, int, float, float, float, float]
"""``(t, connections, published/s, delivered/s, refused/s, dropped/s)``: t in Unix seconds."""


def _counts() -> tuple[float, float, float, float]:
    return (
        metrics.total(metrics.EVENTS_PUBLISHED),
        metrics.total(metrics.DELIVERIES),
        metrics.total(metrics.EVENTS_REFUSED, metrics.CONNECTIONS_REFUSED, metrics.RATE_LIMITED),
        metrics.total(metrics.DROPPED),
    )


class Timeline:
    """This instance's notes, taken by a task that lives as long as the gateway serves."""

    def __init__(self, connections: Callable[[], int], step: float = DEFAULT_TIMINGS.timeline_step) -> None:
        self._connections = connections
        self.step = step
        """Seconds between two notes."""
        self._samples: deque[Sample] = deque(maxlen=max(1, round(WINDOW / step)))
        self._read = (time.time(), _counts())
        """When the counters were last read, and what they said."""
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._read = (time.time(), _counts())
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        await background.stop([self._task])

    def since(self, after: float) -> list[Sample]:
        """The notes taken after ``after`` (Unix seconds), oldest first."""
        return [sample for sample in self._samples if sample[0] > after]

    def note(self, at: float) -> None:
        """Note the instant ``at``: the counters' rates over the time since they were last
        read (a step; less for the first note, more after a blocked loop)."""
        counts, now = _counts(), time.time()
        then, before = self._read
        elapsed = max(now - then, 1e-3)
        published, delivered, refused, dropped = (
            round(max(0.0, after - earlier) / elapsed, 3)
            for earlier, after in zip(before, counts, strict=True)
        )
        self._samples.append((at, self._connections(), published, delivered, refused, dropped))
        self._read = (now, counts)

    async def _run(self) -> None:
        """Note at each multiple of the step, each once: the loop's clock and the wall clock may
        drift apart (NTP slewing), so a wake-up just short of the instant sleeps again rather
        than noting the instant before a second time; a wake-up late by more than a step (a
        blocked loop) notes the latest instant passed, over the whole gap."""
        while True:
            due = (time.time() // self.step + 1) * self.step
            if self._samples:
                due = max(due, self._samples[-1][0] + self.step)
            await asyncio.sleep(due - time.time())
            reached = time.time() // self.step * self.step
            if reached >= due:  # else woken early: the next turn sleeps the rest
                self.note(reached)

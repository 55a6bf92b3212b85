"""The last 15 minutes of this instance, for the console's charts.

Every STEP seconds the instance notes its open connections and how many events it accepted,
handed to connections, refused (events, connections, rate-limited commands) and connections
it dropped itself, per second since the note before, from the same counters ``/metrics``
serves. Notes are taken at wall-clock multiples of STEP, the same instants on every instance
(their clocks kept in time), so the console adds instances up by equal times without
resampling. KEPT notes are kept: the console opens on a quarter of an hour, not an empty chart.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

from swe_realtime import metrics, tasks

STEP = 2.0
KEPT = 450
"""15 minutes of STEP-second notes."""

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

    def __init__(self, connections: Callable[[], int]) -> None:
        self._connections = connections
        self._samples: deque[Sample] = deque(maxlen=KEPT)
        self._counts = _counts()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._counts = _counts()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        await tasks.stop([self._task])

    def since(self, after: float) -> list[Sample]:
        """The notes taken after ``after`` (Unix seconds), oldest first."""
        return [sample for sample in self._samples if sample[0] > after]

    def note(self, now: float) -> None:
        """Take the note of ``now``: what happened since the last note, per second of STEP.
        (The first note covers only the time since the start, and is divided by STEP all the
        same: the rates times STEP add up to the counts.)"""
        counts = _counts()
        published, delivered, refused, dropped = (
            round(max(0.0, after - before) / STEP, 3)
            for before, after in zip(self._counts, counts, strict=True)
        )
        self._samples.append((now, self._connections(), published, delivered, refused, dropped))
        self._counts = counts

    async def _run(self) -> None:
        while True:
            now = time.time()
            await asyncio.sleep(STEP - now % STEP)
            self.note(round(time.time() / STEP) * STEP)

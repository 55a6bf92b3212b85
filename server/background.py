"""Stopping background tasks for good.

On Python 3.11 ``asyncio.wait_for`` can swallow a cancellation that arrives as the awaited
operation finishes (CPython gh-86296, fixed in 3.12): a ``while True`` loop that awaits
through ``wait_for`` (the heartbeat, the presence sweeper, a channel reader talking to
Redis) may then carry on after ``cancel()``, and ``await task`` after it waits forever. A
shutdown hung that way in a test. :func:`stop` cancels until the tasks are done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

RECANCEL_SECONDS = 0.5


async def stop(tasks: Iterable[asyncio.Task[Any] | None]) -> None:
    """Cancel ``tasks`` and return once every one of them has finished."""
    pending = {task for task in tasks if task is not None}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_SECONDS)

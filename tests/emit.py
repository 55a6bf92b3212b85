"""A backend process with no socket server, emitting one event through Redis.

A script, not a helper module: test_cluster runs it as a separate process, so that the
emitter is shown to work without a gateway in its process (no test module imports it).
Usage: python -m tests.emit REDIS_URL CHANNEL PROJECT_ID|- PROGRESS
Prints the rooms the event went to, or why it did not go.
"""

from __future__ import annotations

import asyncio
import sys
import uuid

from swe_realtime.broadcaster import redis_broadcaster
from swe_realtime.errors import EventRejected, RedisUnavailable


async def main(url: str, channel: str, project: str, progress: int) -> None:
    broadcaster = redis_broadcaster(url, channel)
    try:
        receipt = await broadcaster.broadcast_workflow_progress(
            workflow_id=uuid.uuid4(),
            project_id=None if project == "-" else uuid.UUID(project),
            status="running",
            progress=progress,
        )
    except EventRejected as rejected:
        print("rejected", ",".join(".".join(map(str, e.loc)) for e in rejected.errors))
    except RedisUnavailable:
        print("unavailable")
    else:
        print(",".join(receipt.rooms))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))

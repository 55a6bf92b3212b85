"""The benchmark scenarios: socket workloads run against each server, and the validation cost."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.driver import client_config
from bench.servers import GATEWAY, NODE_DIR, Kind, Running


@dataclass(frozen=True)
class Workload:
    name: str
    mode: str  # "fanout": one room; "targeted": a room per connection
    connections: int
    events: int
    rate: int | None = None  # events per second, or as fast as accepted
    batch: int = 100


SHORT = (
    Workload("fan-out", "fanout", 200, 500),
    Workload("targeted", "targeted", 200, 2000),
    Workload("paced fan-out (latency)", "fanout", 200, 1000, rate=200, batch=10),
)
FULL = (
    Workload("fan-out", "fanout", 1000, 2000),
    Workload("targeted", "targeted", 1000, 10000),
    Workload("paced fan-out (latency)", "fanout", 1000, 5000, rate=500, batch=10),
    Workload("paced fan-out (latency)", "fanout", 1000, 2000, rate=100, batch=10),
    Workload("capacity", "targeted", 10000, 0),
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run(kind: Kind, workload: Workload) -> dict[str, Any]:
    """Start ``kind``, drive ``workload`` at it from a node process, and measure."""
    server = Running(kind, free_port())
    try:
        cpu_before = server.cpu_seconds()
        config = {
            **client_config(server, workload.mode),
            "connections": workload.connections,
            "events": workload.events,
            "rate": workload.rate,
            "batch": workload.batch,
            "timeout": 300,
        }
        loaded = subprocess.run(
            ["node", str(NODE_DIR / "load.mjs"), json.dumps(config)],
            capture_output=True,
            text=True,
            check=True,
            timeout=900,
        )
        result: dict[str, Any] = json.loads(loaded.stdout)
        memory = server.memory()
        result["server_cpu_seconds"] = server.cpu_seconds() - cpu_before
        result["server_peak_rss_mb"] = memory["VmHWM"] / 2**20
        result["rss_per_connection_kb"] = (
            (memory["VmHWM"] - server.rss_at_start) / 1024 / workload.connections
        )
        return result
    finally:
        server.stop()


def validation_cost(events: int = 20000) -> dict[str, float]:
    """Events per second through the broadcaster (parse, validate, route, serialise) against
    emitting an already-built dict, both into an emitter that does nothing."""
    from swe_realtime.publish.broadcaster import Broadcaster, parse_event
    from swe_realtime.publish.message import Outgoing

    class NullEmitter:
        async def send(self, events: Sequence[Outgoing]) -> list[BaseException | None]:
            return [None] * len(events)

    broadcaster = Broadcaster(NullEmitter())
    body = {
        "type": "workflow.progress",
        "source": "bench",
        "data": {
            "workflow_id": str(uuid.uuid4()),
            "project_id": str(uuid.uuid4()),
            "status": "running",
            "progress": 45,
            "current_step": "Analyzing code structure",
            "logs": ["step"],
        },
    }
    emitter = NullEmitter()

    async def validated() -> None:
        for _ in range(events):
            await broadcaster.publish(parse_event(body))

    built = [Outgoing("workflow.progress", parse_event(body), ["project:x"])]

    async def raw() -> None:
        for _ in range(events):
            await emitter.send(built)

    timings = {}
    for name, job in (("validated", validated), ("raw", raw)):
        start = time.perf_counter()
        asyncio.run(job())
        timings[name] = events / (time.perf_counter() - start)
    return {
        "validated_events_per_s": timings["validated"],
        "raw_events_per_s": timings["raw"],
        "validation_us_per_event": 1e6 / timings["validated"] - 1e6 / timings["raw"],
    }


__all__ = ["FULL", "GATEWAY", "SHORT", "Workload", "run", "validation_cost"]

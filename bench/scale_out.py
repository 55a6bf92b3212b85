"""``python -m bench.scale_out``: what scaling out costs and gives (issue 14's figures).

1. Two instances: two gateways on one private Redis; the second holds one connection.
   Events are published on the first to rooms nobody is in. The second's CPU per event is
   what an instance pays for events of rooms it does not serve (before per-room channels:
   107-140 µs per event, measured on this machine by the issue that asked for them); the
   same wait with nothing published is measured too, as the floor of its own timers. Then
   the connection joins 90 rooms and events go round them: the cost of a served event.
2. Publish throughput: one gateway publishing events of distinct rooms as fast as it is
   answered (batches of 100 over HTTP, four at a time), on one Redis and then on a
   three-master Redis Cluster; gateway and Redis CPU per event from /proc.

Results: bench/results/scale_out.md and .json, and stdout.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import socketio

from bench.scenarios import free_port
from bench.servers import GATEWAY_ENV, Kind, Running, cpu_seconds, token
from tests.support import RedisClusterProcess, RedisProcess

RESULTS = Path(__file__).resolve().parent / "results"
EVENTS = 6000
BATCH = 100
CONCURRENT = 4


def gateway(redis_url: str, channel: str) -> Kind:
    env = {**GATEWAY_ENV, "REDIS_URL": redis_url, "REDIS_CHANNEL": channel}
    return Kind("gateway", "/api/v1/events/batch", "gateway", tuple(env.items()))


def event(room_project: str) -> dict[str, Any]:
    return {
        "type": "workflow.progress",
        "source": "bench",
        "data": {
            "workflow_id": str(uuid.uuid4()),
            "project_id": room_project,
            "status": "running",
            "progress": 45,
            "current_step": "Analyzing code structure",
        },
    }


async def publish_all(url: str, events: int, projects: list[str] | None = None) -> float:
    """Publish ``events`` events, each to a room of its own (or round the rooms of
    ``projects``); the seconds it took."""
    headers = {"Authorization": f"Bearer {token('service')}"}
    rooms = itertools.cycle(projects) if projects else (str(uuid.uuid4()) for _ in itertools.count())
    batches = [[event(next(rooms)) for _ in range(BATCH)] for _ in range(events // BATCH)]
    started = time.perf_counter()
    async with aiohttp.ClientSession(headers=headers) as session:

        async def worker(mine: list[list[dict[str, Any]]]) -> None:
            for batch in mine:
                async with session.post(url + "/api/v1/events/batch", json=batch) as response:
                    assert response.status == 202, await response.text()

        await asyncio.gather(*(worker(batches[i::CONCURRENT]) for i in range(CONCURRENT)))
    return time.perf_counter() - started


async def two_instances(redis: RedisProcess) -> dict[str, float]:
    """Events published on one gateway, measured on the other: for rooms it does not serve,
    then for rooms where it has one member each."""
    channel = f"bench-{uuid.uuid4().hex[:8]}"
    first, second = (Running(gateway(redis.url, channel), free_port()) for _ in range(2))
    projects = [str(uuid.uuid4()) for _ in range(90)]  # MAX_ROOMS_PER_CONNECTION is 100
    member = socketio.AsyncClient()
    received = 0

    def count(*_: object) -> None:
        nonlocal received
        received += 1

    member.on("workflow.progress", count, namespace="/ws")
    try:
        auth = {"token": token("admin")}
        await member.connect(second.url, namespaces=["/ws"], transports=["websocket"], auth=auth)
        await publish_all(first.url, 1000)  # warm-up
        quiet_before = cpu_seconds(second.process.pid)
        await asyncio.sleep(5)  # the second instance's own timers, with nothing published
        quiet = cpu_seconds(second.process.pid) - quiet_before
        before = cpu_seconds(second.process.pid), cpu_seconds(first.process.pid)
        seconds = await publish_all(first.url, EVENTS)
        after = cpu_seconds(second.process.pid), cpu_seconds(first.process.pid)
        for project in projects:
            ack = await member.call("subscribe", {"room": f"project:{project}"}, namespace="/ws")
            assert ack["status"] == "success", ack
        served_before = cpu_seconds(second.process.pid)
        await publish_all(first.url, EVENTS, projects)
        while received < EVENTS:  # noqa: ASYNC110 - a count kept by the client's handler
            await asyncio.sleep(0.05)
        served = cpu_seconds(second.process.pid) - served_before
        return {
            "events": EVENTS,
            "seconds": seconds,
            "unserving_instance_us_per_event": (after[0] - before[0]) * 1e6 / EVENTS,
            "unserving_instance_idle_us_per_s": quiet * 1e6 / 5,
            "publishing_instance_us_per_event": (after[1] - before[1]) * 1e6 / EVENTS,
            "serving_instance_us_per_event": served * 1e6 / EVENTS,
        }
    finally:
        await member.disconnect()
        first.stop()
        second.stop()


async def throughput(redis_url: str, redis_pids: list[int]) -> dict[str, Any]:
    server = Running(gateway(redis_url, f"bench-{uuid.uuid4().hex[:8]}"), free_port())
    try:
        await publish_all(server.url, 1000)  # warm-up: scripts loaded, connections made
        gateway_before, redis_before = server.cpu_seconds(), [cpu_seconds(pid) for pid in redis_pids]
        seconds = await publish_all(server.url, EVENTS)
        redis_after = [cpu_seconds(pid) for pid in redis_pids]
        return {
            "events": EVENTS,
            "events_per_s": EVENTS / seconds,
            "gateway_us_per_event": (server.cpu_seconds() - gateway_before) * 1e6 / EVENTS,
            "redis_us_per_event": sum(redis_after) * 1e6 / EVENTS - sum(redis_before) * 1e6 / EVENTS,
            "redis_us_per_event_per_node": [
                (after - before) * 1e6 / EVENTS
                for before, after in zip(redis_before, redis_after, strict=True)
            ],
        }
    finally:
        server.stop()


def main() -> int:
    load = Path("/proc/loadavg").read_text().strip()
    results: dict[str, Any] = {"loadavg_before": load}
    with tempfile.TemporaryDirectory() as tmp:
        single = RedisProcess(Path(tmp))
        single.start()
        try:
            assert single.process is not None
            results["two_instances"] = asyncio.run(two_instances(single))
            results["one_redis"] = asyncio.run(throughput(single.url, [single.process.pid]))
        finally:
            single.stop()
        (Path(tmp) / "cluster").mkdir()
        cluster = RedisClusterProcess(Path(tmp) / "cluster")
        cluster.start()
        try:
            pids = [node.process.pid for node in cluster.nodes if node.process is not None]
            results["three_master_cluster"] = asyncio.run(throughput(cluster.url, pids))
        finally:
            cluster.stop()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scale_out.json").write_text(json.dumps(results, indent=2) + "\n")
    markdown = render(results)
    (RESULTS / "scale_out.md").write_text(markdown)
    print(markdown)
    return 0


def render(results: dict[str, Any]) -> str:
    unserved, one, three = results["two_instances"], results["one_redis"], results["three_master_cluster"]
    per_node = ", ".join(f"{value:.0f}" for value in three["redis_us_per_event_per_node"])
    return (
        f"load average before the run: {results['loadavg_before']}\n\n"
        "### events of rooms an instance does not serve\n\n"
        f"{unserved['events']:,} events published on one gateway to rooms nobody is in; the other "
        f"gateway (one idle connection) spent **{unserved['unserving_instance_us_per_event']:.1f} µs "
        f"of CPU per event** (its own timers alone: {unserved['unserving_instance_idle_us_per_s']:.0f} µs "
        f"per second); the publishing gateway {unserved['publishing_instance_us_per_event']:.0f} µs "
        "per event. With one member in each of 90 rooms the events went round, the second "
        f"gateway spent {unserved['serving_instance_us_per_event']:.0f} µs per event (receive, "
        "order check, one delivery).\n\n"
        "### publish throughput of one gateway\n\n"
        "| Redis | events/s | gateway CPU µs/event | Redis CPU µs/event |\n|---|---:|---:|---:|\n"
        f"| one Redis | {one['events_per_s']:,.0f} | {one['gateway_us_per_event']:.0f} | "
        f"{one['redis_us_per_event']:.0f} |\n"
        f"| 3-master cluster | {three['events_per_s']:,.0f} | {three['gateway_us_per_event']:.0f} | "
        f"{three['redis_us_per_event']:.0f} (per master: {per_node}) |\n\n"
        f"cluster / one Redis events per second: **{three['events_per_s'] / one['events_per_s']:.2f}**\n"
    )


if __name__ == "__main__":
    sys.exit(main())

"""The load generator, run in its own process: connect a crowd, then ping as fast as acks allow.

Usage: python -m bench.load URL TOKEN CLIENTS SECONDS
Prints one JSON object: connect and ping-RTT samples summarised.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import socketio

CONNECT_BATCH = 50


async def connect(url: str, token: str) -> tuple[socketio.AsyncClient, float]:
    client = socketio.AsyncClient(reconnection=False)
    welcomed = asyncio.Event()
    client.on("connection_established", lambda *_: welcomed.set(), namespace="/ws")
    start = time.perf_counter()
    await client.connect(url, namespaces=["/ws"], transports=["websocket"], auth={"token": token})
    await welcomed.wait()
    return client, time.perf_counter() - start


async def ping_loop(client: socketio.AsyncClient, deadline: float, samples: list[float]) -> None:
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        await client.call("ping", {}, namespace="/ws", timeout=10)
        samples.append(time.perf_counter() - start)


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

    return {"n": len(ordered), "p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": ordered[-1] * 1000}


async def main(url: str, token: str, count: int, seconds: float) -> dict[str, Any]:
    clients: list[socketio.AsyncClient] = []
    connect_times: list[float] = []
    start = time.perf_counter()
    for first in range(0, count, CONNECT_BATCH):
        batch = await asyncio.gather(
            *(connect(url, token) for _ in range(first, min(count, first + CONNECT_BATCH)))
        )
        clients += [client for client, _ in batch]
        connect_times += [elapsed for _, elapsed in batch]
    connect_wall = time.perf_counter() - start

    rtts: list[float] = []
    deadline = time.perf_counter() + seconds
    await asyncio.gather(*(ping_loop(client, deadline, rtts) for client in clients))
    await asyncio.gather(*(client.disconnect() for client in clients))
    return {
        "clients": count,
        "connects_per_s": count / connect_wall,
        "connect": summary(connect_times),
        "acks_per_s": len(rtts) / seconds,
        "ping_rtt": summary(rtts),
    }


if __name__ == "__main__":
    url, token, count, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    print(json.dumps(asyncio.run(main(url, token, count, seconds))))

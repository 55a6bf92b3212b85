"""Every hostile client of issue 15 at once against one gateway.

The gateway must come out of it as it went in: no connection or socket left behind, its
RSS within 10% of where it started, no ERROR logged (the ``start_server`` fixture checks
the log), and a legitimate client, connected from an address of its own, served the whole
time: every event published to its room delivered, ``/health`` answered, newcomers let in.

RSS is read after a warm-up run of the same attacks (half as long), so that what a first
use allocates once (lazily imported code, the allocator's arenas, the high-water mark of
the bounded buffers: freed memory mostly stays with the process) is not taken for a leak; a
leak grows with time, and the run after the warm-up shows it. The figures are printed
(``pytest -s``) and written to tests/artifacts/soak.json.

``SOAK_SECONDS`` sets the length: 8 s in ``just test``, ``just soak hostile --minutes N``
for longer (``SOAK_WARM_UP_SECONDS``: the warm-up, half of it unless set). The short run
still proves each defence under all the attacks at once: the gateway runs with a 3 s ping
timeout and a 2 s connect timeout, so that replay hogs are dropped as slow consumers and
silent sessions closed for not joining several times over, while every attack reconnects
from new addresses; what it proves less is a slow leak, which the RSS of a longer run shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import uuid4

import aiohttp
import pytest

from tests.hostile import ATTACKS, Target, relentlessly
from tests.support import (
    SECRET,
    SERVICE,
    Client,
    ServerProcess,
    eventually,
    make_token,
    progress_event,
    stats,
)

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS") or 8)
WARM_UP_SECONDS = float(os.environ.get("SOAK_WARM_UP_SECONDS") or SOAK_SECONDS / 2)
SOAK_ENV = {"JWT_SECRET": SECRET, "PING_TIMEOUT": "3", "CONNECT_TIMEOUT": "2"}
"""The bounds of the gateway cut short, for each to fire many times in a short run."""
REPLAYED_EVENTS = 500
EVENT_PADDING = "x" * 10_000


def rss_kib(server: ServerProcess) -> int:
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def sockets(server: ServerProcess) -> int:
    """The gateway's open sockets (one it closes while they are counted is not one)."""
    count = 0
    for fd in Path(f"/proc/{server.process.pid}/fd").iterdir():
        with contextlib.suppress(FileNotFoundError):
            count += os.readlink(fd).startswith("socket:")
    return count


def loadavg() -> list[str]:
    return Path("/proc/loadavg").read_text().split()[:3]


async def attack(server: ServerProcess, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    targets = [Target(server.url, 10 + n, deadline) for n in range(1, len(ATTACKS) + 1)]
    await asyncio.gather(
        *(relentlessly(run, target) for run, target in zip(ATTACKS.values(), targets, strict=True))
    )


async def settled(server: ServerProcess, baseline_sockets: int, connections: int) -> None:
    """Until the gateway holds ``connections`` and no more sockets than before the attack."""

    async def back() -> bool:
        held = (await stats(server))["connections"]
        return held == connections and sockets(server) <= baseline_sockets

    await eventually(back, 30, interval=0.5, message="connections or sockets were left behind")


class Watch:
    """The legitimate side: one subscribed client, a publisher, a health probe, newcomers."""

    def __init__(self, server: ServerProcess, client: Client, room: str, project: str) -> None:
        self.server = server
        self.client = client
        self.room = room
        self.project = project
        self.published = self.delivered = self.newcomers = 0
        self.health: list[float] = []
        self.failures: list[str] = []

    async def run(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        source = iter(range(10, 250))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=("127.0.3.2", 0))) as http:
            while time.monotonic() < deadline:
                await self._publish_and_receive(http)
                await self._probe_health(http)
                if self.published % 10 == 1:  # the first round too: a short run lets one in
                    await self._newcomer(f"127.0.3.{next(source)}")
                await asyncio.sleep(0.5)

    async def _publish_and_receive(self, http: aiohttp.ClientSession) -> None:
        self.published += 1
        body = progress_event(self.project, self.published % 100)
        headers = {"Authorization": f"Bearer {SERVICE}"}
        async with http.post(f"{self.server.url}/api/v1/events", json=body, headers=headers) as response:
            if response.status != 202:
                self.failures.append(f"publish answered {response.status}")
                return
        try:
            await self.client.next("workflow.progress", timeout=5)
            self.delivered += 1
        except TimeoutError:
            self.failures.append(f"event {self.published} not delivered")

    async def _probe_health(self, http: aiohttp.ClientSession) -> None:
        started = time.perf_counter()
        try:
            async with http.get(
                f"{self.server.url}/health", timeout=aiohttp.ClientTimeout(total=5)
            ) as response:
                if response.status != 200:
                    self.failures.append(f"/health answered {response.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.failures.append(f"/health failed: {exc!r}")
        self.health.append(time.perf_counter() - started)

    async def _newcomer(self, source: str) -> None:
        newcomer = Client(source=source)
        try:
            await newcomer.connect(self.server.url, make_token())
            await newcomer.next("connection_established")
            self.newcomers += 1
        except Exception as exc:  # any failure of a newcomer is the finding
            self.failures.append(f"newcomer from {source} refused: {exc!r}")
        finally:
            await newcomer.close()


@pytest.mark.slow
@pytest.mark.timeout(2 * (SOAK_SECONDS + WARM_UP_SECONDS) + 120)
async def test_every_hostile_client_at_once(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server(SOAK_ENV)
    async with aiohttp.ClientSession() as http:
        for _ in range(REPLAYED_EVENTS // 50):  # a history for the replay hogs to ask for
            batch = [progress_event(None) for _ in range(50)]  # 50 x 10 KB: under MAX_PAYLOAD_BYTES
            for body in batch:
                body["data"]["logs"] = [EVENT_PADDING]
            async with http.post(
                f"{server.url}/api/v1/events/batch",
                json=batch,
                headers={"Authorization": f"Bearer {SERVICE}"},
            ) as response:
                assert response.status == 202, await response.text()
    project = str(uuid4())
    client = await Client(source="127.0.3.1").connect(server.url, make_token(projects=[project]))
    try:
        await client.next("connection_established")
        room = f"project:{project}"
        assert (await client.call("subscribe", {"room": room}))["status"] == "success"
        baseline_sockets = sockets(server)
        before_warm_up = rss_kib(server)

        await attack(server, WARM_UP_SECONDS)
        await settled(server, baseline_sockets, connections=1)
        start_rss = rss_kib(server)

        watch = Watch(server, client, room, project)
        await asyncio.gather(attack(server, SOAK_SECONDS), watch.run(SOAK_SECONDS))
        peak_rss = rss_kib(server)
        await settled(server, baseline_sockets, connections=1)
        end_rss = rss_kib(server)
    finally:
        await client.close()
    await settled(server, baseline_sockets, connections=0)

    figures: dict[str, Any] = {
        "seconds": SOAK_SECONDS,
        "attacks": sorted(ATTACKS),
        "rss_kib": {"before_warm_up": before_warm_up, "start": start_rss, "peak": peak_rss, "end": end_rss},
        "rss_growth": round(end_rss / start_rss - 1, 4),
        "published": watch.published,
        "delivered": watch.delivered,
        "newcomers_served": watch.newcomers,
        "health_probes": len(watch.health),
        "health_max_seconds": round(max(watch.health), 3),
        "failures": watch.failures,
        "loadavg": loadavg(),
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "soak.json").write_text(json.dumps(figures, indent=2))
    print("\nsoak:", json.dumps(figures))
    assert watch.failures == []
    assert watch.delivered == watch.published > 0
    assert watch.newcomers > 0
    assert end_rss <= start_rss * 1.10, figures

"""``python -m bench --cluster [--quick]``: the cluster path beside Node's Redis adapters (issue 24).

Each server runs as two instances on a private Redis of its own: instance A takes the
published events over HTTP, instance B holds the connections (one node process,
bench/node/driver.mjs, with a socket.io-client connection in each of 100 rooms), so every
event crosses Redis once and is delivered once. The servers, one after the other in one run:

- **gateway**: two ``swe-realtime serve`` with REDIS_URL, the limits of bench/servers.py,
  history on (the default);
- **node socket.io + @socket.io/redis-adapter**, sharded (SPUBLISH), subscription mode
  "dynamic", and **node socket.io + @socket.io/redis-streams-adapter** (its defaults, with
  connection state recovery), both with the ``redis`` client: bench/node/cluster_server.mjs.

For each server, after a warm-up that also waits for B's subscriptions:

1. **Rounds**: ``events`` events in HTTP batches of 100, round the rooms, as fast as answered
   (four requests in flight). CPU of A, B and the Redis server (user + system, /proc) over
   the publishing and until the last delivery, per event; the time the events took.
2. **Single events**: one event per request (the gateway's POST /api/v1/events, one object to
   Node's /publish), SINGLE_INFLIGHT requests in flight: what a single-event request costs.
3. **Curve**: paced publishing at shares of the server's own capacity (the rounds' events/s),
   up to past it: delivered events/s, latency from the event's timestamp (stamped by A) to
   its arrival at a client (p50, p99), and the CPU of each process per event.

A server that cannot keep up is measured over what it delivered within DRAIN_SECONDS after
the last publish and QUIET_SECONDS after the last delivery (a lost event is not waited
for). The load generator shares the two cores: its CPU is recorded, in no server's figure.
Results: bench/results/cluster.{md,json} and cluster.png; with --quick (fewer events, one
round, two load points: about a minute) into bench/results/quick/.
"""

from __future__ import annotations

import contextlib
import json
import signal
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from bench import cluster_report, curves, plots
from bench.driver import Driver
from bench.scale_out import gateway
from bench.scenarios import free_port
from bench.servers import Kind, Running, cpu_seconds
from tests.support import RedisProcess

RESULTS = Path(__file__).resolve().parent / "results"
ROOMS = 100  # one connection in each, all on instance B
BATCH = 100
SINGLE_INFLIGHT = 8
DRAIN_SECONDS = 120  # the bound on waiting for deliveries after the last publish
QUIET_SECONDS = 10  # and on waiting without one: an event lost is not waited for, nor its idle CPU counted
WARMUP_TRIES = 5


@dataclass(frozen=True)
class Plan:
    events: int  # of each round
    rounds: int
    warmup_events: int
    single_events: int
    fractions: tuple[float, ...]  # of the server's own capacity, for the curve
    seconds: float  # measured part of a paced point
    warmup_seconds: float  # published before it, not counted in its latency
    directory: Path


FULL = Plan(
    events=20000,
    rounds=2,
    warmup_events=1000,
    single_events=2000,
    fractions=(0.1, 0.25, 0.5, 0.75, 0.9, 1.1),
    seconds=5,
    warmup_seconds=1,
    directory=RESULTS,
)
QUICK = Plan(
    events=5000,
    rounds=1,
    warmup_events=200,
    single_events=1000,
    fractions=(0.25, 0.75),
    seconds=1.5,
    warmup_seconds=0.5,
    directory=RESULTS / "quick",
)


def node_instance(adapter: str, name: str, redis_url: str) -> Kind:
    return Kind(name, "/publish", "plain", script="cluster_server.mjs", arguments=(adapter, redis_url))


SERVERS: dict[str, Callable[[str], Kind]] = {
    "gateway": lambda url: gateway(url, "bench-cluster"),
    cluster_report.SHARDED: lambda url: node_instance("sharded", cluster_report.SHARDED, url),
    cluster_report.STREAMS: lambda url: node_instance("streams", cluster_report.STREAMS, url),
}
"""Each server's instances, given the URL of its private Redis."""


def loadavg() -> list[str]:
    return Path("/proc/loadavg").read_text().split()[:3]


def say(text: str) -> list[str]:
    """Prints progress with the load average, and returns the load average."""
    load = loadavg()
    print(f"{text} (load average {' '.join(load)})", file=sys.stderr, flush=True)
    return load


@dataclass(frozen=True)
class Cluster:
    """Two started instances, their Redis server, and the driver's connections on B."""

    publishing: Running
    receiving: Running
    redis_pid: int
    driver: Driver

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of each process, the load generator's too."""
        return {
            "publishing": self.publishing.cpu_seconds(),
            "receiving": self.receiving.cpu_seconds(),
            "redis": cpu_seconds(self.redis_pid),
            "generator": self.driver.cpu_seconds(),
        }


@contextlib.contextmanager
def started(instance: Callable[[str], Kind], tmp: Path) -> Iterator[Cluster]:
    """A private Redis, instances A and B on it, ROOMS connections on B; each process is
    stopped on the way out, whatever happened, the last started first."""
    with contextlib.ExitStack() as stack:
        redis = RedisProcess(tmp)
        stack.callback(redis.stop)
        redis.start()
        assert redis.process is not None
        kind = instance(redis.url)
        publishing = Running(kind, free_port())
        stack.callback(publishing.stop)
        receiving = Running(kind, free_port())
        stack.callback(receiving.stop)
        driver = Driver(receiving, "targeted", publisher=publishing)
        stack.callback(driver.close)
        driver.command(op="connect", total=ROOMS)
        yield Cluster(publishing, receiving, redis.process.pid, driver)


def measure(
    cluster: Cluster, what: str, rate: float | None, events: int, batch: int, warmup: int = 0, **options: Any
) -> dict[str, Any]:
    """One driver run on the cluster, with each process's CPU per event (A's and Redis's per
    event accepted, B's per event delivered) and the load average before it."""
    load = say(what)
    before = cluster.cpu()
    result = cluster.driver.command(
        op="publish",
        events=events,
        rate=rate,
        batch=batch,
        warmup=warmup,
        timeout=DRAIN_SECONDS,
        quiet=QUIET_SECONDS,
        **options,
    )
    spent = {process: seconds - before[process] for process, seconds in cluster.cpu().items()}
    accepted = max(1, events - result["failed"])
    result["publishing_us_per_event"] = spent["publishing"] * 1e6 / accepted
    result["receiving_us_per_event"] = spent["receiving"] * 1e6 / max(1, result["received"])
    result["redis_us_per_event"] = spent["redis"] * 1e6 / accepted
    result["generator_cpu_share"] = spent["generator"] / result["seconds"] if result["seconds"] else None
    result["short"] = curves.short(result, rate)
    return {"loadavg_before": load, **result}


def warm_up(cluster: Cluster, events: int) -> dict[str, Any]:
    """Publishes ``events`` round the rooms until one try delivers them all: B's
    subscriptions are in place (Node's sharded adapter subscribes a room's channel after the
    join is acknowledged) and the code paths are warm."""
    for tries in range(1, WARMUP_TRIES + 1):
        result = cluster.driver.command(
            op="publish", events=events, rate=None, batch=BATCH, warmup=0, timeout=10
        )
        if result["received"] == events:
            return {"tries": tries, "complete": True}
    print(f"  warm-up: {result['received']}/{events} delivered in the last try", file=sys.stderr, flush=True)
    return {"tries": WARMUP_TRIES, "complete": False}


def run_server(name: str, instance: Callable[[str], Kind], plan: Plan, tmp: Path) -> dict[str, Any]:
    """Rounds, single events and the curve of one server, on one set of processes."""
    with started(instance, tmp) as cluster:
        outcome: dict[str, Any] = {"warmup": warm_up(cluster, plan.warmup_events)}
        outcome["rounds"] = [
            measure(cluster, f"  {name}: round {number}", None, plan.events, BATCH)
            for number in range(1, plan.rounds + 1)
        ]
        outcome["single"] = {
            "inflight": SINGLE_INFLIGHT,
            **measure(
                cluster,
                f"  {name}: single events",
                None,
                plan.single_events,
                1,
                single=True,
                inflight=SINGLE_INFLIGHT,
            ),
        }
        capacity = statistics.mean(r["events_per_s"] or 0 for r in outcome["rounds"])
        outcome["capacity_events_per_s"] = capacity
        outcome["points"] = []
        for fraction in plan.fractions if capacity else ():
            rate = fraction * capacity
            events = max(BATCH, round(rate * (plan.seconds + plan.warmup_seconds)))
            what = f"  {name}: {fraction:.0%} of capacity, {rate:,.0f} events/s"
            point = measure(cluster, what, rate, events, BATCH, round(rate * plan.warmup_seconds))
            outcome["points"].append({"fraction": fraction, **point})
        return outcome


def stop_on_sigterm() -> None:
    """A SIGTERM ends the run through the finally blocks, which stop every process started."""

    def stop(signum: int, frame: object) -> NoReturn:
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


def main(quick: bool) -> int:
    stop_on_sigterm()
    plan = QUICK if quick else FULL
    plan.directory.mkdir(parents=True, exist_ok=True)
    path = plan.directory / "cluster.json"
    results: dict[str, Any] = {**curves.circumstances(plan), "servers": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for index, (name, instance) in enumerate(SERVERS.items()):
            load = say(name)
            folder = Path(tmp) / f"redis-{index}"  # each server's own Redis, started afresh
            folder.mkdir()
            results["servers"][name] = {"loadavg_before": load, **run_server(name, instance, plan, folder)}
            path.write_text(json.dumps(results, indent=2) + "\n")  # survives an interrupted run
    results["loadavg_after"] = loadavg()
    results["ratios"] = cluster_report.ratios(results)
    path.write_text(json.dumps(results, indent=2) + "\n")
    markdown = cluster_report.markdown(results)
    (plan.directory / "cluster.md").write_text(markdown)
    plots.cluster(results, plan.directory / "cluster.png")
    print(markdown)
    return 0

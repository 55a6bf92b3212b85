"""``python -m bench --curves [--quick] [--only PART]``: latency and memory curves, the gateway
beside Node socket.io (issue 16).

Latency (parts "fan-out" and "targeted"): for each server, one process and one set of
connections for the whole curve. First an unpaced run of the workload measures the server's
capacity (events/s delivered); then paced runs offer 10% to 90% of that capacity, each for
``seconds`` after a warm-up, and measure publish-to-receipt latency (p50, p99, p99.9) and the
server's CPU per delivery and per published event from /proc. Node runs first: the gateway
is also paced at shares of Node's capacity, which is what the issue's latency target compares.

Memory (part "rss"): connections opened in steps up to 10,000, each subscribed to its own
room; the server's RSS after each step and the rate of connect + subscribe.

The load generator (node, socket.io-client) shares the machine's two cores with the server:
every point records its CPU too, and whether it kept the offered rate.
Results: bench/results/curves.{json,md} and latency_fanout.png, latency_targeted.png,
rss.png; with --quick, small parameters into bench/results/quick/ (not committed).
"""

from __future__ import annotations

import datetime
import json
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import plots
from bench.driver import Driver
from bench.report import curves_markdown
from bench.scenarios import free_port
from bench.servers import GATEWAY, NODE, ROOT, Kind, Running

RESULTS = Path(__file__).resolve().parent / "results"
if TYPE_CHECKING:
    from _typeshed import DataclassInstance

SHORT_OF = 0.95
"""A point that sent or delivered less than this share of its offered rate is marked short."""


@dataclass(frozen=True)
class Curve:
    """One workload whose latency is measured against offered load."""

    name: str
    mode: str  # "fanout": every connection in one room; "targeted": a room per connection
    connections: int
    capacity_events: int  # events of the unpaced run that measures capacity
    batch: int  # events per publish request
    per: str  # what server CPU is reported per: "delivery" or "event"


@dataclass(frozen=True)
class Plan:
    curves: tuple[Curve, ...]
    fractions: tuple[float, ...]  # of each server's own capacity
    target_fractions: tuple[float, ...]  # of Node's capacity, the gateway only
    seconds: float  # measured part of a paced point
    warmup_seconds: float  # published before it, not counted
    rss_steps: tuple[int, ...]
    directory: Path


FULL = Plan(
    curves=(
        Curve("fan-out", "fanout", 1000, 400, 1, "delivery"),
        Curve("targeted", "targeted", 1000, 20000, 10, "event"),
    ),
    fractions=(0.1, 0.3, 0.5, 0.7, 0.9),
    target_fractions=(0.1, 0.3, 0.5),
    seconds=10,
    warmup_seconds=1,
    rss_steps=(0, 1000, 2000, 5000, 10000),
    directory=RESULTS,
)
QUICK = Plan(
    curves=(
        Curve("fan-out", "fanout", 100, 100, 1, "delivery"),
        Curve("targeted", "targeted", 100, 2000, 10, "event"),
    ),
    fractions=(0.3, 0.7),
    target_fractions=(0.3,),
    seconds=2,
    warmup_seconds=0.5,
    rss_steps=(0, 200, 500),
    directory=RESULTS / "quick",
)
SERVERS = (NODE, GATEWAY)  # Node first: the gateway's target points need its capacity


def measure(
    server: Running, driver: Driver, curve: Curve, rate: float | None, events: int, warmup: int
) -> dict[str, Any]:
    """One run of ``events`` at ``rate`` (None: unpaced), with the CPU the server and the
    load generator spent on it."""
    server_before, driver_before = server.cpu_seconds(), driver.cpu_seconds()
    timeout = 2 * events / rate + 10 if rate else 120
    result = driver.command(
        op="publish", events=events, rate=rate, batch=curve.batch, warmup=warmup, timeout=timeout
    )
    server_cpu = server.cpu_seconds() - server_before
    result["server_cpu_seconds"] = server_cpu
    result["server_cpu_us_per_delivery"] = server_cpu * 1e6 / max(1, result["received"])
    result["server_cpu_us_per_event"] = server_cpu * 1e6 / events
    result["generator_cpu_share"] = (
        (driver.cpu_seconds() - driver_before) / result["seconds"] if result["seconds"] else None
    )
    result["short"] = short(result, rate)
    return result


def short(result: dict[str, Any], rate: float | None) -> bool:
    """Whether a driver's run lost or failed events, or (paced at ``rate``) did not keep it."""
    kept = rate is None or min(result["publish_events_per_s"], result["events_per_s"] or 0) >= SHORT_OF * rate
    return result["received"] < result["expected"] or result["failed"] > 0 or not kept


def curve_of(kind: Kind, curve: Curve, plan: Plan, node_capacity: float | None) -> dict[str, Any]:
    """Capacity, then the paced points, of one server; with ``node_capacity``, also the
    points at the target shares of Node's capacity."""
    server = Running(kind, free_port())
    driver = Driver(server, curve.mode)
    try:
        connected = driver.command(op="connect", total=curve.connections)
        capacity = measure(server, driver, curve, None, curve.capacity_events, 0)
        rates = [("own", f, f * capacity["events_per_s"]) for f in plan.fractions]
        if node_capacity is not None:
            rates += [("node", f, f * node_capacity) for f in plan.target_fractions]
        points = []
        for basis, fraction, rate in rates:
            print(f"  {kind.name}: {fraction:.0%} of {basis} capacity, {rate:,.1f} events/s", flush=True)
            events = max(curve.batch, round(rate * (plan.seconds + plan.warmup_seconds)))
            warmup = round(rate * plan.warmup_seconds)
            points.append(
                {"basis": basis, "fraction": fraction, **measure(server, driver, curve, rate, events, warmup)}
            )
        return {"connect_seconds": connected["seconds"], "capacity": capacity, "points": points}
    finally:
        driver.close()
        server.stop()


def rss_of(kind: Kind, steps: tuple[int, ...]) -> dict[str, Any]:
    """The server's RSS after each step of connections (each subscribed to its own room), and
    what a step cost the server and the load generator."""
    server = Running(kind, free_port())
    driver = Driver(server, "targeted")
    try:
        rows: list[dict[str, Any]] = []
        for total in steps:
            server_before, driver_before = server.cpu_seconds(), driver.cpu_seconds()
            opened = driver.command(op="connect", total=total)
            server_cpu, driver_cpu = (
                server.cpu_seconds() - server_before,
                driver.cpu_seconds() - driver_before,
            )
            time.sleep(0.5)  # let the server finish with what the last connections sent
            rss = server.memory()["VmRSS"]
            step = opened["opened"]
            rows.append(
                {
                    "connections": total,
                    "rss_mb": rss / 2**20,
                    "kb_per_connection": (rss - rows[0]["rss_mb"] * 2**20) / 1024 / total if rows else None,
                    "step_seconds": opened["seconds"],
                    "step_connections_per_s": step / opened["seconds"] if step else None,
                    "server_cpu_us_per_connection": server_cpu * 1e6 / step if step else None,
                    "generator_cpu_share": driver_cpu / opened["seconds"] if step else None,
                }
            )
        seconds = sum(row["step_seconds"] for row in rows)
        return {
            "steps": rows,
            "connections_per_s": steps[-1] / seconds,
            "peak_rss_mb": server.memory()["VmHWM"] / 2**20,
        }
    finally:
        driver.close()
        server.stop()


def circumstances(plan: DataclassInstance) -> dict[str, Any]:
    """What a reader needs to place a run: when, which commit, how busy the machine was."""
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "node": node,
        "loadavg_before": Path("/proc/loadavg").read_text().split()[:3],
        "plan": {k: v for k, v in asdict(plan).items() if k != "directory"},
    }


def main(quick: bool, only: str | None) -> int:
    plan = QUICK if quick else FULL
    plan.directory.mkdir(parents=True, exist_ok=True)
    path = plan.directory / "curves.json"
    # A partial run replaces its own parts in the last results and keeps the others.
    results: dict[str, Any] = json.loads(path.read_text()) if only and path.exists() else {}
    parts = [c.name for c in plan.curves] + ["rss"]
    for part in [p for p in parts if not only or p.startswith(only)]:
        run: dict[str, Any] = {**circumstances(plan), "servers": {}}
        print(f"{part} (load average {' '.join(run['loadavg_before'])})", flush=True)
        if part == "rss":
            for kind in SERVERS:
                run["servers"][kind.name] = rss_of(kind, plan.rss_steps)
        else:
            curve = next(c for c in plan.curves if c.name == part)
            run["curve"] = asdict(curve)
            for kind in SERVERS:
                node = run["servers"].get(NODE.name)
                run["servers"][kind.name] = curve_of(
                    kind, curve, plan, node["capacity"]["events_per_s"] if node and kind is GATEWAY else None
                )
        run["loadavg_after"] = Path("/proc/loadavg").read_text().split()[:3]
        results[part] = run
        path.write_text(json.dumps(results, indent=2) + "\n")  # survives an interrupted run
    markdown = curves_markdown(results)
    (plan.directory / "curves.md").write_text(markdown)
    plots.draw(results, plan.directory)
    print(markdown)
    return 0

"""The curves as PNG images, the servers compared on each chart, the run they come from in the footer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Figures made directly, not through pyplot: no backend, display or global state.
from matplotlib.figure import Figure

from bench.cluster_report import PROCESSES, SHARDED, STREAMS

COLOURS = {"gateway": "tab:blue", "node socket.io": "tab:green", SHARDED: "tab:orange", STREAMS: "tab:red"}
PERCENTILES = (("p50_ms", "p50", "-", "o"), ("p99_ms", "p99", "--", "s"), ("p999_ms", "p99.9", ":", "^"))
FILES = {"fan-out": "latency_fanout.png", "targeted": "latency_targeted.png", "rss": "rss.png"}


def values(rows: list[dict[str, Any]], key: str) -> list[float]:
    return [float("nan") if row[key] is None else float(row[key]) for row in rows]


def footer(figure: Figure, run: dict[str, Any], note: str = "") -> None:
    """Which run the picture comes from."""
    figure.text(
        0.01,
        0.01,
        f"{run['date']}, {run['commit']}, node {run['node']}, load average before "
        f"{' '.join(run['loadavg_before'])}{note}",
        fontsize=7,
        color="grey",
    )


def latency(name: str, run: dict[str, Any], path: Path) -> None:
    """Latency percentiles (left) and server CPU (right) against offered events/s: a line
    through each server's shares of its own capacity, hollow markers for the gateway at
    shares of Node's, stars for CPU at capacity."""
    curve = run["curve"]
    cpu = f"server_cpu_us_per_{curve['per']}"
    figure = Figure(figsize=(13, 5.5))
    left, right = figure.subplots(1, 2, width_ratios=[2, 1])
    for server, result in run["servers"].items():
        colour = COLOURS[server]
        points = sorted(result["points"], key=lambda point: point["offered_events_per_s"])
        own = [point for point in points if point["basis"] == "own"]
        node = [point for point in points if point["basis"] == "node"]
        for key, label, style, marker in PERCENTILES:
            left.plot(
                values(own, "offered_events_per_s"),
                values(own, key),
                style,
                marker=marker,
                color=colour,
                label=f"{server} {label}",
            )
        if node:
            for key, _, _, marker in PERCENTILES:
                left.scatter(
                    values(node, "offered_events_per_s"),
                    values(node, key),
                    marker=marker,
                    s=60,
                    facecolors="none",
                    edgecolors=colour,
                    label=f"{server} at shares of Node's capacity" if key == "p50_ms" else None,
                )
        short = [point for point in points if point["short"]]
        left.scatter(
            values(short, "offered_events_per_s"), values(short, "p99_ms"), marker="x", s=90, c="red"
        )
        right.plot(
            values(own, "offered_events_per_s"), values(own, cpu), marker="o", color=colour, label=server
        )
        capacity = result["capacity"]
        right.scatter([capacity["events_per_s"]], [capacity[cpu]], marker="*", s=150, color=colour)
        for axes in (left, right):
            axes.axvline(capacity["events_per_s"], color=colour, linewidth=1, linestyle="-.", alpha=0.6)
    room = f"each to all {curve['connections']:,} connections" if curve["mode"] == "fanout" else "each to one"
    left.set(
        yscale="log",
        xlabel=f"offered load, events/s ({room}); dash-dot: capacity",
        ylabel="publish-to-receipt latency, ms",
        title=f"{name}: latency against offered load",
    )
    left.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=7)
    right.set(
        xlabel="offered load, events/s; star: at capacity (unpaced)",
        ylabel=f"server CPU per {curve['per']}, µs",
        title=f"server CPU per {curve['per']}",
        ylim=(0, None),
    )
    right.grid(True, alpha=0.3)
    right.legend(fontsize=8)
    footer(figure, run, "; red x: a point short of its offered rate")
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    figure.savefig(path, dpi=110)


def rss(run: dict[str, Any], path: Path) -> None:
    figure = Figure(figsize=(12, 5))
    left, right = figure.subplots(1, 2)
    for server, result in run["servers"].items():
        steps = result["steps"]
        connections = values(steps, "connections")
        left.plot(connections, values(steps, "rss_mb"), marker="o", color=COLOURS[server], label=server)
        right.plot(
            connections,
            values(steps, "step_connections_per_s"),
            marker="o",
            color=COLOURS[server],
            label=server,
        )
    left.set(xlabel="open connections", ylabel="server RSS, MB", title="server memory", ylim=(0, None))
    right.set(
        xlabel="open connections (end of step)",
        ylabel="connect + subscribe, connections/s",
        title="connect + subscribe rate in each step",
        ylim=(0, None),
    )
    for axes in (left, right):
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=8)
    footer(figure, run)
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    figure.savefig(path, dpi=110)


def draw(results: dict[str, Any], directory: Path) -> None:
    """One image per part of ``results``, into ``directory``."""
    for name, run in results.items():
        if name == "rss":
            rss(run, directory / FILES[name])
        else:
            latency(name, run, directory / FILES[name])


def cluster(results: dict[str, Any], path: Path) -> None:
    """The cluster path against offered load, one colour per server: latency from the event's
    timestamp (left), delivered events/s (middle), CPU per event of each process (right)."""
    figure = Figure(figsize=(17, 5.5))
    latency_axes, throughput_axes, cpu_axes = figure.subplots(1, 3)
    rates: list[float] = []
    for server, result in results["servers"].items():
        colour = COLOURS[server]
        points = sorted(result["points"], key=lambda point: point["offered_events_per_s"])
        offered = values(points, "offered_events_per_s")
        rates += offered
        latency_axes.plot(
            offered, values(points, "stamp_p50_ms"), "-", marker="o", color=colour, label=f"{server} p50"
        )
        latency_axes.plot(
            offered, values(points, "stamp_p99_ms"), "--", marker="s", color=colour, label=f"{server} p99"
        )
        short = [point for point in points if point["short"]]
        latency_axes.scatter(
            values(short, "offered_events_per_s"), values(short, "stamp_p99_ms"), marker="x", s=90, c="red"
        )
        throughput_axes.plot(offered, values(points, "events_per_s"), marker="o", color=colour, label=server)
        for (_, key), style in zip(PROCESSES, ("-", "--", ":"), strict=True):
            cpu_axes.plot(offered, values(points, key), style, marker="o", color=colour)
    span = [min(rates, default=1), max(rates, default=1)]
    throughput_axes.plot(span, span, color="grey", linewidth=1, linestyle=":", label="= offered")
    latency_axes.set_yscale("symlog", linthresh=1)  # a latency can read 0 ms (clocks read to the ms)
    latency_axes.set(
        xscale="log",
        ylim=(0, None),
        xlabel="offered load, events/s (each to one of 100 rooms)",
        ylabel="event timestamp to client arrival, ms",
        title="latency against offered load",
    )
    throughput_axes.set(
        xscale="log",
        yscale="log",
        xlabel="offered load, events/s",
        ylabel="delivered events/s",
        title="throughput",
    )
    cpu_axes.set(xscale="log", yscale="log", xlabel="offered load, events/s", ylabel="CPU per event, µs")
    cpu_axes.set_title("CPU per event: instance A solid, B dashed, Redis dotted")
    for axes in (latency_axes, throughput_axes, cpu_axes):
        axes.grid(True, which="both", alpha=0.3)
    latency_axes.legend(fontsize=7)
    throughput_axes.legend(fontsize=7)
    footer(figure, results, "; red x: a point short of its offered rate")
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    figure.savefig(path, dpi=110)

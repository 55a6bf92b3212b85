"""The cluster benchmark's results as markdown, and its ratios against issue 24's targets: per
event, the gateway beside the better of Node's two Redis adapters (the Streams adapter's for
Redis: it keeps history, as the gateway does), from the same run."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from bench.report import delivered, figures, number
from bench.servers import TICKS

SHARDED = "node + redis-adapter (sharded)"
STREAMS = "node + redis-streams-adapter"
BETTER = "the better Node adapter"
PROCESSES = (
    ("publishing instance A", "publishing_us_per_event"),
    ("receiving instance B (one delivery)", "receiving_us_per_event"),
    ("Redis", "redis_us_per_event"),
)


@dataclass(frozen=True)
class Target:
    figure: str
    key: str
    most: float | None  # gateway / reference at most this; None: shown, no target
    against: str  # BETTER (the lower of the two adapters, per figure) or a server's name
    lower_is_better: bool = True


TARGETS = (
    Target("receiving instance B, CPU per event", "receiving_us_per_event", 0.5, BETTER),
    Target("publishing instance A, CPU per event", "publishing_us_per_event", 1.0, BETTER),
    Target("Redis, CPU per event", "redis_us_per_event", 1.5, STREAMS),
    Target("events/s", "events_per_s", None, BETTER, lower_is_better=False),
)


def mean(server: dict[str, Any], key: str) -> float | None:
    """The mean of ``key`` over the server's rounds (None where a round has none)."""
    values = [round_[key] for round_ in server["rounds"]]
    return None if None in values else statistics.mean(values)


def ratios(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target's figures, ratio and verdict, from the means of the rounds."""
    servers = results["servers"]
    rows = []
    for target in TARGETS:
        candidates = (SHARDED, STREAMS) if target.against == BETTER else (target.against,)
        measured = {name: mean(servers[name], target.key) for name in candidates}
        known = {name: value for name, value in measured.items() if value}
        pick = min if target.lower_is_better else max
        against = pick(known, key=lambda name: known[name]) if known else candidates[0]
        ours, theirs = mean(servers["gateway"], target.key), known.get(against)
        ratio = ours / theirs if ours is not None and theirs else None
        rows.append(
            {
                "figure": target.figure,
                "gateway": ours,
                "against": against,
                "reference": theirs,
                "ratio": ratio,
                "target": target.most,
                "met": None if target.most is None or ratio is None else ratio <= target.most,
            }
        )
    return rows


def spread(server: dict[str, Any], key: str, spec: str) -> str:
    """A figure over the rounds: one value, or the lowest and highest."""
    values = [round_[key] for round_ in server["rounds"]]
    if None in values:
        return "-"
    low, high = format(min(values), spec), format(max(values), spec)
    return low if low == high else f"{low}-{high}"


def rounds_section(results: dict[str, Any]) -> list[str]:
    servers = results["servers"]
    names = list(servers)
    events = results["plan"]["events"]
    rows: list[tuple[str, str, str]] = [
        *((f"{label}, µs", key, ",.1f") for label, key in PROCESSES),
        (f"{events:,} events took, s", "seconds", ",.1f"),
        ("events/s (to the last delivery)", "events_per_s", ",.0f"),
        ("p50 ms from the event's timestamp", "stamp_p50_ms", ",.0f"),
        ("p99 ms from the event's timestamp", "stamp_p99_ms", ",.0f"),
        ("load generator CPU (in no figure above), share of a core", "generator_cpu_share", ".0%"),
    ]
    lines = [
        f"### Per event: {events:,} events in batches of 100, {len(servers[names[0]]['rounds'])} round(s)",
        "",
        "| per event | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for label, key, spec in rows:
        lines.append(f"| {label} | " + " | ".join(spread(servers[name], key, spec) for name in names) + " |")
    lines.append(
        "| delivered | "
        + " | ".join("; ".join(delivered(r) for r in servers[name]["rounds"]) for name in names)
        + " |"
    )
    lines.append(
        "| load average before each round | "
        + " | ".join(
            "; ".join(" ".join(r["loadavg_before"]) for r in servers[name]["rounds"]) for name in names
        )
        + " |"
    )
    for name in names:
        warmup = servers[name]["warmup"]
        if not warmup["complete"]:
            lines.append(f"\n{name}: the warm-up never delivered every event ({warmup['tries']} tries).")
    return [*lines, ""]


def targets_section(results: dict[str, Any]) -> list[str]:
    lines = [
        "### Against issue 24's targets (gateway / reference, means of the rounds)",
        "",
        "| figure | gateway | reference | its figure | gateway / reference | target | |",
        "|---|---:|---|---:|---:|---:|---|",
    ]
    for row in results["ratios"]:
        verdict = {True: "met", False: "**not met**", None: ""}[row["met"]]
        target = "-" if row["target"] is None else f"<= {row['target']}"
        lines.append(
            f"| {row['figure']} | {number(row['gateway'], ',.1f')} | {row['against']} | "
            f"{number(row['reference'], ',.1f')} | **{number(row['ratio'], '.2f')}** | {target} | {verdict} |"
        )
    return [*lines, ""]


def single_section(results: dict[str, Any]) -> list[str]:
    servers = results["servers"]
    first = next(iter(servers.values()))["single"]
    lines = [
        f"### Single-event requests: {first['events']:,} events, one per request, "
        f"{first['inflight']} requests in flight",
        "",
        "The gateway's POST /api/v1/events; Node's /publish with one event.",
        "",
        "| server | events/s | A µs/event | A µs/event in batches of 100 | B µs/event | Redis µs/event "
        "| p50 / p99 ms | delivered | load average before |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for name, server in servers.items():
        single = server["single"]
        lines.append(
            f"| {name} | {number(single['events_per_s'], ',.0f')} | "
            f"{number(single['publishing_us_per_event'], ',.1f')} | "
            f"{number(mean(server, 'publishing_us_per_event'), ',.1f')} | "
            f"{number(single['receiving_us_per_event'], ',.1f')} | "
            f"{number(single['redis_us_per_event'], ',.1f')} | "
            f"{number(single['stamp_p50_ms'], ',.0f')} / {number(single['stamp_p99_ms'], ',.0f')} | "
            f"{delivered(single)} | {' '.join(single['loadavg_before'])} |"
        )
    return [*lines, ""]


def curve_section(results: dict[str, Any]) -> list[str]:
    lines = [
        "### Against offered load: paced at shares of each server's own capacity (the rounds' events/s)",
        "",
        "Latency from the event's timestamp (stamped by instance A) to its arrival at a client, "
        "and from the moment the schedule said its request was due (so a publisher that falls "
        "behind shows); CPU per event.",
        "",
        "| server | load | offered events/s | sent events/s | delivered events/s | p50 ms | p99 ms "
        "| p99 ms from schedule | A µs | B µs | Redis µs | generator CPU | delivered |",
        "|---|---|" + "---:|" * 10 + "---|",
    ]
    columns = (
        *((key, ",.0f") for key in ("offered_events_per_s", "publish_events_per_s", "events_per_s")),
        *((key, ",.0f") for key in ("stamp_p50_ms", "stamp_p99_ms", "p99_ms")),
        *((key, ",.1f") for _, key in PROCESSES),
        ("generator_cpu_share", ".0%"),
    )
    for name, server in results["servers"].items():
        for point in server["points"]:
            cells = [*figures(point, columns), delivered(point)]
            lines.append(f"| {name} | {point['fraction']:.0%} | " + " | ".join(cells) + " |")
    return [*lines, "", "![latency, throughput and CPU against offered load](cluster.png)", ""]


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "## The cluster path beside Node's Redis adapters (`just bench --cluster`)",
        "",
        f"Run {results['date']} at {results['commit']} (node {results['node']}); load average "
        f"{' '.join(results['loadavg_before'])} before, {' '.join(results['loadavg_after'])} after. "
        "Each server: two instances on a private Redis, one socket.io-client connection in each of "
        "100 rooms on instance B, events published on instance A round the rooms; CPU (user + "
        "system, /proc) over the publishing and until the last delivery. /proc counts CPU in ticks "
        f"of {1000 / TICKS:.0f} ms: a round's figure per event is good to "
        f"{1e6 / TICKS / results['plan']['events']:.1f} µs.",
        "",
        *rounds_section(results),
        *targets_section(results),
        *single_section(results),
        *curve_section(results),
    ]
    return "\n".join(lines)

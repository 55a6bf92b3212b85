"""``python -m bench [--full]``: the gateway beside python-socketio and Node socket.io.
``python -m bench --curves [--quick]``: latency and memory curves instead (bench/curves.py).
``python -m bench --cluster [--quick]``: the cluster path, the gateway beside Node's Redis
adapters (bench/cluster.py).

Each server runs alone in its own process; a node process (socket.io-client) holds the
connections and publishes over HTTP. Every figure is reported with its ratio to the two
baselines measured in the same run on the same machine. Results: bench/results/latest.md
and latest.json, and stdout.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path
from typing import Any

from bench import cluster, curves
from bench.scenarios import FULL, SHORT, run, validation_cost
from bench.servers import ALL, GATEWAY_NO_HISTORY

RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = [
    ("deliveries/s", "deliveries_per_s", "{:,.0f}"),
    ("p50 ms", "p50_ms", "{:.0f}"),
    ("p99 ms", "p99_ms", "{:.0f}"),
    ("max ms", "max_ms", "{:.0f}"),
    ("connect s", "connect_seconds", "{:.1f}"),
    ("server CPU s", "server_cpu_seconds", "{:.1f}"),
    ("peak RSS MB", "server_peak_rss_mb", "{:.0f}"),
    ("RSS/conn KB", "rss_per_connection_kb", "{:.1f}"),
]


def table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    lines = []
    for scenario, by_server in results.items():
        lines += [
            f"### {scenario}",
            "",
            "| server | " + " | ".join(c[0] for c in COLUMNS) + " | received |",
            "|---|" + "---:|" * (len(COLUMNS) + 1),
        ]
        for server, figures in by_server.items():
            cells = [
                fmt.format(figures[key]) if figures.get(key) is not None else "-" for _, key, fmt in COLUMNS
            ]
            lines.append(
                f"| {server} | " + " | ".join(cells) + f" | {figures['received']}/{figures['expected']} |"
            )
        gateway = by_server["gateway"]
        for baseline in ("python-socketio", "node socket.io", "gateway, history off"):
            if baseline not in by_server:
                continue
            other = by_server[baseline]
            if other.get("deliveries_per_s") and gateway.get("deliveries_per_s"):
                ratio = gateway["deliveries_per_s"] / other["deliveries_per_s"]
                lines.append(f"\ngateway / {baseline} deliveries per second: **{ratio:.2f}**")
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--full", action="store_true", help="1,000 connections, 10,000 for capacity (minutes)"
    )
    parser.add_argument(
        "--only",
        help="run only the scenarios (with --curves: the parts fan-out, targeted, rss) whose name "
        "starts with this text",
    )
    parser.add_argument(
        "--curves", action="store_true", help="latency against offered load, RSS against connections"
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="two instances on Redis, the gateway beside Node's Redis adapters: CPU per event, curves",
    )
    parser.add_argument(
        "--quick", action="store_true", help="with --curves or --cluster: small and short (a minute)"
    )
    args = parser.parse_args()
    if args.quick and not (args.curves or args.cluster):
        parser.error("--quick goes with --curves or --cluster")
    if args.cluster and (args.curves or args.full or args.only):
        parser.error("--cluster goes alone, or with --quick")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 10,000 sockets need as many descriptors
    if args.curves:
        return curves.main(quick=args.quick, only=args.only)
    if args.cluster:
        return cluster.main(quick=args.quick)

    suffix = "full" if args.full else "latest"
    RESULTS.mkdir(exist_ok=True)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    if args.only and (RESULTS / f"{suffix}.json").exists():
        # A partial run replaces its own scenarios in the last results and keeps the rest.
        results = json.loads((RESULTS / f"{suffix}.json").read_text())["scenarios"]
    for workload in [
        w for w in (FULL if args.full else SHORT) if not args.only or w.name.startswith(args.only)
    ]:
        title = f"{workload.name}: {workload.connections:,} connections, {workload.events:,} events"
        title += f" at {workload.rate}/s" if workload.rate else ""
        results[title] = {}
        # The unpaced fan-out also runs without history, to show what history costs.
        kinds = (*ALL, GATEWAY_NO_HISTORY) if workload.mode == "fanout" and workload.rate is None else ALL
        for kind in kinds:
            print(f"{title} -> {kind.name}", file=sys.stderr, flush=True)
            results[title][kind.name] = run(kind, workload)
        (RESULTS / "partial.md").write_text(table(results))  # survives an interrupted long run
    cost = validation_cost()
    markdown = table(results) + (
        "### validation cost (in process, null emitter)\n\n"
        f"parse + validate + route + serialise: {cost['validated_events_per_s']:,.0f} events/s; "
        f"emitting a prebuilt dict: {cost['raw_events_per_s']:,.0f} events/s; "
        f"validation costs {cost['validation_us_per_event']:.1f} µs per event "
        "(once per event, not per recipient).\n"
    )
    (RESULTS / f"{suffix}.md").write_text(markdown)
    (RESULTS / f"{suffix}.json").write_text(
        json.dumps({"scenarios": results, "validation": cost}, indent=2) + "\n"
    )
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())

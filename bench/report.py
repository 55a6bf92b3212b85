"""The curves' results as markdown: every figure beside its Node counterpart from the same run,
with the ratio gateway / node."""

from __future__ import annotations

from typing import Any

from bench.servers import GATEWAY, NODE


def number(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def figures(row: dict[str, Any], columns: tuple[tuple[str, str], ...]) -> list[str]:
    """The cells of ``row`` for ``columns`` (key, format), "-" where a figure is missing."""
    return [number(row[key], spec) for key, spec in columns]


def delivered(result: dict[str, Any]) -> str:
    """Deliveries of a driver's run against those expected, failed events (results older than
    the count have none), and whether it fell short."""
    failed = f", {result['failed']:,} failed" if result.get("failed") else ""
    return f"{result['received']:,}/{result['expected']:,}{failed}" + (
        " **short**" if result["short"] else ""
    )


def ratio(gateway: float | None, node: float | None) -> str:
    return f"**{gateway / node:.2f}**" if gateway is not None and node else "-"


def load(point: dict[str, Any]) -> str:
    return f"{point['fraction']:.0%} of {'own' if point['basis'] == 'own' else 'Node'}"


def circumstances(run: dict[str, Any]) -> str:
    return (
        f"Run {run['date']} at {run['commit']} (node {run['node']}); load average "
        f"{' '.join(run['loadavg_before'])} before, {' '.join(run['loadavg_after'])} after."
    )


def curve_section(name: str, run: dict[str, Any]) -> list[str]:
    curve, servers = run["curve"], run["servers"]
    per = curve["per"]
    cpu_key = f"server_cpu_us_per_{per}"
    gateway, node = servers[GATEWAY.name], servers[NODE.name]
    room = "in one room" if curve["mode"] == "fanout" else "each in its own room"
    lines = [
        f"### {name}: {curve['connections']:,} connections {room}, {curve['batch']} event(s) per request",
        "",
        circumstances(run),
        "",
        f"Capacity (unpaced, {curve['capacity_events']:,} events): gateway "
        f"{gateway['capacity']['events_per_s']:,.1f} events/s, node {node['capacity']['events_per_s']:,.1f}; "
        f"gateway / node {ratio(gateway['capacity']['events_per_s'], node['capacity']['events_per_s'])}. "
        f"Server CPU per {per} at capacity: gateway {gateway['capacity'][cpu_key]:.1f} µs, node "
        f"{node['capacity'][cpu_key]:.1f} µs; gateway / node "
        f"{ratio(gateway['capacity'][cpu_key], node['capacity'][cpu_key])}.",
        "",
        f"| server | load | offered events/s | sent events/s | delivered events/s | p50 ms | p99 ms "
        f"| p99.9 ms | server CPU µs per {per} | generator CPU | received |",
        "|---|---|" + "---:|" * 9,
    ]
    columns = (
        *((key, ",.1f") for key in ("offered_events_per_s", "publish_events_per_s", "events_per_s")),
        *((key, ",.1f") for key in ("p50_ms", "p99_ms", "p999_ms")),
        (cpu_key, ".1f"),
        ("generator_cpu_share", ".0%"),
    )
    for server, result in servers.items():
        for point in [{"basis": "capacity", **result["capacity"]}, *result["points"]]:
            label = "capacity" if point["basis"] == "capacity" else load(point)
            cells = [*figures(point, columns), delivered(point)]
            lines.append(f"| {server} | {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "gateway / node at the same share of each one's own capacity:",
        "",
        f"| load | p50 | p99 | p99.9 | server CPU per {per} |",
        "|---|---:|---:|---:|---:|",
    ]
    node_points = {p["fraction"]: p for p in node["points"]}
    for point in [p for p in gateway["points"] if p["basis"] == "own" and p["fraction"] in node_points]:
        other = node_points[point["fraction"]]
        cells = [ratio(point[key], other[key]) for key in ("p50_ms", "p99_ms", "p999_ms", cpu_key)]
        lines.append(f"| {point['fraction']:.0%} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Issue 16's latency target (gateway p99 <= Node's at every load up to 50% of Node's capacity), "
        "both at the same offered rate:",
        "",
        "| share of Node's capacity | events/s | gateway p99 ms | node p99 ms | gateway / node |",
        "|---|---:|---:|---:|---:|",
    ]
    for point in [p for p in gateway["points"] if p["basis"] == "node"]:
        other = node_points.get(point["fraction"], {})
        lines.append(
            f"| {point['fraction']:.0%} | {point['offered_events_per_s']:,.1f} | "
            f"{number(point['p99_ms'], ',.1f')} | {number(other.get('p99_ms'), ',.1f')} | "
            f"{ratio(point['p99_ms'], other.get('p99_ms'))} |"
        )
    return [*lines, ""]


def side_by_side(
    gateway: list[dict[str, Any]], node: list[dict[str, Any]], columns: tuple[tuple[str, str, str], ...]
) -> list[str]:
    """A table of steps: for each column (title, key, format), gateway, node and their ratio."""
    lines = [
        "| connections | "
        + " | ".join(f"gateway {t} | node {t} | gateway / node" for t, _, _ in columns)
        + " |",
        "|" + "---:|" * (1 + 3 * len(columns)),
    ]
    for ours, theirs in zip(gateway, node, strict=True):
        cells = [f"{ours['connections']:,}"]
        for _, key, spec in columns:
            cells += [number(ours[key], spec), number(theirs[key], spec), ratio(ours[key], theirs[key])]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def rss_section(run: dict[str, Any]) -> list[str]:
    gateway, node = run["servers"][GATEWAY.name], run["servers"][NODE.name]
    total = gateway["steps"][-1]["connections"]
    return [
        "### connections and RSS: each connection subscribed to its own room",
        "",
        circumstances(run),
        "",
        *side_by_side(
            gateway["steps"],
            node["steps"],
            (("RSS MB", "rss_mb", ".1f"), ("KB per connection", "kb_per_connection", ".1f")),
        ),
        "",
        "Connect + subscribe in each step (generator: the load generator's CPU, share of one core):",
        "",
        *side_by_side(
            [row for row in gateway["steps"] if row["connections"]],
            [row for row in node["steps"] if row["connections"]],
            (
                ("connections/s", "step_connections_per_s", ",.0f"),
                ("server CPU µs per connection", "server_cpu_us_per_connection", ",.0f"),
                ("generator CPU", "generator_cpu_share", ".0%"),
            ),
        ),
        "",
        f"Connect + subscribe, all {total:,}: gateway {gateway['connections_per_s']:,.0f}/s, node "
        f"{node['connections_per_s']:,.0f}/s; gateway / node "
        f"{ratio(gateway['connections_per_s'], node['connections_per_s'])}. Peak RSS: gateway "
        f"{gateway['peak_rss_mb']:.0f} MB, node {node['peak_rss_mb']:.0f} MB.",
        "",
    ]


def curves_markdown(results: dict[str, Any]) -> str:
    lines = ["## Curves (`just bench --curves`)", ""]
    for name, run in results.items():
        lines += rss_section(run) if name == "rss" else curve_section(name, run)
    return "\n".join(lines)

"""``python -m bench [--full]``: the gateway beside the bare baseline, same machine, same run.

Each server runs in its own process and the load generator in another, so the figures are
those of one server core. Results go to bench/results/latest.{md,json} and to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any
from uuid import uuid4

import jwt

RESULTS = Path(__file__).resolve().parent / "results"
SECRET = "bench-secret-bench-secret-bench-secret!"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(command: list[str], port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        command, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{port}/socket.io/?EIO=4&transport=polling", timeout=1
            ):
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{command[0]} did not start")


def measure(
    command: list[str], port: int, env: dict[str, str], clients: int, seconds: float
) -> dict[str, Any]:
    server = start(command, port, env)
    token = jwt.encode({"sub": str(uuid4()), "exp": int(time.time()) + 3600}, SECRET, algorithm="HS256")
    try:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.load",
                f"http://127.0.0.1:{port}",
                token,
                str(clients),
                str(seconds),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
        result: dict[str, Any] = json.loads(out.stdout)
        return result
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=15)


def report(rows: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> str:
    lines = [
        "| scenario | metric | gateway | baseline | gateway/baseline |",
        "|---|---|---:|---:|---:|",
    ]
    for name, gateway, baseline in rows:
        for label, path in [
            ("connects/s", ("connects_per_s",)),
            ("connect p50 ms", ("connect", "p50_ms")),
            ("connect p99 ms", ("connect", "p99_ms")),
            ("ping acks/s", ("acks_per_s",)),
            ("ping RTT p50 ms", ("ping_rtt", "p50_ms")),
            ("ping RTT p99 ms", ("ping_rtt", "p99_ms")),
            ("ping RTT max ms", ("ping_rtt", "max_ms")),
        ]:
            g, b = _dig(gateway, path), _dig(baseline, path)
            lines.append(f"| {name} | {label} | {g:.1f} | {b:.1f} | {g / b:.2f} |")
    return "\n".join(lines) + "\n"


def _dig(data: dict[str, Any], path: tuple[str, ...]) -> float:
    value: Any = data
    for key in path:
        value = value[key]
    return float(value)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--full", action="store_true", help="more clients, longer runs")
    args = parser.parse_args()
    scenarios = [(100, 5.0), (1000, 10.0)] if args.full else [(50, 3.0), (200, 3.0)]
    cli = str(Path(sys.executable).with_name("swe-realtime"))
    rows = []
    for clients, seconds in scenarios:
        port = free_port()
        limits = {"CONNECTS_PER_IP_PER_MINUTE": "1000000", "MAX_CONNECTIONS_PER_USER": "100000"}
        gateway = measure(
            [cli, "serve", "--port", str(port)], port, {"JWT_SECRET": SECRET, **limits}, clients, seconds
        )
        port = free_port()
        baseline = measure([sys.executable, "-m", "bench.baseline", str(port)], port, {}, clients, seconds)
        rows.append((f"{clients} clients, {seconds:.0f}s", gateway, baseline))
    markdown = report(rows)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.md").write_text(markdown)
    (RESULTS / "latest.json").write_text(
        json.dumps([{"scenario": n, "gateway": g, "baseline": b} for n, g, b in rows], indent=2) + "\n"
    )
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())

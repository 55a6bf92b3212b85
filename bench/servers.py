"""The three servers a benchmark runs, each in its own process, and what they cost it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import jwt

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = Path(__file__).resolve().parent / "node"
SECRET = "bench-secret-bench-secret-bench-secret!"
TICKS = os.sysconf("SC_CLK_TCK")


def token(*roles: str) -> str:
    claims = {
        "sub": "00000000-0000-4000-8000-000000000001",
        "exp": int(time.time()) + 3600,
        "roles": list(roles),
    }
    return jwt.encode(claims, SECRET, algorithm="HS256")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds process ``pid`` has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


@dataclass(frozen=True)
class Kind:
    """How to start one kind of server and where it takes published events."""

    name: str
    publish_path: str
    load_kind: str  # "gateway" (catalogue events) or "plain" ({room, event, data})
    env: tuple[tuple[str, str], ...] = ()
    script: str = "reference_server.mjs"  # a node server's, in bench/node
    arguments: tuple[str, ...] = ()  # the node script's, after the port

    @property
    def publish_one_path(self) -> str:
        """Where one event is published as a bare object: the gateway's single-event POST."""
        return "/api/v1/events" if self.load_kind == "gateway" else "/publish"

    def command(self, port: int) -> list[str]:
        if self.load_kind == "gateway":
            return [str(Path(sys.executable).with_name("swe-realtime")), "serve", "--port", str(port)]
        if self.name == "python-socketio":
            return [sys.executable, "-m", "bench.baseline", str(port)]
        return ["node", str(NODE_DIR / self.script), str(port), *self.arguments]


GATEWAY_ENV = {
    "JWT_SECRET": SECRET,
    "MAX_CONNECTIONS": "100000",
    "MAX_CONNECTIONS_PER_USER": "100000",
    "CONNECTS_PER_IP_PER_MINUTE": "1000000",
    "COMMANDS_PER_SECOND": "1000000",
    "MAX_QUEUED_PACKETS": "1000000",
    "MAX_PAYLOAD_BYTES": "10000000",
}

GATEWAY = Kind("gateway", "/api/v1/events/batch", "gateway", tuple(GATEWAY_ENV.items()))
GATEWAY_NO_HISTORY = Kind(
    "gateway, history off", "/api/v1/events/batch", "gateway", (*GATEWAY.env, ("HISTORY_SIZE", "0"))
)
"""The gateway without missed-event history: what positions and history cost a fan-out."""
PYTHON = Kind("python-socketio", "/publish", "plain")
NODE = Kind("node socket.io", "/publish", "plain")
ALL = (GATEWAY, PYTHON, NODE)


class Running:
    """A started server: its process, and CPU seconds and memory read from /proc."""

    def __init__(self, kind: Kind, port: int) -> None:
        self.kind = kind
        self.url = f"http://127.0.0.1:{port}"
        env = {**os.environ, **dict(kind.env)}
        self.process = subprocess.Popen(
            kind.command(port), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/socket.io/?EIO=4&transport=polling", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"{kind.name} did not start") from None
                time.sleep(0.1)
        self.rss_at_start = self.memory()["VmRSS"]

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid)

    def memory(self) -> dict[str, int]:
        """VmRSS and VmHWM (peak RSS) in bytes."""
        values = {}
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) * 1024
        return values

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

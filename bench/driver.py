"""The node load generators' side in Python: their configuration, and the curves' driver.

``node/load.mjs`` runs one workload and exits; ``node/driver.mjs`` keeps its connections and
takes one command at a time, so that the server's (and the driver's own) /proc can be read
between measurements.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from typing import Any

from bench.servers import NODE_DIR, Running, cpu_seconds, token


def client_config(server: Running, mode: str, publisher: Running | None = None) -> dict[str, Any]:
    """Where and how the node clients connect and publish; ``mode`` is "fanout" (one room)
    or "targeted" (a room per connection). Events are published on ``server`` too unless
    ``publisher`` (another instance of a cluster) is given."""
    publisher = publisher or server
    return {
        "url": server.url,
        "token": token("admin"),
        "publishToken": token("service"),
        "publishUrl": publisher.url + publisher.kind.publish_path,
        "publishOneUrl": publisher.url + publisher.kind.publish_one_path,
        "kind": publisher.kind.load_kind,
        "mode": mode,
        "seed": uuid.uuid4().int % 10**12,
    }


class Driver:
    """A running ``node/driver.mjs``: one JSON command in, one JSON answer out."""

    def __init__(self, server: Running, mode: str, publisher: Running | None = None) -> None:
        self.process = subprocess.Popen(
            ["node", str(NODE_DIR / "driver.mjs"), json.dumps(client_config(server, mode, publisher))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdin is not None  # both are pipes
        assert self.process.stdout is not None
        self.stdin, self.stdout = self.process.stdin, self.process.stdout

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid)

    def command(self, **command: Any) -> dict[str, Any]:
        self.stdin.write(json.dumps(command) + "\n")
        self.stdin.flush()
        answer = self.stdout.readline()
        if not answer:
            raise RuntimeError(f"the load driver exited ({self.process.wait()}) on {command}")
        result: dict[str, Any] = json.loads(answer)
        return result

    def close(self) -> None:
        """Ends the driver (closing stdin makes it disconnect and exit)."""
        self.stdin.close()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

"""python-socketio's AsyncClient: starting and stopping its reconnection loop from outside it.

Read against python-socketio 5.16.1 to 5.18.1 (the UPSTREAM table below). The typed client
(server/client.py) needs two things the library does only from inside: to reconnect after a
session the server closed (a draining gateway closes Engine.IO sessions so that clients
reconnect elsewhere; python-socketio treats that as final), and to stop reconnecting when the
gateway refuses the token (its own ``shutdown`` awaits the loop, which the refusal's handler
runs inside). ``_handle_reconnect`` is the loop, ``_reconnect_task`` holds it while it runs
and ``_reconnect_abort`` ends its wait between attempts.
"""

from __future__ import annotations

from typing import Any

from swe_realtime.protocol import Upstream

UPSTREAM = (
    Upstream(
        "python-socketio",
        "socketio.async_client:AsyncClient._handle_reconnect",
        {"5.16.1": "ee1adfd59d92364f", "5.18.1": "ee1adfd59d92364f"},
        why="Called: the reconnection loop, which the client starts only after a transport"
        " failure, never after a session the server closed; no method starts it. It waits"
        " between attempts on _reconnect_abort, which shutdown() sets (then awaits the loop,"
        " which deadlocks when called from a handler the loop runs).",
    ),
    Upstream(
        "python-socketio",
        "socketio.base_client:BaseClient.__init__",
        {"5.16.1": "bc68af2916d19d3b", "5.18.1": "bc68af2916d19d3b"},
        why="Relied on: it makes _reconnect_task and _reconnect_abort, read and set here;"
        " no public attribute says whether the loop runs.",
    ),
)


def start_reconnecting(client: Any) -> None:
    """Run the client's reconnection loop now, unless it is already running."""
    if not client._reconnect_task:
        client._reconnect_task = client.start_background_task(client._handle_reconnect)


def stop_reconnecting(client: Any) -> None:
    """End the client's reconnection loop at its next wait, if it is running."""
    if client._reconnect_task is not None:
        client._reconnect_abort.set()

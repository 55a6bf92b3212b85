"""The seams into python-engineio, python-socketio and uvicorn, and the WebSocket frame writer.

It imports nothing of the gateway's domain (events, rooms, sessions, delivery, Redis), only
the telemetry it counts in and the error codes a refusal carries. Every dependence on a
library's internals is here, each module with an ``UPSTREAM`` table naming the upstream
objects it overrides or relies on, why no public API or documented extension point does it,
and a digest of their source in each version read.
``tests/test_compat.py`` recomputes the digests of the installed versions and fails with the
file to re-check when one differs. After re-reading the patch against the new source, add the
new version's digest to its entry (the failure message prints it). The version bounds in
pyproject.toml follow these tables.

- engineio.py: the Engine.IO server (sessions, send queue, request translation, log levels,
  batches, polling goodbyes)
- socketio.py: the Socket.IO server (bad packets, slow consumers, namespaces, drain)
- manager.py: the Socket.IO client manager (dict rooms, a task-free emit, hooks for fan-out)
- uvicorn.py: the WebSocket protocol with smaller per-connection objects and a frame writer
- socketio_client.py: starting and stopping the AsyncClient's reconnection loop (server/client.py)
- frames.py, queues.py: what those patches install: the frame writer, the smaller queues
- websocket.py: the frame format, importing nothing (emitter processes write frames too)
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Upstream:
    """An upstream object a patch depends on, and its source's digest in each version read."""

    distribution: str
    target: str
    """``module:Qualified.name``."""
    digests: Mapping[str, str]
    """Version -> :func:`source_digest` of ``target`` in that version."""
    why: str
    """What the gateway needs of it, and why the library's public API (constructor
    arguments, ``client_manager=``, ``serializer=``, the ASGI driver, uvicorn's ``ws=``) does
    not give it."""


def source_digest(target: str) -> str:
    """A short digest of the installed source of ``module:Qualified.name``."""
    module_name, _, qualname = target.partition(":")
    found: object = importlib.import_module(module_name)
    for part in qualname.split("."):
        found = getattr(found, part)
    return hashlib.sha256(inspect.getsource(found).encode()).hexdigest()[:16]  # type: ignore[arg-type]

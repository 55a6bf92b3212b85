"""Every place the gateway depends on a library's internals, one file per library.

Each file names, in its ``UPSTREAM`` table, the upstream functions and classes it overrides
or relies on, with a digest of their source in each version it was read against.
``tests/test_compat.py`` recomputes the digests of the installed versions and fails with the
file to re-check when one differs: upstream changed something a patch depends on. After
re-reading the patch against the new source, add the new version's digest to its entry (the
failure message prints it). The version bounds in pyproject.toml follow these tables.

- engineio.py: the Engine.IO server (send queue, request translation, log levels, batches)
- socketio.py: the Socket.IO server (bad packets, polling goodbyes, slow consumers, drain)
- fanout.py: delivery to a room without a task per recipient; the manager that subscribes
  a room's channel on its first local member
- uvicorn.py: the WebSocket protocol with smaller per-connection objects and a frame writer
- socketio_client.py: starting and stopping the AsyncClient's reconnection loop (server/client.py)
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


def source_digest(target: str) -> str:
    """A short digest of the installed source of ``module:Qualified.name``."""
    module_name, _, qualname = target.partition(":")
    found: object = importlib.import_module(module_name)
    for part in qualname.split("."):
        found = getattr(found, part)
    return hashlib.sha256(inspect.getsource(found).encode()).hexdigest()[:16]  # type: ignore[arg-type]

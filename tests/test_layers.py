"""The package's layers, and the one direction imports may take between them.

Each line of ``LAYERS`` is a layer, highest first; a module may import its own package and
the layers below its own, never a layer above nor a sibling on its own line. So the library
seams (``protocol``) import nothing of the domain, nothing imports ``app`` but the entry
points, and nothing imports ``http``. docs/architecture.md draws the same picture.
"""

from __future__ import annotations

import subprocess
import sys

import grimp
import pytest

PACKAGE = "swe_realtime"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("cli",),  # the console script
    ("serve",),  # uvicorn, workers, draining
    ("app",),  # assembly: settings in, an ASGI application out
    ("backends",),  # memory or Redis, chosen once
    ("broadcaster", "client"),  # the public Python entries: publish, subscribe
    ("http",),  # routes
    ("ops",),  # what the operator sees of an instance
    ("cluster",),  # everything Redis
    ("sessions",),  # connections: namespace, auth, access, registry, limits, presence
    ("delivery",),  # fan-out, gates, history, recovery
    ("publish",),  # validate -> route -> sink; the message format
    ("events", "protocol"),  # the catalogue; the library seams
    ("telemetry", "background"),  # metrics, logs, audit; stopping tasks
    ("settings",),
    ("errors",),
)
RANK = {name: rank for rank, layer in enumerate(LAYERS) for name in layer}


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(PACKAGE)


def _part(module: str) -> str:
    """The top-level part of the package a module belongs to."""
    return module.split(".")[1] if "." in module else ""


def test_every_part_of_the_package_has_a_layer(graph: grimp.ImportGraph) -> None:
    parts = {_part(module) for module in graph.modules} - {""}
    assert parts == set(RANK), f"give each part a layer in LAYERS: {sorted(parts ^ set(RANK))}"


def test_imports_go_down_the_layers_only(graph: grimp.ImportGraph) -> None:
    wrong = []
    for importer in sorted(graph.modules):
        mine = _part(importer)
        for imported in graph.find_modules_directly_imported_by(importer):
            theirs = _part(imported)
            if not theirs or theirs == mine or RANK[theirs] > RANK[mine]:
                continue
            for detail in graph.get_import_details(importer=importer, imported=imported):
                wrong.append(f"{importer}:{detail['line_number']} imports {imported}")
    assert not wrong, "an import against the layers (see LAYERS):\n" + "\n".join(wrong)


def test_the_layers_hold_no_cycle(graph: grimp.ImportGraph) -> None:
    """Within a part, modules may import each other, but never around in a circle."""
    cycles = sorted(
        f"{importer} -> {imported} -> ... -> {importer}"
        for importer in graph.modules
        for imported in graph.find_modules_directly_imported_by(importer)
        if graph.chain_exists(importer=imported, imported=importer)
    )
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


GATEWAY_LIBRARIES = (
    "sanic",
    "socketio",
    "engineio",
    "uvicorn",
    "prometheus_client",
    "jwt",
    "cryptography",
    "yaml",
)
"""The ``gateway`` extra: a backend that only emits installs none of them."""

EMITTER = f"""
import importlib.abc, sys

class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.partition(".")[0] in {GATEWAY_LIBRARIES!r}:
            raise ModuleNotFoundError(f"the gateway extra is not installed: {{name}}")
        return None

sys.meta_path.insert(0, Absent())
from swe_realtime.broadcaster import redis_broadcaster
redis_broadcaster("redis://127.0.0.1:1/0")
"""


def test_an_emitter_needs_no_gateway_library() -> None:
    """``pip install swe-realtime`` (no extra) publishes through Redis: the public entry
    (``broadcaster.py``) imports and builds an emitter with the gateway's libraries absent.
    (The import graph cannot say it: settings.py imports cryptography where a key is read,
    which an emitter never does. test_packaging installs the base package for real.)"""
    run = subprocess.run([sys.executable, "-c", EMITTER], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr

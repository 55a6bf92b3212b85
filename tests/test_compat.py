"""The library internals the gateway patches (swe_realtime/protocol/) are those it was read against.

Each module that patches a library lists, in UPSTREAM, the upstream objects it overrides or
relies on, with a digest of their source per version read and why the library's public API
could not do it. When the installed source differs, the patch must be re-read: the test names
the file to re-check and the digest to add once that is done.
"""

from __future__ import annotations

import importlib
import pkgutil
from importlib.metadata import version

import pytest

import swe_realtime
from swe_realtime.protocol import Upstream, source_digest

MODULES = [
    importlib.import_module(info.name)
    for info in pkgutil.walk_packages(swe_realtime.__path__, f"{swe_realtime.__name__}.")
]
CHECKED = [(module.__name__, entry) for module in MODULES for entry in getattr(module, "UPSTREAM", ())]


def test_every_patch_module_names_what_it_depends_on() -> None:
    named = {module.__name__ for module in MODULES if getattr(module, "UPSTREAM", ())}
    assert named == {
        f"swe_realtime.protocol.{name}"
        for name in ("engineio", "socketio", "manager", "uvicorn", "socketio_client")
    }


def test_every_entry_says_why_the_public_api_could_not_do_it() -> None:
    unexplained = [f"{module}:{entry.target}" for module, entry in CHECKED if not entry.why.strip()]
    assert not unexplained


def test_each_upstream_object_is_listed_once() -> None:
    targets = [entry.target for _, entry in CHECKED]
    assert sorted(targets) == sorted(set(targets))


@pytest.mark.parametrize(("module", "entry"), CHECKED, ids=[f"{m}:{e.target}" for m, e in CHECKED])
def test_patched_upstream_source_is_the_one_read(module: str, entry: Upstream) -> None:
    installed, digest = version(entry.distribution), source_digest(entry.target)
    path = module.replace(".", "/") + ".py"
    name = entry.target.partition(":")[2]
    assert digest in entry.digests.values(), (
        f"re-check {path}: {entry.distribution}'s {name} changed (installed {installed}, digest "
        f"{digest}; read against {', '.join(entry.digests)}). Once the patch is right for it, add "
        f'"{installed}": "{digest}" to its UPSTREAM entry.'
    )

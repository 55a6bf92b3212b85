"""Every path a file of the repository names exists: a moved module leaves no stale pointer.

Comments, docstrings and guides point readers at files (``server/delivery/fanout.py``); after
a move, a pointer to the old place sends them nowhere. Paths under folders that runs fill in
(benchmark results, test artifacts) and the generated docs page are not checked.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEXT = (".py", ".md", ".toml", ".yaml", ".yml", ".mjs", ".ts", ".html", ".css", ".sh")
NAMED = re.compile(r"(?<![\w/.-])((?:server|tests|docs|codegen|deploy|bench|src)/[\w./-]*\w)")
WRITTEN_BY_RUNS = ("bench/results", "tests/artifacts", "docs/index.html")
"""Output folders and files that a benchmark, a test or the docs build writes."""


def _tracked() -> list[Path]:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    return [
        ROOT / name
        for name in listed.stdout.split()
        if (name.endswith(TEXT) or name in ("Justfile", ".ci/run", "Dockerfile"))
        and not name.startswith("contracts/")
        and "node_modules" not in name
        and not (ROOT / name).is_symlink()
    ]


def test_every_named_path_exists() -> None:
    stale = sorted(
        f"{path.relative_to(ROOT)}: {named}"
        for path in _tracked()
        for named in NAMED.findall(path.read_text(encoding="utf-8", errors="replace"))
        if not named.startswith(WRITTEN_BY_RUNS) and not (ROOT / named).exists()
    )
    assert not stale, "paths named that do not exist:\n" + "\n".join(stale)

"""``python -m codegen``: write contracts/, check it is current, or check compatibility.

python -m codegen                          write every generated file (contracts/, and the
                                           typed broadcast methods in server/publish/broadcasts_gen.py)
python -m codegen --check                  exit 1, with a diff, if a generated file is stale
python -m codegen --breaking-against REF   compare the AsyncAPI document with the one at a
                                           git ref (or in a file); exit 1 on a breaking change
"""

from __future__ import annotations

import argparse
import difflib
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from codegen.breaking import compare
from codegen.render import render, render_sources

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "contracts"
ASYNCAPI_JSON = "contracts/asyncapi.json"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m codegen", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--check", action="store_true", help="fail, with a diff, if a generated file is stale"
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="output directory (default: contracts/)"
    )
    parser.add_argument("--breaking-against", metavar="REF", help="a git ref, or an AsyncAPI file")
    args = parser.parse_args(argv)

    files = render()
    if args.breaking_against:
        return _breaking(args.breaking_against, json.loads(_asyncapi(files)))
    outputs = [(args.out, files), (ROOT, render_sources())]
    if args.check:
        return max(_check(generated, out) for out, generated in outputs)
    for out, generated in outputs:
        for path, text in generated.items():
            target = out / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
    return 0


def _asyncapi(files: dict[Any, str]) -> str:
    return next(text for path, text in files.items() if str(path) == "asyncapi.json")


def _check(files: dict[Any, str], out: Path) -> int:
    stale = 0
    for path, text in files.items():
        target = out / path
        current = target.read_text() if target.exists() else ""
        if current != text:
            stale += 1
            diff = difflib.unified_diff(
                current.splitlines(keepends=True),
                text.splitlines(keepends=True),
                f"{target} (committed)",
                f"{target} (generated now)",
                n=2,
            )
            sys.stdout.writelines(list(diff)[:200])
    if stale:
        print(f"\n{stale} generated file(s) out of date: run `just codegen` and commit.", file=sys.stderr)
        return 1
    return 0


def _breaking(reference: str, new: dict[str, Any]) -> int:
    old = _load_reference(reference)
    changes = compare(old, new)
    for change in changes:
        print(change)
    breaking = [c for c in changes if c.level == "breaking"]
    warnings = [c for c in changes if c.level == "warning"]
    print(f"{len(breaking)} breaking, {len(warnings)} warning(s) against {reference}")
    return 1 if breaking else 0


def _load_reference(reference: str) -> dict[str, Any]:
    path = Path(reference)
    if path.is_file():
        text = path.read_text()
    else:
        shown = subprocess.run(
            ["git", "show", f"{reference}:{ASYNCAPI_JSON}"], cwd=ROOT, capture_output=True, text=True
        )
        if shown.returncode != 0:
            raise SystemExit(
                f"python -m codegen: cannot read {ASYNCAPI_JSON} at {reference}: {shown.stderr.strip()}"
            )
        text = shown.stdout
    document: dict[str, Any] = yaml.safe_load(text)  # JSON is YAML
    return document


if __name__ == "__main__":
    sys.exit(main())

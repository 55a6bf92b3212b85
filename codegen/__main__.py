"""``python -m codegen [--check] [--out DIR]``: write contracts/, or check it is current."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from codegen.render import render

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "contracts"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m codegen", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if a generated file is out of date")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="output directory (default: contracts/)"
    )
    args = parser.parse_args(argv)

    files = render()
    if args.check:
        stale = [str(p) for p, text in files.items() if _read(args.out / p) != text]
        if stale:
            print(f"generated files out of date (run `just codegen`): {', '.join(stale)}", file=sys.stderr)
            return 1
        return 0
    for path, text in files.items():
        target = args.out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return 0


def _read(path: Path) -> str | None:
    return path.read_text() if path.exists() else None


if __name__ == "__main__":
    sys.exit(main())

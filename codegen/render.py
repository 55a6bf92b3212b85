"""Every generated file, as path -> text, rendered in memory (writing is the caller's job)."""

from __future__ import annotations

import json
from pathlib import PurePosixPath

from codegen.jsonschema import catalogue_schema


def render() -> dict[PurePosixPath, str]:
    return {
        PurePosixPath("catalogue.schema.json"): json.dumps(catalogue_schema(), indent=2, sort_keys=True)
        + "\n",
    }

"""The manifest's JSON Schema, for editors, reviewers and non-Python tooling.

``python -m plugbox.sdk.schema docs/manifest.schema.json`` writes it; a test fails when the
committed file is stale, so the schema in the docs is always the one the code enforces.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from plugbox.sdk.manifest import Manifest

SCHEMA_ID = "https://plugbox.dev/schemas/manifest.schema.json"


def manifest_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a plugin manifest."""
    schema = Manifest.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def render() -> str:
    """The schema as the exact text committed to ``docs/manifest.schema.json``."""
    return json.dumps(manifest_json_schema(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] == "-":
        sys.stdout.write(render())
        return 0
    Path(args[0]).write_text(render(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

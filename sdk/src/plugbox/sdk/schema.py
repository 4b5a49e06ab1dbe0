"""The manifest's JSON Schema, for editors, reviewers and non-Python tooling, and its reference page.

``python -m plugbox.sdk.schema docs/manifest.schema.json --markdown docs/manifest.md`` writes both
(the page is rendered from the schema by :mod:`plugbox.sdk.schema_docs`); a test fails when either
committed file is stale, so the docs always describe the rules the code enforces.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from plugbox.sdk.manifest import Manifest
from plugbox.sdk.schema_docs import render_markdown

SCHEMA_ID = "https://plugbox.dev/schemas/manifest.schema.json"


def manifest_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a plugin manifest."""
    schema = Manifest.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def render() -> str:
    """The schema as the exact text committed to ``docs/manifest.schema.json``."""
    return json.dumps(manifest_json_schema(), indent=2, sort_keys=True) + "\n"


def render_reference() -> str:
    """The reference page as the exact text committed to ``docs/manifest.md``."""
    return render_markdown(manifest_json_schema())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m plugbox.sdk.schema",
        description="Write the manifest's JSON Schema and, optionally, its Markdown reference.",
    )
    parser.add_argument(
        "schema", nargs="?", default="-", help="where to write the JSON Schema ('-': stdout)"
    )
    parser.add_argument("--markdown", metavar="PATH", help="also write the reference page here")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.schema == "-":
        sys.stdout.write(render())
    else:
        Path(args.schema).write_text(render(), encoding="utf-8")
    if args.markdown:
        Path(args.markdown).write_text(render_reference(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

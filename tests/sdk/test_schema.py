"""docs/manifest.schema.json is generated from the models and must never go stale."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from plugbox.sdk.schema import manifest_json_schema, render

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "docs" / "manifest.schema.json"


def test_committed_schema_is_current() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == render(), (
        "docs/manifest.schema.json is stale; regenerate it with "
        "`.venv/bin/python -m plugbox.sdk.schema docs/manifest.schema.json`"
    )


def test_schema_describes_jobs_and_permissions() -> None:
    schema = manifest_json_schema()
    assert schema["$schema"].endswith("2020-12/schema")
    assert set(schema["required"]) == {"id", "version", "name"}
    job = schema["$defs"]["JobSpec"]
    for key in (
        "schedule",
        "timezone",
        "timeout_ms",
        "retries",
        "concurrency",
        "misfire",
        "permissions",
    ):
        assert key in job["properties"], key
    assert job["additionalProperties"] is False
    assert set(schema["$defs"]["Quotas"]["properties"]) >= {"timeout_ms", "memory_mb", "cpu_ms"}


def test_schema_command_writes_the_file(tmp_path: Path) -> None:
    target = tmp_path / "schema.json"
    subprocess.run([sys.executable, "-m", "plugbox.sdk.schema", str(target)], check=True)
    assert json.loads(target.read_text()) == manifest_json_schema()

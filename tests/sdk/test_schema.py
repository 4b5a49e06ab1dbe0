"""docs/manifest.schema.json and docs/manifest.md are generated from the models and never go stale."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from plugbox.sdk.schema import manifest_json_schema, render, render_reference
from plugbox.sdk.schema_docs import render_markdown

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "docs" / "manifest.schema.json"
REFERENCE_FILE = ROOT / "docs" / "manifest.md"
REGENERATE = (
    "regenerate it with `.venv/bin/python -m plugbox.sdk.schema docs/manifest.schema.json "
    "--markdown docs/manifest.md`"
)


def test_committed_schema_is_current() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == render(), (
        f"docs/manifest.schema.json is stale; {REGENERATE}"
    )


def test_committed_reference_is_current() -> None:
    assert REFERENCE_FILE.read_text(encoding="utf-8") == render_reference(), (
        f"docs/manifest.md is stale; {REGENERATE}"
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


def _models(schema: dict[str, object]) -> dict[str, dict[str, object]]:
    defs = schema["$defs"]
    assert isinstance(defs, dict)
    models = {
        name: d for name, d in defs.items() if d.get("type") == "object" and "properties" in d
    }
    return {str(schema["title"]): schema, **models}


@pytest.mark.parametrize("model", sorted(_models(manifest_json_schema())))
def test_every_field_has_a_description(model: str) -> None:
    """A field without one would be a blank cell in docs/manifest.md and in editors' tooltips."""
    properties = _models(manifest_json_schema())[model]["properties"]
    assert isinstance(properties, dict)
    missing = [name for name, prop in properties.items() if not prop.get("description")]
    assert not missing, f"{model}: add a description= to the Field of {missing}"


def _sections(page: str) -> dict[str, str]:
    """'## Name' heading -> the text up to the next heading."""
    parts = re.split(r"^## (\S+)\n", page, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_reference_has_a_section_and_a_row_for_every_field() -> None:
    sections = _sections(render_reference())
    for name, model in _models(manifest_json_schema()).items():
        assert name in sections, f"no section for {name}"
        properties = model["properties"]
        assert isinstance(properties, dict)
        for field in properties:
            assert f"\n| `{field}` |" in sections[name], f"{name}.{field} has no row"


def test_reference_links_nested_models_to_their_sections() -> None:
    page = render_reference()
    manifest = _sections(page)["Manifest"]
    assert "| `jobs` | array of [JobSpec](#jobspec) |" in manifest
    assert "| `permissions` | [Permissions](#permissions) | `{}` |" in manifest
    assert "| `quotas` | [Quotas](#quotas) |" in _sections(page)["Permissions"]
    for anchor in set(re.findall(r"\]\(#([a-z0-9_-]+)\)", page)):
        assert re.search(rf"^## {anchor}$", page, flags=re.MULTILINE | re.IGNORECASE), anchor


def test_reference_shows_defaults_requirements_and_constraints() -> None:
    job = _sections(render_reference())["JobSpec"]
    rows = {line.split(" | ")[0].strip("| `"): line for line in job.splitlines() if "| `" in line}
    assert "| string | — | yes |" in rows["handler"]
    assert "matches `^[a-z0-9][a-z0-9._-]{0,63}$`" in rows["id"]
    assert "| integer | `5` | no |" in rows["priority"] and "≥ 0; ≤ 10" in rows["priority"]
    assert 'one of `"forbid"`, `"allow"`, `"replace"`' in rows["concurrency"]
    assert "integer or null | `null` |" in rows["timeout_ms"] and "> 0" in rows["timeout_ms"]
    assert "| object of any JSON value | `{}` |" in rows["config"]


def test_markdown_escapes_what_would_break_a_table() -> None:
    schema = {
        "title": "Thing",
        "description": "Uses ``a|b`` and **globs** <here>.",
        "type": "object",
        "properties": {
            "x": {"type": "string", "default": "a|b", "description": "'**' or\n'|'"},
        },
    }
    page = render_markdown(schema)
    assert "Uses `a|b` and \\*\\*globs\\*\\* &lt;here>." in page
    assert "| `x` | string | `\"a\\|b\"` | no | '\\*\\*' or '\\|' |  |" in page


def test_schema_command_writes_both_files(tmp_path: Path) -> None:
    target = tmp_path / "schema.json"
    page = tmp_path / "manifest.md"
    command = [sys.executable, "-m", "plugbox.sdk.schema", str(target), "--markdown", str(page)]
    subprocess.run(command, check=True)
    assert json.loads(target.read_text()) == manifest_json_schema()
    assert page.read_text(encoding="utf-8") == render_reference()


def test_schema_command_without_markdown_writes_only_the_schema(tmp_path: Path) -> None:
    target = tmp_path / "schema.json"
    subprocess.run([sys.executable, "-m", "plugbox.sdk.schema", str(target)], check=True)
    assert json.loads(target.read_text()) == manifest_json_schema()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["schema.json"]

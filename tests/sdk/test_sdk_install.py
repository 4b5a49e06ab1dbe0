"""Installing the SDK alone stays light, and the example plugin installs as an outside author's would."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = {
    "psutil",
    "fastapi",
    "starlette",
    "uvicorn",
    "flask",
    "django",
    "aiohttp",
    "httpx",
    "requests",
    "sqlalchemy",
    "psycopg",
    "psycopg2",
    "psycopg2-binary",
    "asyncpg",
    "alembic",
    "plugbox-sandbox",
    "plugbox-host",
}

CHECK = """
import json
from importlib.metadata import entry_points
from plugbox.sdk import new_plugin_manager, validate_manifest
(ep,) = [e for e in entry_points(group="plugbox") if e.name == "example"]
pm = new_plugin_manager()
pm.register(ep.load(), name=ep.name)
(manifest,) = pm.hook.plugbox_manifest()
validate_manifest(manifest.model_dump(mode="json"))
print(json.dumps([j.id for j in manifest.jobs]))
"""


@pytest.mark.slow
def test_sdk_alone_pulls_no_heavy_packages_and_example_installs(tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"

    def pip(*args: str) -> None:
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args],
            check=True,
            cwd=tmp_path,
        )

    pip(str(ROOT / "sdk"))
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=json"],
        check=True,
        capture_output=True,
        text=True,
    )
    installed = {item["name"].lower() for item in json.loads(listed.stdout)}
    assert "plugbox-sdk" in installed
    assert not (installed & HEAVY), installed & HEAVY

    pip(str(ROOT / "example_plugin"))
    out = subprocess.run([str(python), "-c", CHECK], check=True, capture_output=True, text=True)
    assert json.loads(out.stdout) == ["hello-cron", "cleanup", "rate-limit"]
    assert sys.prefix != str(env_dir)

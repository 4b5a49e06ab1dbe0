"""An operator's first minutes: pip-install the host, the example plugin and a broken plugin into a
fresh virtual environment, then drive the installed ``plugbox`` script."""

from __future__ import annotations

import json
import subprocess
import textwrap
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

BROKEN_PYPROJECT = """
[build-system]
requires = ["hatchling>=1.25"]
build-backend = "hatchling.build"

[project]
name = "plugbox-broken"
version = "0.1.0"
dependencies = ["plugbox-sdk>=0.1,<1"]

[project.entry-points.plugbox]
broken = "plugbox_broken"

[tool.hatch.build.targets.wheel]
packages = ["plugbox_broken"]
"""

FIXED_PLUGIN = """
from plugbox.sdk import define_manifest, hookimpl, job


@job("tick", schedule="@daily")
def tick(ctx):
    return None


@hookimpl
def plugbox_manifest():
    return define_manifest(id="broken", version="0.2.0", name="Fixed", jobs=[tick])
"""


@pytest.mark.slow
def test_operator_installs_host_and_plugins_with_pip(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    (broken / "plugbox_broken").mkdir(parents=True)
    (broken / "pyproject.toml").write_text(BROKEN_PYPROJECT)
    (broken / "plugbox_broken" / "__init__.py").write_text(
        textwrap.dedent(
            """
            raise RuntimeError("this plugin is broken on purpose")
            """
        )
    )
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         str(ROOT / "sdk"), str(ROOT / "sandbox"), str(ROOT / "host"), str(ROOT / "example_plugin"), str(broken)],
        check=True,
        cwd=tmp_path,
    )  # fmt: skip
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    config = tmp_path / "plugbox.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\nworkspace = "{workspace}"\n')
    plugbox = [str(env_dir / "bin" / "plugbox"), "--config", str(config)]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}

    listed = subprocess.run(
        [*plugbox, "plugins", "list", "--json"], capture_output=True, text=True, env=env, check=True
    )
    report = json.loads(listed.stdout)
    assert [p["id"] for p in report["plugins"]] == ["example"]
    (problem,) = report["problems"]
    assert problem["distribution"] == "plugbox-broken"
    assert "this plugin is broken on purpose" in problem["reason"]

    ran = subprocess.run(
        [*plugbox, "jobs", "run", "example:hello-cron", "--json"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert ran.returncode == 0, ran.stderr
    record = json.loads(ran.stdout)
    assert record["status"] == "success"
    assert record["enforcement"]["mode"] == "sandbox"
    assert (workspace / ".plugbox" / "example" / "cron.log").read_text() == "run 1\n"

    # The broken plugin's failure is remembered (it is not imported again for every command)
    # until pip upgrades it: the fixed release loads on the next command.
    (broken / "pyproject.toml").write_text(BROKEN_PYPROJECT.replace("0.1.0", "0.2.0"))
    (broken / "plugbox_broken" / "__init__.py").write_text(FIXED_PLUGIN)
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            str(broken),
        ],
        check=True,
        cwd=tmp_path,
    )
    listed = subprocess.run(
        [*plugbox, "plugins", "list", "--json"], capture_output=True, text=True, env=env, check=True
    )
    report = json.loads(listed.stdout)
    assert sorted(p["id"] for p in report["plugins"]) == ["broken", "example"], report
    assert report["problems"] == []

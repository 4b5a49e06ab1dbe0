"""The discovery cache through the ``plugbox`` script: a plugin is imported once per install.

A confined discovery child may not write anywhere, so a plugin cannot count its imports in a
file. Each test plugin instead draws a random token at import time and puts it in its job's
description: the same token in two commands means one import served both, a new token means the
plugin was imported again.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from plugbox.host.discovery_cache import CACHE_FILE

TOKEN_PLUGIN = """
import uuid

from plugbox.sdk import hookimpl

{preamble}

IMPORTED = uuid.uuid4().hex


@hookimpl
def plugbox_manifest():
    return {{
        "id": {plugin_id!r},
        "version": {version!r},
        "name": {plugin_id!r},
        "sdk": ">=0.1",
        "jobs": [{{"id": "tick", "handler": "x:tick", "schedule": "*/5 * * * *",
                   "description": IMPORTED}}],
    }}
"""


def plugbox_path() -> str:
    found = shutil.which("plugbox", path=str(Path(sys.executable).parent))
    assert found, "the plugbox console script is not installed next to this interpreter"
    return found


class Host:
    """A config whose ``plugin_paths`` is a site folder this test installs plugins into."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.site = root / "site"
        self.state = root / "state"
        workspace = root / "workspace"
        for folder in (self.site, workspace):
            folder.mkdir()
        # A root host runs discovery children as another uid, which must be able to read them.
        for folder in (root, self.site):
            folder.chmod(0o755)
        self.config = root / "plugbox.toml"
        self.config.write_text(
            f'state_dir = "{self.state}"\nworkspace = "{workspace}"\n'
            f'plugin_paths = ["{self.site}"]\n'
        )

    @property
    def cache(self) -> Path:
        return self.state / CACHE_FILE

    def install(
        self,
        dist: str,
        version: str = "1.0",
        *,
        plugin_id: str | None = None,
        preamble: str = "",
        source: str | None = None,
        requires: tuple[str, ...] = (),
        entry_point: bool = True,
    ) -> None:
        """Install (or upgrade to) ``dist`` ``version`` as pip would: module, dist-info, RECORD."""
        module = "pbt_" + dist.replace("-", "_")
        stem = dist.replace("-", "_")  # pip names the folder after the normalised distribution
        for old in self.site.glob(f"{stem}-*.dist-info"):
            shutil.rmtree(old)
        info = self.site / f"{stem}-{version}.dist-info"
        info.mkdir()
        code = (
            source
            if source is not None
            else TOKEN_PLUGIN.format(
                preamble=textwrap.dedent(preamble), plugin_id=plugin_id or dist, version=version
            )
        )
        (self.site / f"{module}.py").write_text(code)
        requirements = "".join(f"Requires-Dist: {name}\n" for name in requires)
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n{requirements}"
        )
        if entry_point:
            (info / "entry_points.txt").write_text(f"[plugbox]\n{dist} = {module}\n")
        listed = [f"{module}.py", *(f"{info.name}/{f.name}" for f in info.iterdir())]
        (info / "RECORD").write_text("".join(f"{name},,\n" for name in listed))

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {"PATH": "/usr/bin:/bin", "HOME": str(self.root)}
        out = subprocess.run(
            [plugbox_path(), "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=self.root,
            timeout=timeout,
        )
        assert out.returncode == 0, out.stderr
        return out

    def tokens(self) -> dict[str, str]:
        """Each loaded plugin's import token, from ``jobs list``."""
        jobs = json.loads(self.run("jobs", "list", "--json").stdout)["jobs"]
        return {job["job"].partition(":")[0]: job["description"] for job in jobs}

    def problems(self) -> dict[str, dict[str, Any]]:
        listed = json.loads(self.run("plugins", "list", "--json").stdout)
        return {problem["distribution"]: problem for problem in listed["problems"]}


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host(tmp_path)


def test_a_plugin_is_imported_once_across_commands(host: Host) -> None:
    host.install("pbt-once")
    first = host.tokens()["pbt-once"]
    assert host.cache.exists()
    assert host.tokens()["pbt-once"] == first
    listed = json.loads(host.run("plugins", "list", "--json").stdout)
    assert [p["id"] for p in listed["plugins"] if p["id"] == "pbt-once"] == ["pbt-once"]
    assert host.tokens()["pbt-once"] == first


def test_an_upgrade_or_changed_files_import_it_again(host: Host) -> None:
    host.install("pbt-upgraded", "1.0")
    first = host.tokens()["pbt-upgraded"]
    host.install("pbt-upgraded", "1.1")
    upgraded = host.tokens()["pbt-upgraded"]
    assert upgraded != first
    assert host.tokens()["pbt-upgraded"] == upgraded
    # Same version, a file of it changed in place (a reinstall, a hand edit): imported again.
    module = host.site / "pbt_pbt_upgraded.py"
    module.write_text(module.read_text() + "\n# patched\n")
    assert host.tokens()["pbt-upgraded"] not in (first, upgraded)


def test_installing_what_a_plugin_needs_imports_it_again(host: Host) -> None:
    host.install("pbt-needy", preamble="import pbt_pbt_helper", requires=("pbt-helper>=1",))
    problem = host.problems()["pbt-needy"]
    assert "No module named 'pbt_pbt_helper'" in problem["reason"]
    host.install("pbt-helper", source="", entry_point=False)
    assert "pbt-needy" in host.tokens()


def test_a_hanging_plugin_costs_its_timeout_once(host: Host) -> None:
    host.install("pbt-hangs", preamble="import time\ntime.sleep(3600)")
    host.install("pbt-fine")
    began = time.monotonic()
    first = host.run("jobs", "list")
    assert time.monotonic() - began >= 20  # the discovery timeout, paid here once
    assert "pbt-hangs" in first.stderr and "timed out after 20 s" in first.stderr
    assert "remembered" not in first.stderr
    began = time.monotonic()
    again = host.run("jobs", "list")
    # Far below the timeout: not imported again. (Speed is measured in bench_cli.py.)
    assert time.monotonic() - began < 15
    assert "pbt-hangs" in again.stderr and "timed out after 20 s" in again.stderr
    assert "plugbox plugins reload" in again.stderr  # says how to try again
    assert "pbt-fine:tick" in again.stdout


def test_plugins_reload_imports_every_plugin_again(host: Host) -> None:
    host.install("pbt-reloaded")
    first = host.tokens()["pbt-reloaded"]
    reloaded = host.run("plugins", "reload")
    assert "pbt-reloaded" in reloaded.stdout
    second = host.tokens()["pbt-reloaded"]
    assert second != first
    assert host.tokens()["pbt-reloaded"] == second


def test_runs_list_and_help_never_discover(host: Host) -> None:
    host.install("pbt-untouched")
    host.run("runs", "list")
    host.run("--help")
    host.run("runs", "--help")
    assert not host.cache.exists()  # no discovery ran, so none was remembered
    for args in (["--help"], ["--config", str(host.config), "runs", "list"]):
        loaded = imported_by(args, cwd=host.root)
        assert "pbt_pbt_untouched" not in loaded
        assert "plugbox.host.discovery" not in loaded
        assert "plugbox.sandbox.runner" not in loaded
    help_loaded = imported_by(["--help"], cwd=host.root)
    assert not {"sqlalchemy", "pydantic", "rich"} & help_loaded


def imported_by(args: list[str], *, cwd: Path) -> set[str]:
    """Top-level and plugbox module names a ``plugbox`` command imported, in a fresh process."""
    script = textwrap.dedent(
        f"""
        import json, sys
        from plugbox.host.cli import main
        try:
            main({args!r})
        except SystemExit:
            pass
        print(json.dumps(sorted(sys.modules)), file=sys.stderr)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)},
        timeout=120,
    )
    names: list[str] = json.loads(out.stderr.strip().splitlines()[-1])
    return {name for name in names if name.startswith("plugbox.")} | {
        name.partition(".")[0] for name in names
    }


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda cache: cache.write_text("{not json"), id="corrupt"),
        pytest.param(lambda cache: cache.write_text('{"format": 999}'), id="other-format"),
        pytest.param(lambda cache: cache.write_bytes(b"\xff" * 64), id="binary"),
        pytest.param(lambda cache: cache.chmod(0o622), id="writable-by-others"),
    ],
)
def test_a_spoilt_cache_is_ignored_and_rewritten(host: Host, spoil: Any) -> None:
    host.install("pbt-spoilt")
    first = host.tokens()["pbt-spoilt"]
    spoil(host.cache)
    second = host.tokens()["pbt-spoilt"]
    assert second != first  # not trusted: imported again
    assert json.loads(host.cache.read_text())["format"] == 1
    assert host.cache.stat().st_mode & 0o077 == 0
    assert host.tokens()["pbt-spoilt"] == second


def test_a_symlink_in_place_of_the_cache_is_not_followed(host: Host, tmp_path: Path) -> None:
    host.install("pbt-linked")
    first = host.tokens()["pbt-linked"]
    elsewhere = tmp_path / "elsewhere.json"
    host.cache.rename(elsewhere)
    host.cache.symlink_to(elsewhere)
    assert host.tokens()["pbt-linked"] != first
    assert not host.cache.is_symlink()  # replaced by a file of its own


def test_a_remembered_manifest_is_validated_again(host: Host) -> None:
    """The cache keeps what the child said, never a verdict: a manifest edited in the cache
    goes through the same checks as a fresh one."""
    host.install("pbt-checked")
    host.tokens()
    data = json.loads(host.cache.read_text())
    (entry,) = [e for e in data["plugins"].values() if e["record"]["dist"] == "pbt-checked"]
    entry["record"]["manifest"]["jobs"][0]["schedule"] = "every full moon"
    entry["record"]["manifest"]["permissions"] = {"net": {"allow_hosts": ["*"]}, "bogus": 1}
    host.cache.write_text(json.dumps(data))
    os.chmod(host.cache, 0o600)
    problem = host.problems()["pbt-checked"]
    assert problem["kind"] == "invalid"
    assert "bogus" in problem["reason"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the state dir to another user")
def test_a_state_dir_that_is_not_ours_costs_only_the_cache(host: Host) -> None:
    host.install("pbt-homeless")
    host.state.mkdir(mode=0o755)
    os.chown(host.state, 12345, 12345)
    listed = json.loads(host.run("plugins", "list", "--json").stdout)
    assert "pbt-homeless" in [p["id"] for p in listed["plugins"]]
    assert not host.cache.exists()

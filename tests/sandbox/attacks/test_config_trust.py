"""Class A (configuration): the host never takes configuration or plugin code a job wrote.

Layers: the workspace root is never writable by a job (Landlock, with write rules that would
open it refused at validation), and the config loader refuses a ``plugbox.toml`` or a
``plugin_paths`` entry inside the workspace, where jobs may write. Each test's control is the
planted file itself: the job really wrote it, in its own folder.
"""

from __future__ import annotations

import errno
import subprocess
from pathlib import Path

from ...host.test_cli_unprivileged import as_user
from .conftest import Host


def _plugbox_in(host: Host, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``plugbox ARGS`` started in ``cwd`` with no --config: ./plugbox.toml is looked for."""
    return subprocess.run(
        [host.script, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "HOME": str(host.scratch), "LANG": "C.UTF-8"},
        timeout=120,
        **(as_user(host.user) if host.user is not None else {}),
    )


def test_a_config_planted_by_a_job_is_refused(host: Host) -> None:
    attack = host.attack("plant-config")
    attack.succeeded("write_folder_config")  # the control: eve may write its own folder
    attack.stopped("write_root_config", errno.EACCES)  # Landlock: the root is never writable
    assert not (host.workspace / "plugbox.toml").exists()
    planted = host.workspace / ".plugbox" / "eve" / "plugbox.toml"
    assert 'host_id = "eve-owned"' in planted.read_text()

    named = host.cli("--config", str(planted), "jobs", "list")  # the later --config wins
    assert named.returncode == 2, named.stdout
    assert "inside the workspace" in named.stderr and "where jobs may write" in named.stderr

    found = _plugbox_in(host, planted.parent, "jobs", "list")
    assert found.returncode == 2, found.stdout
    assert f"invalid plugbox configuration in {planted}" in found.stderr
    assert "keep plugbox.toml outside the workspace" in found.stderr

    # The operator's own configuration still works, and the planted values never applied.
    record = host.run("control")
    assert record["status"] == "success"
    assert record["host_id"] != "eve-owned"


def test_a_plugin_path_a_job_wrote_is_refused(host: Host) -> None:
    attack = host.attack("plant-plugin")
    for name in ("metadata", "entry_points", "module"):
        attack.succeeded(name)
    site = host.workspace / ".plugbox" / "eve" / "site"
    assert (site / "planted.py").exists()

    config = host.config.read_text()
    host.config.write_text(config.replace('plugin_paths = ["', f'plugin_paths = ["{site}", "'))
    out = host.cli("plugins", "list", "--json")
    assert out.returncode == 2, out.stdout
    assert "plugin_paths[0]" in out.stderr and "where jobs may write" in out.stderr
    assert "planted" not in out.stdout

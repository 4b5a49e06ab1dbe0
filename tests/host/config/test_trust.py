"""The host never takes configuration or code from where a job may write (issue 9, class A).

Jobs write only below the workspace root. A ``plugbox.toml`` there, ``plugin_paths`` in the
workspace, or an import path reaching into it would let one run decide what the next one may do.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from plugbox.host.config import ConfigError, load_config
from plugbox.sdk.permissions.models import MAX_FS_PATTERNS

from ..test_cli import plugbox_path


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """(scratch, workspace): the workspace and a state dir side by side, outside each other."""
    workspace = tmp_path / "ws"
    (workspace / ".plugbox" / "eve").mkdir(parents=True)
    return tmp_path, workspace


def _config(path: Path, scratch: Path, workspace: Path, extra: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'state_dir = "{scratch / "state"}"\nworkspace = "{workspace}"\n{extra}')
    return path


def _problems(path: Path | None, env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, env=env)
    return [str(problem) for problem in caught.value.problems]


def test_a_config_below_the_workspace_root_is_refused(layout: tuple[Path, Path]) -> None:
    scratch, workspace = layout
    planted = _config(workspace / ".plugbox" / "eve" / "plugbox.toml", scratch, workspace)
    (problem,) = _problems(planted, {"HOME": str(scratch)})
    assert f"inside the workspace {workspace}, where jobs may write" in problem
    assert "keep plugbox.toml outside the workspace" in problem and "--config" in problem


def test_the_same_file_found_as_dot_plugbox_toml_is_refused(
    layout: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch, workspace = layout
    folder = workspace / ".plugbox" / "eve"
    _config(folder / "plugbox.toml", scratch, workspace)
    monkeypatch.chdir(folder)
    assert _problems(None, {"HOME": str(scratch)})[0].startswith("this file is inside")


def test_a_link_into_the_workspace_is_followed_and_refused(layout: tuple[Path, Path]) -> None:
    scratch, workspace = layout
    planted = _config(workspace / ".plugbox" / "eve" / "plugbox.toml", scratch, workspace)
    link = scratch / "etc" / "plugbox.toml"
    link.parent.mkdir()
    link.symlink_to(planted)
    assert "inside the workspace" in _problems(link, {"HOME": str(scratch)})[0]


def test_a_config_at_the_workspace_root_or_outside_is_read(layout: tuple[Path, Path]) -> None:
    scratch, workspace = layout
    env = {"HOME": str(scratch)}
    at_root = _config(workspace / "plugbox.toml", scratch, workspace, "workers = 2\n")
    assert load_config(at_root, env=env).workers == 2
    outside = _config(scratch / "etc" / "plugbox.toml", scratch, workspace, "workers = 3\n")
    assert load_config(outside, env=env).workers == 3


def test_a_hard_linked_config_at_the_root_is_refused(layout: tuple[Path, Path]) -> None:
    scratch, workspace = layout
    at_root = _config(workspace / "plugbox.toml", scratch, workspace)
    os.link(at_root, workspace / ".plugbox" / "eve" / "alias")
    (problem,) = _problems(at_root, {"HOME": str(scratch)})
    assert "has 2 names (hard links)" in problem


def test_a_config_others_may_change_is_refused(layout: tuple[Path, Path]) -> None:
    scratch, workspace = layout
    path = _config(scratch / "etc" / "plugbox.toml", scratch, workspace)
    path.chmod(0o664)
    (problem,) = _problems(path, {"HOME": str(scratch)})
    assert "other users may change this file (mode 0664)" in problem and "chmod go-w" in problem


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file away needs root")
def test_a_config_owned_by_another_user_is_refused(layout: tuple[Path, Path]) -> None:
    scratch, workspace = layout
    path = _config(scratch / "etc" / "plugbox.toml", scratch, workspace)
    os.chown(path, 4444, 4444)
    (problem,) = _problems(path, {"HOME": str(scratch)})
    assert "belongs to user id 4444" in problem


@pytest.mark.parametrize("where", [".", ".plugbox/eve/site"])
def test_plugin_paths_in_the_workspace_are_refused(layout: tuple[Path, Path], where: str) -> None:
    scratch, workspace = layout
    outside = scratch / "site"
    path = _config(
        scratch / "etc" / "plugbox.toml",
        scratch,
        workspace,
        f'plugin_paths = ["{outside}", "{workspace / where}"]\n',
    )
    (problem,) = _problems(path, {"HOME": str(scratch)})
    assert problem.startswith("plugin_paths[1]: ")
    assert "where jobs may write" in problem and "pip install --target" in problem


def test_an_operator_grant_has_the_manifest_bounds(layout: tuple[Path, Path]) -> None:
    scratch, workspace = layout
    globs = ", ".join(f'"d{i}/"' for i in range(MAX_FS_PATTERNS + 1))
    path = _config(
        scratch / "etc" / "plugbox.toml",
        scratch,
        workspace,
        f"[plugins.example.permissions]\nfs = {{ allow = [{globs}] }}\n",
    )
    (problem,) = _problems(path, {"HOME": str(scratch)})
    assert problem.startswith("plugins.example.permissions.fs: ")
    assert f"at most {MAX_FS_PATTERNS} are allowed" in problem


def test_the_cli_refuses_an_import_path_into_the_workspace(layout: tuple[Path, Path]) -> None:
    """PYTHONPATH into the workspace would let a job's file shadow a module the host imports."""
    scratch, workspace = layout
    config = _config(scratch / "etc" / "plugbox.toml", scratch, workspace)
    lib = workspace / ".plugbox" / "eve"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(scratch), "PYTHONPATH": str(lib)}
    out = subprocess.run(
        [plugbox_path(), "--config", str(config), "jobs", "list"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 2, out.stderr
    assert "plugbox would import code from the workspace" in out.stderr
    assert f"import path entry {str(lib)!r}" in out.stderr


def test_a_config_planted_below_a_marked_workspace_is_refused_whatever_it_names(
    layout: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The operator's config at the workspace root; reading it marks the root. A job then plants
    # a plugbox.toml in a folder it may write, naming another workspace, and the operator runs
    # plugbox from that folder: the file lies below a marked root, so it is refused.
    scratch, workspace = layout
    env = {"HOME": str(scratch)}
    load_config(_config(workspace / "plugbox.toml", scratch, workspace), env=env)
    assert (workspace / ".plugbox-workspace").is_file()
    elsewhere = scratch / "elsewhere"
    elsewhere.mkdir()
    folder = workspace / ".plugbox" / "eve"
    _config(folder / "plugbox.toml", scratch, elsewhere, 'host_id = "eve-was-here"\n')
    monkeypatch.chdir(folder)
    (problem,) = _problems(None, env)
    assert f"inside the workspace {workspace} (marked by .plugbox-workspace)" in problem
    # The control: without the mark (a workspace no host has used) the same file would be read.
    (workspace / ".plugbox-workspace").unlink()
    assert load_config(None, env=env).host_id == "eve-was-here"

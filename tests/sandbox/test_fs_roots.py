"""Which workspace directories Landlock opens for a permission set (the kernel half of fs rules)."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

from plugbox.sandbox.fs_roots import static_prefix, workspace_roots
from plugbox.sandbox.outcome import EVERY_SYSTEM_PATH, Enforcement, capability_levels
from plugbox.sandbox.request import DEFAULT_QUOTAS, RunContext, RunRequest
from plugbox.sandbox.spawn_spec import (
    code_paths,
    kernel_grants,
    spawn_spec,
    with_kernel_grants,
    workspace_problem,
)
from plugbox.sandbox.workspace import WriteRootRefused, prepare_write_roots
from plugbox.sdk import permissions as perms


@pytest.mark.parametrize(
    ("pattern", "write", "expected"),
    [
        (".plugbox/x/**", False, ".plugbox/x"),
        ("data/*.json", True, "data"),
        ("*.log", False, ""),
        ("/pyproject.toml", False, "pyproject.toml"),
        ("/pyproject.toml", True, ""),
        ("out/report.txt", True, "out"),
        ("build/", True, ""),
        ("/build/", True, "build"),
        ("!keep.txt", False, None),
    ],
)
def test_static_prefix(pattern: str, write: bool, expected: str | None) -> None:
    assert static_prefix(pattern, write=write) == expected


def test_plugin_workspace_opens_only_its_own_directory_for_writing() -> None:
    read, write = workspace_roots(perms.presets.plugin_workspace("example"))
    assert write == (".plugbox/example",)
    assert read == (".plugbox/example", "package.json", "pyproject.toml")


def test_grants_narrow_the_kernel_roots() -> None:
    declared = perms.combine(perms.presets.plugin_workspace("a"), perms.presets.read_workspace())
    grant = perms.Permissions(fs=perms.FsPermissions(mode="read", allow=("docs/**",)))
    read, write = workspace_roots(declared, (grant,))
    assert read == ("docs",)
    assert write == ()


@pytest.mark.parametrize("pattern", ["*.log", "**", "/notes.txt", "/*.txt"])
def test_the_workspace_root_is_never_a_write_root(pattern: str) -> None:
    declared = perms.Permissions(
        fs=perms.FsPermissions(mode="readWrite", allow=(pattern, ".plugbox/x/**"))
    )
    read, write = workspace_roots(declared)
    assert write == (".plugbox/x",)  # narrower than declared (lint refuses it), never wider
    assert ".plugbox/x" in read or "" in read


def test_a_wide_operator_grant_keeps_what_was_declared() -> None:
    grant = perms.Permissions(fs=perms.FsPermissions(mode="readWrite", allow=("**",)))
    _, write = workspace_roots(perms.presets.plugin_workspace("a"), (grant,))
    assert write == (".plugbox/a",)


def _request(workspace: Path, permissions: perms.Permissions, learn: bool = False) -> RunRequest:
    context = RunContext(job_id="j", plugin_id="p", plugin_version="1", run_id="-")
    return RunRequest(
        handler="x:y", workspace=str(workspace), context=context, permissions=permissions,
        learn=learn,
    )  # fmt: skip


def test_kernel_grants_say_what_landlock_opens_beside_the_declaration(tmp_path: Path) -> None:
    declared = perms.combine(
        perms.presets.plugin_workspace("a"),
        perms.Permissions(fs=perms.FsPermissions(allow=("*.md",))),
        perms.presets.shell_commands("echo *"),
    )
    grants = kernel_grants(_request(tmp_path, declared), code_paths())
    assert grants.read == (".",), grants  # '*.md' reads the whole workspace at the kernel
    assert grants.write == (".plugbox/a",)
    echo = os.path.realpath(shutil.which("echo") or "")
    assert isinstance(grants.execute, tuple) and echo in grants.execute
    assert not any(p.endswith(("/touch", "/sh", "/dash")) for p in grants.execute)
    levels = capability_levels(
        landlock=True, netns=True, seccomp=True, cgroup_memory=True, cgroup_pids=True
    )
    base = Enforcement(mode="sandbox", **levels, landlock_abi=7)
    recorded = with_kernel_grants(base, _request(tmp_path, declared), code_paths())
    assert recorded.kernel == grants and recorded.shell == "kernel"
    assert any("read the whole workspace" in n for n in recorded.notes)
    assert any("dynamic loader" in n for n in recorded.notes)


def test_the_spec_gives_execute_only_to_those_files(tmp_path: Path) -> None:
    declared = perms.presets.shell_commands("echo *")
    spec, write_roots = spawn_spec(_request(tmp_path, declared), DEFAULT_QUOTAS, code_paths())
    assert write_roots == ()
    assert os.path.realpath(shutil.which("echo") or "") in spec.landlock_read_exec
    assert "/usr" in spec.landlock_read_only  # the system stays readable, not executable
    assert all(os.path.realpath(p) == p for p in spec.landlock_read_only)  # no link to follow
    without_shell, _ = spawn_spec(
        _request(tmp_path, perms.Permissions()), DEFAULT_QUOTAS, code_paths()
    )
    assert without_shell.landlock_read_exec == ()


def test_a_program_the_host_path_finds_inside_the_workspace_is_never_executable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = tmp_path / "ws"
    (workspace / "tools").mkdir(parents=True)
    shutil.copy(shutil.which("true") or "", workspace / "tools" / "mytool")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "mytool").symlink_to(workspace / "tools" / "mytool")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    declared = perms.presets.shell_commands("mytool")
    grants = kernel_grants(_request(workspace, declared), code_paths())
    assert grants.execute == ()


def test_a_learn_run_never_writes_the_root_and_executes_every_system_path(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "link").symlink_to("/")  # a link is not a folder to open
    (tmp_path / "file.txt").write_text("x")
    declared = perms.presets.plugin_workspace("a")
    grants = kernel_grants(_request(tmp_path, declared, learn=True), code_paths())
    assert grants.read == (".",)
    assert grants.write == (".plugbox/a", "src")
    assert grants.execute == EVERY_SYSTEM_PATH
    levels = capability_levels(
        landlock=True, netns=True, seccomp=True, cgroup_memory=True, cgroup_pids=True
    )
    base = Enforcement(mode="sandbox", **levels, landlock_abi=7)
    learned = with_kernel_grants(base, _request(tmp_path, declared, learn=True), code_paths())
    assert learned.shell == "best-effort"  # the kernel does not narrow exec in a learn run


@pytest.mark.parametrize("where", ["x/out", "x/out/deeper"])
def test_prepare_write_roots_refuses_a_planted_link(tmp_path: Path, where: str) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    workspace = tmp_path / "ws"
    (workspace / "x").mkdir(parents=True)
    (workspace / "x" / "out").symlink_to(victim)
    with pytest.raises(WriteRootRefused) as refused:
        prepare_write_roots(str(workspace), [where])
    assert refused.value.errno == errno.ELOOP
    message = workspace_problem(str(workspace), refused.value)
    assert message.startswith(f"the write root {where!r} cannot be prepared")
    assert "symbolic link" in message
    assert list(victim.iterdir()) == []  # nothing made through the link
    # Control: a real folder there is prepared, its missing children made.
    (workspace / "x" / "out").unlink()
    prepare_write_roots(str(workspace), [where])
    assert (workspace / where).is_dir() and not (workspace / where).is_symlink()

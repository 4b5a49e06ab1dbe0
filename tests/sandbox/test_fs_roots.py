"""Which workspace directories Landlock opens for a permission set (the kernel half of fs rules)."""

from __future__ import annotations

import pytest

from plugbox.sandbox.fs_roots import static_prefix, workspace_roots
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

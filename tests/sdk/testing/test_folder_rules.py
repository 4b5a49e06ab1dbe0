"""Folder rules mean the folder: every ``runtime.fs`` method, for ``x/``, ``x/**`` and ``x``, in both modes.

Each case runs one call in the real sandbox (proxy and Landlock both decide) through the harness,
as an author's test would. ``x/`` and ``x`` allow the folder itself and what is inside it; ``x/**``
only what is inside, and a call on the folder itself is refused with a hint. Every hint is then
followed: the rule it suggests replaces the declared one, the call runs again and must succeed.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from plugbox.sandbox import SandboxRunner
from plugbox.sdk import permissions as perms
from plugbox.sdk.testing import Harness, RunResult

# A folder below another and one in the workspace root, where the rules must say `/` to anchor.
PATTERNS = {
    ".plugbox/digest": {
        "x/": ".plugbox/digest/",
        "x/**": ".plugbox/digest/**",
        "x": ".plugbox/digest",
    },
    "data": {"x/": "/data/", "x/**": "data/**", "x": "/data"},
}
HINT = re.compile(r"allow '([^']+)' instead")
IS_DIR = {"error": "IsADirectoryError"}  # the kernel and the proxy word it apart


class Call:
    """One fs call, whether it writes, whether it names the folder itself, and its answer."""

    def __init__(
        self, method: str, *args: Any, writes: bool, folder: bool, expect: Any, **kwargs: Any
    ) -> None:
        self.method, self.args, self.kwargs = method, list(args), kwargs
        self.writes, self.folder, self.expect = writes, folder, expect
        self.id = f"{method}({', '.join(repr(a) for a in args)})"

    def config(self, folder: str) -> dict[str, Any]:
        """The job's config with the folder's real path in place of ``x``."""
        args = [folder + a[1:] if a == "x" or a.startswith("x/") else a for a in self.args]
        return {"method": self.method, "args": args, "kwargs": self.kwargs}


CALLS = [
    Call("exists", "x", writes=False, folder=True, expect={"value": True}),
    Call(
        "stat", "x", writes=False, folder=True, expect={"value": {"is_dir": True, "is_file": False}}
    ),
    Call("listdir", "x", writes=False, folder=True, expect={"value": ["f.txt", "sub"]}),
    Call("read_text", "x", writes=False, folder=True, expect=IS_DIR),
    Call("read_bytes", "x", writes=False, folder=True, expect=IS_DIR),
    Call("mkdir", "x", writes=True, folder=True, expect={"value": None}, exist_ok=True),
    Call("write_text", "x", "new", writes=True, folder=True, expect=IS_DIR),
    Call("exists", "x/f.txt", writes=False, folder=False, expect={"value": True}),
    Call("exists", "x/gone", writes=False, folder=False, expect={"value": False}),
    Call(
        "stat",
        "x/f.txt",
        writes=False,
        folder=False,
        expect={"value": {"is_dir": False, "is_file": True}},
    ),
    Call("listdir", "x/sub", writes=False, folder=False, expect={"value": []}),
    Call("read_text", "x/f.txt", writes=False, folder=False, expect={"value": "hi"}),
    Call("read_bytes", "x/f.txt", writes=False, folder=False, expect={"value": "hi"}),
    Call("write_text", "x/g.txt", "g", writes=True, folder=False, expect={"value": None}),
    Call("write_bytes", "x/g.bin", "g", writes=True, folder=False, expect={"value": None}),
    Call("append_text", "x/f.txt", "!", writes=True, folder=False, expect={"value": None}),
    Call("mkdir", "x/new", writes=True, folder=False, expect={"value": None}),
    Call("remove", "x/f.txt", writes=True, folder=False, expect={"value": None}),
    Call("remove", "x/sub", writes=True, folder=False, expect={"value": None}),
    Call("rename", "x/f.txt", "x/h.txt", writes=True, folder=False, expect={"value": None}),
    Call("rename", "x/sub", "x/sub2", writes=True, folder=False, expect={"value": None}),
]


def run_call(
    harness: Harness, jobs: ModuleType, call: Call, folder: str, pattern: str, mode: str
) -> RunResult:
    workspace = harness.workspace
    (workspace / folder / "sub").mkdir(parents=True, exist_ok=True)
    (workspace / folder / "f.txt").write_text("hi")
    for made in ("g.txt", "g.bin", "h.txt", "new", "sub2"):
        assert not (workspace / folder / made).exists()
    declared = perms.Permissions(fs=perms.FsPermissions(mode=mode, allow=[pattern]))
    assert perms.lint_permissions(declared) == []
    result = harness.run(jobs.fs_call, permissions=declared, config=call.config(folder))
    assert result.ok, result.error
    assert isinstance(result.result, dict)
    result.result.pop("message", None)  # an OSError's text: the kernel's or the proxy's words
    return result


@pytest.mark.parametrize("mode", ["read", "readWrite"])
@pytest.mark.parametrize("shape", ["x/", "x/**", "x"])
@pytest.mark.parametrize("folder", list(PATTERNS))
@pytest.mark.parametrize("call", CALLS, ids=[c.id for c in CALLS])
def test_folder_rules(
    plugbox: Harness,
    plugbox_runner: SandboxRunner,
    call_jobs: ModuleType,
    tmp_path: Path,
    call: Call,
    folder: str,
    shape: str,
    mode: str,
) -> None:
    pattern = PATTERNS[folder][shape]
    declared = perms.Permissions(fs=perms.FsPermissions(mode=mode, allow=[pattern]))
    if (folder, shape, mode) == ("data", "x", "readWrite"):
        # A file rule's kernel write root is its parent, here the workspace root: refused when
        # declared, with the folder rule to write instead.
        (problem,) = perms.lint_permissions(declared)
        assert "(or '/data/' if it is a folder)" in problem.message
        return
    got = run_call(plugbox, call_jobs, call, folder, pattern, mode).result
    if call.folder and shape == "x/**":
        assert "denied" in got, got
        assert f"'{pattern}' matches what is inside {folder}, not {folder} itself" in got[
            "reason"
        ] or (
            call.writes and mode == "read"  # no rule writes here at all: nothing to hint
        ), got
    elif call.writes and mode == "read":
        assert got == {
            "denied": f"fs[0].allow[0] '{pattern}'",
            "reason": "that rule set is read-only",
        }
    else:
        assert got == call.expect
        return
    hint = HINT.search(got["reason"])
    if hint is None:
        assert got["reason"] in ("that rule set is read-only", "no fs rule allows writing here")
        return
    # Follow the hint in a fresh workspace: the rule it names must allow the call, and must not
    # reach a folder of the same name elsewhere (`docs/` would: it has no `/` to anchor it).
    suggested = hint.group(1)
    with Harness(tmp_path / "after-hint", runner=plugbox_runner) as again:
        followed = run_call(again, call_jobs, call, folder, suggested, mode).result
    assert followed == call.expect, f"the hint {hint.group(0)!r} did not lead to a working rule"
    wider = perms.Permissions(fs=perms.FsPermissions(mode=mode, allow=[suggested]))
    assert not perms.decide("fs.read", f"elsewhere/{folder}", wider, is_dir=True).allowed


X = ".plugbox/digest"


def test_a_folder_rule_answers_for_its_folder_before_it_exists(
    plugbox: Harness, call_jobs: ModuleType
) -> None:
    declared = perms.Permissions(fs=perms.FsPermissions(mode="read", allow=[f"{X}/"]))
    config = {"method": "exists", "args": [X]}
    result = plugbox.run(call_jobs.fs_call, permissions=declared, config=config)
    assert result.result == {"value": False}, result.error
    assert result.denials == ()  # the probes that found the folder's type are not calls


@pytest.mark.parametrize(
    ("pattern", "expect"),
    [
        # Landlock grants the tree below x; removing x would change .plugbox, which is not granted.
        (f"{X}/", {"denied": "kernel (Landlock)"}),
        # A literal rule's kernel write root is the parent (it may be a file to create).
        (X, {"value": None}),
    ],
)
def test_removing_the_folder_itself(
    plugbox: Harness, call_jobs: ModuleType, pattern: str, expect: dict[str, Any]
) -> None:
    (plugbox.workspace / X).mkdir(parents=True)
    declared = perms.Permissions(fs=perms.FsPermissions(mode="readWrite", allow=[pattern]))
    config = {"method": "remove", "args": [X]}
    result = plugbox.run(call_jobs.fs_call, permissions=declared, config=config)
    assert result.ok, result.error
    got = dict(result.result)
    reason = got.pop("reason", "")
    assert got == expect
    if "denied" in expect:
        assert "what is inside it can be removed, the folder itself cannot" in reason


@pytest.mark.parametrize("method", ["listdir", "exists", "stat"])
def test_the_workspace_root_hint_leads_to_a_rule_that_allows_it(
    plugbox: Harness,
    plugbox_runner: SandboxRunner,
    call_jobs: ModuleType,
    tmp_path: Path,
    method: str,
) -> None:
    declared = perms.Permissions(fs=perms.FsPermissions(mode="read", allow=[f"{X}/"]))
    config = {"method": method, "args": ["."]}
    refused = plugbox.run(call_jobs.fs_call, permissions=declared, config=config).result
    assert refused == {
        "denied": "default deny",
        "reason": "listing the workspace root needs an allow of '*' or '**'",
    }
    for n, suggested in enumerate(re.findall(r"'([^']+)'", refused["reason"])):
        allowed = perms.Permissions(fs=perms.FsPermissions(mode="read", allow=[suggested]))
        with Harness(tmp_path / f"after-hint-{n}", runner=plugbox_runner) as again:
            got = again.run(call_jobs.fs_call, permissions=allowed, config=config)
        assert got.result is not None and "value" in got.result, (suggested, got.result)

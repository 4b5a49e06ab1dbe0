"""The decision table: operation + target + permissions -> verdict and the rule that decided.

Every row goes through the public ``perms.decide`` (or the effective/layered policy) exactly as the
sandbox proxies and the broker will. Deny beats allow; default deny; path and host tricks are
normalised or refused before any rule is consulted.
"""

from __future__ import annotations

import pytest

from plugbox.sdk import PermissionDenied
from plugbox.sdk import permissions as perms
from plugbox.sdk.permissions import FsPermissions, NetPermissions, Operation, Permissions

WORKSPACE = perms.combine(
    perms.presets.plugin_workspace("example"),
    Permissions(fs=FsPermissions(mode="read", allow=("docs/**",))),
    Permissions(fs=FsPermissions(mode="readWrite", allow=("data/*",), deny=("data/secret*",))),
)
WHOLE = perms.presets.read_workspace()
NET = Permissions(
    net=NetPermissions(
        allow_hosts=(
            "api.openai.com",
            "*.qdrant.io",
            "localhost:6333",
            "10.0.0.5",
            "[::1]:8080",
            "192.168.1.0/24",
        ),
        deny_hosts=("evil.qdrant.io", "192.168.1.1"),
    )
)
ENV = perms.combine(perms.presets.env_vars("OPENAI_API_KEY", "MYAPP_*"))
SHELL = perms.combine(
    perms.presets.shell_commands("git status", "git log **", "ls *"),
    Permissions(shell={"deny": ["git log --exec **"]}),  # type: ignore[arg-type]
)
NO_CAP = Permissions(shell={"allow": ["git status"]})  # type: ignore[arg-type]
EMPTY = Permissions()
SETS = {
    "ws": WORKSPACE,
    "whole": WHOLE,
    "net": NET,
    "env": ENV,
    "sh": SHELL,
    "nocap": NO_CAP,
    "empty": EMPTY,
}

A, D = True, False
LONG = "a/" * 2100 + "x"

CASES = [
    # --- fs: the plugin workspace ------------------------------------------------------------
    ("ws", "fs.write", ".plugbox/example/cron.log", False, A, "fs[0].allow[0] '.plugbox/example'"),
    ("ws", "fs.read", ".plugbox/example/cron.log", False, A, "fs[0].allow[0]"),
    ("ws", "fs.write", ".plugbox/example", True, A, "fs[0].allow[0] '.plugbox/example'"),
    ("ws", "fs.write", ".plugbox/example/sub/deep/file.txt", False, A, "fs[0].allow[0]"),
    ("ws", "fs.write", "./.plugbox/example/x", False, A, "fs[0].allow[0]"),
    ("ws", "fs.write", ".plugbox//example/x", False, A, "fs[0].allow[0]"),
    ("ws", "fs.write", ".plugbox/other/x", False, D, "default deny"),
    ("ws", "fs.write", ".plugbox", True, D, "default deny"),
    # deny beats allow, inside the allowed tree
    ("ws", "fs.read", ".plugbox/example/key.pem", False, D, "fs[0].deny[2] '**/*.pem'"),
    ("ws", "fs.write", ".plugbox/example/.env", False, D, "'**/*.env'"),
    ("ws", "fs.read", ".plugbox/example/prod.env", False, D, "'**/*.env'"),
    ("ws", "fs.read", ".plugbox/example/.env.local", False, D, "'**/.env.*'"),
    ("ws", "fs.read", ".plugbox/example/id.key", False, D, "'**/*.key'"),
    ("ws", "fs.read", ".plugbox/example/node_modules/x/index.js", False, D, "node_modules"),
    ("ws", "fs.read", ".plugbox/example/.git/config", False, D, "'**/.git/**'"),
    # a deny from one rule set applies to every set
    ("ws", "fs.write", "data/secret.txt", False, D, "fs[3].deny[0] 'data/secret*'"),
    ("ws", "fs.read", "data/secret", False, D, "'data/secret*'"),
    ("ws", "fs.write", "data/cert.pem", False, D, "'**/*.pem'"),
    # each rule set keeps its own mode
    ("ws", "fs.read", "pyproject.toml", False, A, "fs[1].allow[0] '/pyproject.toml'"),
    ("ws", "fs.read", "sub/pyproject.toml", False, D, "default deny"),
    ("ws", "fs.write", "pyproject.toml", False, D, "fs[1].allow[0]"),
    ("ws", "fs.read", "docs/guide/index.md", False, A, "fs[2].allow[0] 'docs/**'"),
    ("ws", "fs.write", "docs/guide/index.md", False, D, "read-only"),
    ("ws", "fs.write", "data/report.json", False, A, "fs[3].allow[0] 'data/*'"),
    # gitignore meaning: 'data/*' matches the directory data/sub, so everything under it
    ("ws", "fs.write", "data/sub/x.json", False, A, "fs[3].allow[0]"),
    # path tricks are refused before matching
    ("ws", "fs.read", "../etc/passwd", False, D, "path check"),
    ("ws", "fs.read", "/etc/passwd", False, D, "path check"),
    ("ws", "fs.read", "//etc/passwd", False, D, "path check"),
    ("ws", "fs.write", "data/../x", False, D, "path check"),
    ("ws", "fs.write", ".plugbox/example/../../etc/passwd", False, D, "path check"),
    ("ws", "fs.write", ".plugbox/example/a\x00b", False, D, "path check"),
    ("ws", "fs.write", ".plugbox/example/" + LONG, False, D, "path check"),
    ("ws", "fs.write", ".plugbox/example/" + "n" * 256, False, D, "path check"),
    # case and unicode look-alikes are different files on Linux, so they are simply not allowed
    ("ws", "fs.write", ".PLUGBOX/example/x", False, D, "default deny"),
    ("ws", "fs.write", ".plugbox/ex\u0430mple/x", False, D, "default deny"),
    # the workspace root
    ("ws", "fs.read", ".", True, D, "default deny"),
    ("ws", "fs.write", "", True, D, "default deny"),
    ("whole", "fs.read", ".", True, A, "whole workspace"),
    ("whole", "fs.read", "src/app/main.py", False, A, "fs[0].allow[0] '**'"),
    ("whole", "fs.write", "src/app/main.py", False, D, "read-only"),
    ("whole", "fs.read", "deploy/server.key", False, D, "'**/*.key'"),
    ("empty", "fs.read", "anything.txt", False, D, "default deny"),
    # --- net -------------------------------------------------------------------------------
    ("net", "net.connect", "api.openai.com", False, A, "net.allow_hosts[0] 'api.openai.com'"),
    ("net", "net.connect", "api.openai.com:443", False, A, "net.allow_hosts[0]"),
    ("net", "net.connect", "API.OpenAI.com.", False, A, "net.allow_hosts[0]"),
    ("net", "net.connect", "x.qdrant.io", False, A, "net.allow_hosts[1] '*.qdrant.io'"),
    ("net", "net.connect", "a.b.qdrant.io:6333", False, A, "net.allow_hosts[1]"),
    ("net", "net.connect", "qdrant.io", False, D, "default deny"),
    ("net", "net.connect", "evilqdrant.io", False, D, "default deny"),
    ("net", "net.connect", "evil.qdrant.io", False, D, "net.deny_hosts[0] 'evil.qdrant.io'"),
    ("net", "net.connect", "localhost:6333", False, A, "net.allow_hosts[2] 'localhost:6333'"),
    ("net", "net.connect", "localhost:6334", False, D, "default deny"),
    ("net", "net.connect", "localhost", False, D, "default deny"),
    ("net", "net.connect", "127.0.0.1:6333", False, A, "'localhost:6333'"),
    ("net", "net.connect", "2130706433:6333", False, A, "'localhost:6333'"),
    ("net", "net.connect", "127.1:6334", False, D, "default deny"),
    ("net", "net.connect", "10.0.0.5", False, A, "net.allow_hosts[3] '10.0.0.5'"),
    ("net", "net.connect", "012.0.0.5", False, A, "'10.0.0.5'"),
    ("net", "net.connect", "167772165:80", False, A, "'10.0.0.5'"),
    ("net", "net.connect", "0xa.0.0.5", False, A, "'10.0.0.5'"),
    ("net", "net.connect", "10.0.0.6", False, D, "default deny"),
    ("net", "net.connect", "[::1]:8080", False, A, "'[::1]:8080'"),
    ("net", "net.connect", "[0:0:0:0:0:0:0:1]:8080", False, A, "'[::1]:8080'"),
    ("net", "net.connect", "[::1]:8081", False, D, "default deny"),
    ("net", "net.connect", "[::ffff:10.0.0.5]:80", False, A, "'10.0.0.5'"),
    ("net", "net.connect", "192.168.1.77", False, A, "'192.168.1.0/24'"),
    ("net", "net.connect", "192.168.1.1", False, D, "net.deny_hosts[1] '192.168.1.1'"),
    ("net", "net.connect", "user@api.openai.com", False, D, "host check"),
    ("net", "net.connect", "", False, D, "host check"),
    ("net", "net.connect", "api.openai.com:99999", False, D, "host check"),
    ("empty", "net.connect", "api.openai.com", False, D, "default deny"),
    ("empty", "net.connect", "0", False, D, "default deny"),
    # --- env -------------------------------------------------------------------------------
    ("env", "env.read", "OPENAI_API_KEY", False, A, "env.allow 'OPENAI_API_KEY'"),
    ("env", "env.read", "MYAPP_TOKEN", False, A, "env.allow 'MYAPP_*'"),
    ("env", "env.read", "MYAPPX", False, D, "default deny"),
    ("env", "env.read", "HOME", False, D, "default deny"),
    ("env", "env.read", "openai_api_key", False, D, "default deny"),
    # --- shell -----------------------------------------------------------------------------
    ("sh", "shell.run", "git status", False, A, "shell.allow[0] 'git status'"),
    ("sh", "shell.run", "git status --short", False, D, "default deny"),
    ("sh", "shell.run", "git log --oneline -n 10", False, A, "shell.allow[1] 'git log **'"),
    ("sh", "shell.run", "git log", False, A, "shell.allow[1]"),
    ("sh", "shell.run", "git log --exec=sh", False, A, "shell.allow[1]"),
    ("sh", "shell.run", "git log --exec sh", False, D, "shell.deny[0] 'git log --exec **'"),
    ("sh", "shell.run", "git -c core.pager=sh log", False, D, "default deny"),
    ("sh", "shell.run", "git status; rm -rf /", False, D, "default deny"),
    ("sh", "shell.run", "git status && id", False, D, "default deny"),
    ("sh", "shell.run", "/usr/bin/git status", False, D, "command check"),
    ("sh", "shell.run", "./git status", False, D, "command check"),
    ("sh", "shell.run", "ls foo", False, A, "shell.allow[2] 'ls *'"),
    ("sh", "shell.run", "ls foo bar", False, D, "default deny"),
    ("sh", "shell.run", "ls 'foo bar'", False, A, "shell.allow[2]"),
    ("sh", "shell.run", "git status 'unterminated", False, D, "command check"),
    ("sh", "shell.run", "", False, D, "command check"),
    ("nocap", "shell.run", "git status", False, D, "capabilities"),
]


@pytest.mark.parametrize(
    ("name", "operation", "target", "is_dir", "allowed", "rule"),
    CASES,
    ids=[f"{c[0]}-{c[1]}-{c[2][:40]!r}" for c in CASES],
)
def test_decision_table(
    name: str, operation: perms.Operation, target: str, is_dir: bool, allowed: bool, rule: str
) -> None:
    verdict = perms.decide(operation, target, SETS[name], is_dir=is_dir)
    assert verdict.allowed is allowed, verdict
    assert rule in f"{verdict.rule}: {verdict.reason}", verdict


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 60


def test_shell_argv_list_is_decided_like_the_string() -> None:
    assert perms.decide("shell.run", ["git", "status"], SHELL).allowed  # type: ignore[arg-type]
    assert not perms.decide("shell.run", ["git", "status;", "id"], SHELL).allowed  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("target", "address", "allowed", "fragment"),
    [
        ("api.openai.com:443", "104.18.7.192", True, "net.allow_hosts[0]"),
        ("api.openai.com:443", "127.0.0.1", False, "loopback"),
        ("x.qdrant.io", "169.254.169.254", False, "link-local"),
        ("x.qdrant.io", "10.1.2.3", False, "private"),
        ("x.qdrant.io", "::ffff:127.0.0.1", False, "loopback"),
        ("x.qdrant.io", "0.0.0.0", False, "unspecified"),
        ("localhost:6333", "127.0.0.1", True, "localhost:6333"),
        ("localhost:6333", "::1", True, "localhost:6333"),
        ("10.0.0.5:80", "10.0.0.5", True, "10.0.0.5"),
        ("x.qdrant.io", "192.168.1.1", False, "net.deny_hosts[1]"),
        ("evil.qdrant.io", "93.184.216.34", False, "net.deny_hosts[0]"),
    ],
)
def test_resolved_address_must_be_allowed_too(
    target: str, address: str, allowed: bool, fragment: str
) -> None:
    verdict = perms.compile_policy(NET).decide_resolved(target, address)
    assert verdict.allowed is allowed, verdict
    assert fragment in verdict.rule + verdict.reason, verdict


def test_denial_raises_permission_denied_naming_rule() -> None:
    verdict = perms.decide("fs.read", ".plugbox/example/key.pem", WORKSPACE)
    with pytest.raises(PermissionDenied) as caught:
        verdict.raise_if_denied()
    assert caught.value.operation == "fs.read"
    assert caught.value.target == ".plugbox/example/key.pem"
    assert "'**/*.pem'" in str(caught.value)
    assert isinstance(caught.value, PermissionError)


def test_operator_grant_narrows_declared_permissions() -> None:
    declared = perms.presets.plugin_workspace("example")
    granted = Permissions(fs=FsPermissions(mode="read", allow=(".plugbox/**",)))
    policy = perms.effective_policy(declared, granted)
    assert policy.decide("fs.read", ".plugbox/example/x").allowed
    write = policy.decide("fs.write", ".plugbox/example/x")
    assert not write.allowed
    assert write.rule.startswith("operator grant[0]")
    assert "read-only" in write.reason


def test_grant_cannot_widen_declared_permissions() -> None:
    declared = perms.presets.plugin_workspace("example")
    granted = perms.presets.read_workspace()
    verdict = perms.effective_policy(declared, granted).decide("fs.read", "src/app.py")
    assert not verdict.allowed
    assert verdict.rule.startswith("declared")


def test_unknown_operation_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown operation"):
        perms.decide("fs.delete", "x", EMPTY)  # type: ignore[arg-type]


@pytest.mark.parametrize("operation", ["fs.read", "fs.write"])
def test_refusing_a_folder_under_an_allow_of_its_contents_says_what_to_write(
    operation: Operation,
) -> None:
    permissions = perms.Permissions(
        fs=perms.FsPermissions(mode="readWrite", allow=[".plugbox/x/**"])
    )
    verdict = perms.compile_policy(permissions).decide(operation, ".plugbox/x", is_dir=True)
    assert not verdict.allowed
    assert (
        "'.plugbox/x/**' matches what is inside .plugbox/x, not .plugbox/x itself" in verdict.reason
    )
    assert "allow '.plugbox/x/' instead" in verdict.reason
    inside = perms.compile_policy(permissions).decide(operation, ".plugbox/x/a.txt")
    assert inside.allowed

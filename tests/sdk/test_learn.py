"""Learn mode's pure side: the proposed set allows what was recorded and no more than it must."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from plugbox.sdk import permissions as perms
from plugbox.sdk.permissions.learn import (
    learning_permissions,
    minimal_permissions,
    missing_calls,
    render_permissions,
    unused_rules,
)


@dataclass(frozen=True)
class Call:
    operation: str
    target: str
    allowed: bool = False
    rule: str = "default deny"
    is_dir: bool = False


def test_paths_with_glob_characters_are_proposed_as_themselves_only() -> None:
    proposal = minimal_permissions([Call("fs.write", "data/a*b[1].txt")])
    assert proposal.fs == (perms.FsPermissions(mode="readWrite", allow=("/data/a\\*b\\[1].txt",)),)
    policy = perms.compile_policy(proposal)
    assert policy.decide("fs.write", "data/a*b[1].txt").allowed
    assert not policy.decide("fs.write", "data/aXb1.txt").allowed
    assert not policy.decide("fs.write", "other/data/a*b[1].txt").allowed


def test_a_written_file_is_not_also_proposed_for_reading_and_directories_absorb_contents() -> None:
    proposal = minimal_permissions(
        [
            Call("fs.write", "out", is_dir=True),
            Call("fs.write", "out/a.txt"),
            Call("fs.read", "out/a.txt"),
            Call("fs.read", "in.csv"),
        ]
    )
    assert proposal.fs == (
        perms.FsPermissions(mode="readWrite", allow=("/out/",)),
        perms.FsPermissions(mode="read", allow=("/in.csv",)),
    )


def test_listing_the_workspace_root_needs_a_root_level_allow() -> None:
    proposal = minimal_permissions([Call("fs.read", ".", is_dir=True)])
    assert proposal.fs == (perms.FsPermissions(mode="read", allow=("/*",)),)


def test_form_refusals_and_resolved_addresses_never_become_rules() -> None:
    proposal = minimal_permissions(
        [
            Call("fs.read", "../etc/passwd", rule="path check"),
            Call("net.connect", "api.example.com:443 -> 93.184.216.34"),
            Call("shell.run", "/bin/sh -c id", rule="command check"),
        ]
    )
    assert proposal == perms.Permissions()


def test_missing_and_unused_are_reported_with_their_rules() -> None:
    declared = perms.Permissions(
        net=perms.NetPermissions(allow_hosts=("api.example.com", "unused.example.com")),
        capabilities=("shell",),
    )
    calls = [
        Call(
            "net.connect",
            "api.example.com:443",
            allowed=True,
            rule="net.allow_hosts[0] 'api.example.com'",
        ),
        Call("env.read", "TOKEN"),
    ]
    assert unused_rules(declared, calls) == (
        "net.allow_hosts[1] 'unused.example.com'",
        "capabilities 'shell'",
    )
    assert [(m.operation, m.target, m.rule) for m in missing_calls(calls)] == [
        ("env.read", "TOKEN", "default deny")
    ]


def test_the_rendered_set_is_python_that_builds_the_same_set() -> None:
    proposal = minimal_permissions(
        [
            Call("fs.write", "out/a.txt"),
            Call("fs.read", "in.csv"),
            Call("net.connect", "api.example.com:8443"),
            Call("env.read", "TOKEN"),
            Call("shell.run", "git status"),
        ]
    )
    text = render_permissions(proposal)
    assert eval(text, {"perms": perms}) == proposal
    assert render_permissions(perms.Permissions()) == "perms.Permissions()"


def test_a_learn_run_opens_the_workspace_and_execve_but_keeps_quotas() -> None:
    declared = perms.Permissions(quotas=perms.Quotas(timeout_ms=5_000))
    wide = learning_permissions(declared, ["src", "data[1]", "src"])
    assert wide.fs == (
        perms.FsPermissions(mode="read", allow=("**",)),
        perms.FsPermissions(mode="readWrite", allow=("/data\\[1]/", "/src/")),
    )
    assert wide.capabilities == ("shell",)
    assert wide.quotas == declared.quotas


def test_a_learn_run_never_makes_the_workspace_root_writable() -> None:
    wide = learning_permissions(perms.Permissions())
    assert wide.fs == (perms.FsPermissions(mode="read", allow=("**",)),)
    assert not perms.decide("fs.write", "plugbox.toml", wide).allowed
    assert perms.lint_permissions(learning_permissions(perms.Permissions(), ["src"])) == []


@pytest.mark.parametrize("operation", ["fs.chmod", ""])
def test_an_unknown_operation_in_a_record_is_an_error(operation: str) -> None:
    with pytest.raises(ValueError, match="unknown operation"):
        unused_rules(perms.Permissions(), [Call(operation, "x")])


def test_a_file_written_in_the_workspace_root_is_never_proposed() -> None:
    """No rule can make the root writable (lint), so a proposal never tries; the folder is fine."""
    calls = [
        Call("fs.write", "notes.txt", allowed=True, rule="learn"),
        Call("fs.write", "out", allowed=True, rule="learn", is_dir=True),
        Call("fs.write", "out/a.txt", allowed=True, rule="learn"),
    ]
    proposal = minimal_permissions(calls)
    assert proposal.fs == (perms.FsPermissions(mode="readWrite", allow=("/out/",)),)
    assert perms.lint_permissions(proposal) == []

"""assert_denied / assert_allowed: on a run's record or statically, and failures that show the rule."""

from __future__ import annotations

from types import ModuleType

import pytest

from plugbox.sdk import permissions as perms
from plugbox.sdk.testing import Harness, RunResult, assert_allowed, assert_denied

NOTES = ".plugbox/acme-notes/notes.txt"


@pytest.fixture
def env_run(plugbox: Harness, jobs: ModuleType) -> RunResult:
    """A run that read TOKEN and was refused SECRET (which the job caught)."""
    result = plugbox.run(jobs.read_env, env={"TOKEN": "t", "SECRET": "s"})
    assert result.status == "success", result.error
    return result


def test_a_run_assertion_returns_the_access_with_its_rule(env_run: RunResult) -> None:
    denied = assert_denied(env_run, "env.read", "SECRET", rule="default deny")
    assert (denied.allowed, denied.reason) == (False, "not in env.allow")
    allowed = assert_allowed(env_run, "env.read", "TOKEN", rule="env.allow")
    assert allowed.rule == "env.allow 'TOKEN'"
    assert assert_denied(env_run.outcome, "env.read", "SECRET") == denied


def test_a_failed_run_assertion_lists_every_denial_and_access(env_run: RunResult) -> None:
    with pytest.raises(AssertionError) as raised:
        assert_allowed(env_run, "env.read", "SECRET")
    message = str(raised.value)
    assert message.startswith(
        "expected env.read 'SECRET' to have been allowed in this run; "
        "it was denied by rule 'default deny' (not in env.allow)"
    )
    assert "denials (1):\n  denied  env.read 'SECRET' by 'default deny'" in message
    assert "accesses (2):" in message
    assert "allowed env.read 'TOKEN' by \"env.allow 'TOKEN'\"" in message


def test_a_wrong_rule_names_the_rule_that_decided(env_run: RunResult) -> None:
    with pytest.raises(AssertionError, match="by rule 'default deny', not by a rule containing"):
        assert_denied(env_run, "env.read", "SECRET", rule="operator grant[0]")


def test_a_call_the_job_never_made_says_so(env_run: RunResult) -> None:
    with pytest.raises(AssertionError, match="never made by the job"):
        assert_denied(env_run, "net.connect", "evil.example:443")


def test_directory_calls_can_be_told_apart(plugbox: Harness, jobs: ModuleType) -> None:
    result = plugbox.run(jobs.write_note)
    assert_allowed(result, "fs.write", ".plugbox/acme-notes", is_dir=True)
    with pytest.raises(AssertionError, match="never made by the job"):
        assert_allowed(result, "fs.write", ".plugbox/acme-notes", is_dir=False)
    # Targets are compared as the sandbox records them.
    assert_allowed(result, "fs.write", "./.plugbox//acme-notes/notes.txt")


def test_static_checks_use_the_declared_permissions(jobs: ModuleType) -> None:
    allowed = assert_allowed(jobs.write_note, "fs.write", NOTES)
    assert allowed.rule == "fs[0].allow[0] '.plugbox/acme-notes'"
    assert_denied(jobs.write_note, "fs.write", "../x", rule="path check")
    assert_denied(jobs.write_note, "fs.write", ".plugbox/other/x", rule="default deny")
    assert_denied(jobs.write_note, "fs.read", ".plugbox/acme-notes/.env", rule="deny")
    assert_allowed(perms.presets.http_hosts("api.example.com"), "net.connect", "api.example.com")
    assert_denied({"env": {"allow": ["A"]}}, "env.read", "B")


def test_static_checks_take_the_manifest_and_grants(jobs: ModuleType) -> None:
    assert_denied(jobs.ping, "net.connect", "api.example.com:443")
    assert_allowed(jobs.ping, "net.connect", "api.example.com:443", manifest=jobs.manifest)
    read_only = perms.Permissions(fs=perms.FsPermissions(mode="read", allow=[".plugbox/**"]))
    denial = assert_denied(jobs.write_note, "fs.write", NOTES, grants=[read_only])
    assert denial.rule.startswith("operator grant[0]")


def test_a_failed_static_check_names_the_rule(jobs: ModuleType) -> None:
    with pytest.raises(AssertionError) as raised:
        assert_denied(jobs.write_note, "fs.write", NOTES)
    assert str(raised.value) == (
        f"expected fs.write {NOTES!r} to be denied by job 'write-note', "
        "but it is allowed by rule \"fs[0].allow[0] '.plugbox/acme-notes'\""
    )
    with pytest.raises(AssertionError, match="denied by rule 'default deny'"):
        assert_allowed(jobs.write_note, "net.connect", "api.example.com:443")
    with pytest.raises(AssertionError, match="not by a rule containing 'fs\\[1\\]'"):
        assert_allowed(jobs.write_note, "fs.write", NOTES, rule="fs[1]")


def test_a_static_check_of_a_folder_rule_says_to_decide_a_folder() -> None:
    digest = perms.Permissions(fs=perms.FsPermissions(mode="read", allow=[".plugbox/digest/"]))
    with pytest.raises(AssertionError) as raised:
        assert_allowed(digest, "fs.read", ".plugbox/digest")
    assert str(raised.value).endswith(
        "; as a folder it would be allowed: pass is_dir=True to decide it as one"
    )
    assert_allowed(digest, "fs.read", ".plugbox/digest", is_dir=True)
    with pytest.raises(AssertionError) as raised:
        assert_allowed(digest, "fs.read", "elsewhere")
    assert "as a folder" not in str(raised.value)


def test_options_that_do_not_apply_to_a_run_are_refused(env_run: RunResult) -> None:
    with pytest.raises(TypeError, match="not to a run"):
        assert_denied(env_run, "env.read", "SECRET", grants=[perms.Permissions()])

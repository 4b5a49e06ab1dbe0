"""The harness runs a job as the host would — in the sandbox or in-process — and reports it all.

Every test here runs real jobs (tests/sdk/testing/jobs) through the public surface: the
``plugbox`` fixture of the pytest plugin, or a ``Harness`` built directly.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest

from plugbox.sandbox import SandboxRunner
from plugbox.sdk import permissions as perms
from plugbox.sdk.testing import Harness, assert_denied

READ_ONLY_NOTES = perms.Permissions(
    fs=perms.FsPermissions(mode="read", allow=[".plugbox/acme-notes/**"])
)


def test_a_job_runs_in_the_sandbox_and_writes_its_workspace(
    plugbox: Harness, jobs: ModuleType
) -> None:
    result = plugbox.run(jobs.write_note, run_count=3)
    assert result.status == "success", result.error
    assert result.ok
    assert result.mode == "sandbox"
    assert result.result == {"run": 3, "message": "hello"}
    assert (plugbox.workspace / jobs.NOTES).read_text() == "run 3: hello\n"
    assert [(e.level, e.message, e.fields) for e in result.log] == [
        ("info", "note written", {"run": 3})
    ]
    assert [(e.name, e.data) for e in result.events] == [("note.written", {"run": 3})]


def test_config_overlays_the_declared_defaults(plugbox: Harness, jobs: ModuleType) -> None:
    result = plugbox.run(jobs.write_note, config={"message": "hi"})
    assert result.result == {"run": 1, "message": "hi"}


def test_a_failing_job_reports_its_exception_and_traceback(
    plugbox: Harness, jobs: ModuleType
) -> None:
    result = plugbox.run(jobs.boom)
    assert result.status == "failed"
    assert not result.ok
    assert result.error is not None
    assert result.error.type == "ValueError"
    assert "not a number" in result.error.message
    assert "in _parse" in result.error.traceback
    # Shown as a traceback, so `assert result.ok, result.error` explains itself.
    assert repr(result.error).startswith("ValueError: invalid literal for int()")
    assert "in boom" in str(result.error)


def test_clock_facts_and_the_plugin_reach_the_job_context(
    plugbox: Harness, jobs: ModuleType, in_process: bool
) -> None:
    when = datetime(2025, 3, 30, 1, 30, tzinfo=UTC)
    result = plugbox.run(
        jobs.clock,
        manifest=jobs.manifest,
        scheduled_at=when,
        run_count=7,
        attempt=2,
        trigger="retry",
        in_process=in_process,
    )
    assert result.status == "success", result.error
    assert result.result == {
        "job": "acme-notes:clock",
        "version": "1.2.3",
        "scheduled_at": "2025-03-30T01:30:00+00:00",
        "run_count": 7,
        "attempt": 2,
        "trigger": "retry",
        "has_deadline": True,
    }


def test_without_a_manifest_the_job_runs_as_plugin_test(plugbox: Harness, jobs: ModuleType) -> None:
    result = plugbox.run(jobs.clock)
    assert result.result["job"] == "test:clock"


def test_a_naive_scheduled_at_is_refused(plugbox: Harness, jobs: ModuleType) -> None:
    with pytest.raises(ValueError, match="no time zone"):
        plugbox.run(jobs.clock, scheduled_at=datetime(2025, 1, 1))


def test_only_allowed_variables_of_the_given_env_reach_the_job(
    plugbox: Harness, jobs: ModuleType, in_process: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = plugbox.run(
        jobs.read_env, env={"TOKEN": "t0k", "SECRET": "s3cret"}, in_process=in_process
    )
    assert result.status == "success", result.error
    assert result.result == {"token": "t0k", "names": ["TOKEN"], "refused": "default deny"}
    assert_denied(result, "env.read", "SECRET", rule="default deny")

    # The test process's own environment never leaks into a run.
    monkeypatch.setenv("TOKEN", "from-the-test-process")
    assert os.environ["TOKEN"] == "from-the-test-process"
    quiet = plugbox.run(jobs.read_env, in_process=in_process)
    assert quiet.result == {"token": None, "names": [], "refused": "default deny"}


def test_a_grant_narrows_an_allowed_write_into_a_denial(
    plugbox: Harness, jobs: ModuleType, in_process: bool
) -> None:
    assert plugbox.run(jobs.write_note, in_process=in_process).ok
    result = plugbox.run(jobs.write_note, grants=[READ_ONLY_NOTES], in_process=in_process)
    assert result.status == "failed"
    assert result.error is not None and result.error.type == "PermissionDenied"
    denial = assert_denied(result, "fs.write", ".plugbox/acme-notes", rule="operator grant[0]")
    assert denial.is_dir
    assert denial.rule == "operator grant[0] default deny"


def test_permissions_replace_the_declared_set(plugbox: Harness, jobs: ModuleType) -> None:
    result = plugbox.run(jobs.write_note, permissions=perms.presets.read_workspace())
    assert result.status == "failed"
    assert_denied(result, "fs.write", ".plugbox/acme-notes", rule="fs[0].allow[0] '**'")


def test_the_manifest_adds_plugin_level_permissions(plugbox: Harness, jobs: ModuleType) -> None:
    plugbox.http.add("GET", "https://api.example.com/ping", status=204)
    alone = plugbox.run(jobs.ping)
    assert alone.status == "failed"
    assert_denied(alone, "net.connect", "api.example.com:443", rule="default deny")
    with_plugin = plugbox.run(jobs.ping, manifest=jobs.manifest)
    assert with_plugin.result == 204, with_plugin.error


def test_a_job_id_runs_from_its_manifest(plugbox: Harness, jobs: ModuleType) -> None:
    assert plugbox.run("clock", manifest=jobs.manifest).result["job"] == "acme-notes:clock"
    with pytest.raises(LookupError, match="has no job 'nope'; its jobs: write-note, clock, ping"):
        plugbox.run("nope", manifest=jobs.manifest)
    with pytest.raises(TypeError, match="needs manifest="):
        plugbox.run("clock")


def test_a_job_the_manifest_does_not_list_is_refused(plugbox: Harness, jobs: ModuleType) -> None:
    with pytest.raises(LookupError, match="has no job 'boom'"):
        plugbox.run(jobs.boom, manifest=jobs.manifest)


def test_the_request_is_built_as_the_host_builds_it(plugbox: Harness, jobs: ModuleType) -> None:
    request = plugbox.request(jobs.clock, manifest=jobs.manifest, grants=[READ_ONLY_NOTES])
    assert request.handler == "plugbox_harness_jobs:clock"
    assert request.workspace == str(plugbox.workspace)
    assert (request.context.plugin_id, request.context.plugin_version) == ("acme-notes", "1.2.3")
    assert request.permissions == jobs.manifest.declared_permissions("clock")
    assert request.grants == (READ_ONLY_NOTES,)
    assert request.python_path == (str(Path(jobs.__file__).parent),)
    # The job's timeout and its quota are both limits: the smaller one is the run's quota.
    assert plugbox.request(jobs.slow_clock).permissions.quotas.timeout_ms == 3_000
    assert plugbox.request(jobs.write_note).permissions.quotas.timeout_ms == 10_000


def test_in_process_mode_is_debug_mode(
    tmp_path: Path, jobs: ModuleType, plugbox_runner: SandboxRunner
) -> None:
    with Harness(tmp_path / "ws", runner=plugbox_runner, in_process=True) as harness:
        result = harness.run(jobs.write_note)
        assert result.status == "success", result.error
        assert result.mode == "debug"
        assert result.outcome.enforcement.fs == "advisory"
        assert (harness.workspace / jobs.NOTES).read_text() == "run 1: hello\n"
        # One run may still ask for the sandbox.
        assert harness.run(jobs.write_note, in_process=False).mode == "sandbox"

"""The in-process debug mode: one runner call per job, every outcome recorded and bounded."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from plugbox.sandbox.inprocess import run_in_process
from plugbox.sandbox.request import RunContext, RunRequest
from plugbox.sdk import permissions as perms

JOBS = """
import asyncio
from plugbox.sdk import JobContext, job


def hello(ctx):
    ctx.runtime.fs.mkdir(".plugbox/t", parents=True, exist_ok=True)
    ctx.runtime.fs.append_text(".plugbox/t/log", f"run {ctx.run_count}\\n")
    ctx.logger.info("hello", run=ctx.run_count)
    ctx.emit("said", {"run": ctx.run_count})
    return {"ok": True, "cfg": ctx.config.get("x")}


async def async_hello(ctx):
    await asyncio.sleep(0)
    return {"async": True}


def crash(ctx):
    raise RuntimeError("boom")


def sneaky(ctx):
    return ctx.runtime.fs.read_text(".env")


def weird_result(ctx):
    return {"when": object()}


def env_job(ctx):
    return {"names": ctx.runtime.env.names(), "key": ctx.runtime.env.get("ALLOWED")}
"""


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"plugbox_test_jobs_{uuid.uuid4().hex[:8]}"
    code_dir = tmp_path / "code"
    code_dir.mkdir()
    (code_dir / f"{name}.py").write_text(textwrap.dedent(JOBS))
    monkeypatch.syspath_prepend(str(code_dir))
    yield name
    sys.modules.pop(name, None)


def request(module: str, func: str, workspace: Path, **kwargs: object) -> RunRequest:
    return RunRequest(
        handler=f"{module}:{func}",
        workspace=str(workspace),
        context=RunContext(
            job_id=func,
            plugin_id="t",
            plugin_version="0.1.0",
            run_id="r1",
            run_count=4,
            config={"x": 1},
        ),
        permissions=kwargs.pop("permissions", perms.presets.plugin_workspace("t")),  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )


def test_success_records_result_log_and_events(module: str, tmp_path: Path) -> None:
    outcome = run_in_process(request(module, "hello", tmp_path))
    assert outcome.status == "success", outcome.error
    assert outcome.result == {"ok": True, "cfg": 1}
    assert [(e.name, e.data) for e in outcome.events] == [("said", {"run": 4})]
    assert outcome.log[0].message == "hello" and outcome.log[0].fields == {"run": 4}
    assert (tmp_path / ".plugbox" / "t" / "log").read_text() == "run 4\n"
    assert outcome.enforcement.mode == "debug"
    assert outcome.enforcement.fs == "advisory"


def test_async_handler(module: str, tmp_path: Path) -> None:
    assert run_in_process(request(module, "async_hello", tmp_path)).result == {"async": True}


def test_exception_is_a_failed_run_with_traceback(module: str, tmp_path: Path) -> None:
    outcome = run_in_process(request(module, "crash", tmp_path))
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert (outcome.error.type, outcome.error.message) == ("RuntimeError", "boom")
    assert "in crash" in outcome.error.traceback


def test_denied_call_fails_the_run_naming_the_rule(module: str, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SECRET=1")
    outcome = run_in_process(request(module, "sneaky", tmp_path))
    assert outcome.status == "failed"
    assert outcome.error is not None and outcome.error.type == "PermissionDenied"
    assert "fs.read '.env' denied by fs[0].deny[3] '**/*.env'" in outcome.error.message


def test_unserialisable_result_is_explained(module: str, tmp_path: Path) -> None:
    outcome = run_in_process(request(module, "weird_result", tmp_path))
    assert outcome.status == "failed"
    assert outcome.error is not None and outcome.error.type == "ResultNotSerialisable"


def test_only_allowed_environment_reaches_the_job(module: str, tmp_path: Path) -> None:
    outcome = run_in_process(
        request(
            module,
            "env_job",
            tmp_path,
            permissions=perms.presets.env_vars("ALLOWED"),
            environment={"ALLOWED": "yes", "AWS_SECRET_ACCESS_KEY": "no"},
        )
    )
    assert outcome.result == {"names": ["ALLOWED"], "key": "yes"}


def test_operator_grant_narrows_the_run(module: str, tmp_path: Path) -> None:
    read_only = perms.Permissions(fs=perms.FsPermissions(mode="read", allow=("**",)))
    outcome = run_in_process(request(module, "hello", tmp_path, grants=(read_only,)))
    assert outcome.status == "failed"
    assert outcome.error is not None and "operator grant[0]" in outcome.error.message


def test_unimportable_handler_is_a_failed_run(tmp_path: Path) -> None:
    outcome = run_in_process(request("no_such_module_xyz", "f", tmp_path))
    assert outcome.status == "failed"
    assert outcome.error is not None and outcome.error.type == "ModuleNotFoundError"
